#!/usr/bin/env bash
# Install the Debian packages kiln's build, tests and demo use, when they are missing (root;
# apt-get from the machine's configured sources). `make test`, `make demo` and .ci/run call it.
#
# cpio and bsdtar (libarchive-tools) cross-check the archive formats. gcc, libc6-dev and
# libseccomp-dev build the static runc. mmdebstrap makes the Debian seed; qemu-user-static runs
# foreign architectures' maintainer scripts and RUN steps (scripts/binfmt.sh registers it).
# qemu-system-* boot the systems on amd64, arm64 and s390x. xz-utils and kmod: the kernel tools'
# tests compare with xz and depmod. Recommended packages are not installed (they pull in desktop
# and speech libraries); what we need of them is named here: arch-test (mmdebstrap's check of
# foreign architectures), seabios and ipxe-qemu (QEMU's BIOS and NIC boot ROMs), ovmf and
# qemu-efi-aarch64 (EFI firmware), qemu-utils (qemu-img). dosfstools, mtools and xorriso make
# the FAT and ISO9660 config drives services/metadata's tests read, and check the FAT volumes kiln writes; gdisk (sgdisk -v) checks its GPT disks. e2fsprogs formats and checks
# services/disk's test disks. services/sshd's tests log in with OpenSSH's ssh and scp. curl is the TFTP and HTTP client of kiln serve's tests. chrony is only downloaded and unpacked into bin/chrony, never
# installed: services/time's tests run its chronyd on 127.0.0.1 (KILN_CHRONYD), and an installed
# chrony service would ask Debian's NTP pool and set this machine's clock.
set -euo pipefail
need=()
for p in cpio libarchive-tools git make gcc libc6-dev libseccomp-dev mmdebstrap qemu-user-static \
	arch-test qemu-system-x86 qemu-system-arm qemu-system-misc seabios ipxe-qemu ovmf qemu-efi-aarch64 \
	qemu-utils xz-utils kmod dosfstools mtools xorriso e2fsprogs openssh-client gdisk curl; do
	dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
	if [[ $(id -u) != 0 ]]; then
		echo "deps.sh: missing Debian packages: ${need[*]}; install them as root (apt-get install ...)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
chrony=$(cd "$(dirname "$0")/.." && pwd)/bin/chrony
if [[ ! -x $chrony/usr/sbin/chronyd ]]; then
	tmp=$(mktemp -d)
	get() { (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root chrony); }
	get || { apt-get update -qq && get; }
	mkdir -p "$chrony"
	dpkg-deb -x "$tmp"/chrony_*.deb "$chrony"
	rm -rf "$tmp"
fi
if ldd "$chrony/usr/sbin/chronyd" | grep -q 'not found'; then
	echo "deps.sh: chronyd lacks libraries:"
	ldd "$chrony/usr/sbin/chronyd" | grep 'not found'
	exit 1
fi >&2
