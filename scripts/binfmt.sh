#!/usr/bin/env bash
# Register qemu-user-static's interpreters for arm64 and s390x in binfmt_misc, so that RUN steps
# and Debian's maintainer scripts of those architectures run here under emulation. Needs root and
# the qemu-user-static package. Idempotent. The "F" flag makes the kernel keep the interpreter
# open, so it works inside containers and chroots too.
set -euo pipefail
dir=/proc/sys/fs/binfmt_misc
if [[ ! -e $dir/register ]]; then
	mount -t binfmt_misc binfmt_misc "$dir"
fi
for arch in aarch64 s390x; do
	conf=/usr/lib/binfmt.d/qemu-$arch.conf
	if [[ -e $dir/qemu-$arch ]]; then
		continue
	fi
	if [[ ! -e $conf ]]; then
		echo "binfmt.sh: $conf is missing: apt-get install qemu-user-static" >&2
		exit 1
	fi
	grep -v '^#' "$conf" >"$dir/register"
done
echo "binfmt: $(cd "$dir" && ls -d qemu-* | tr '\n' ' ')"
