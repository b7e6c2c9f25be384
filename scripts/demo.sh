#!/usr/bin/env bash
# The demo behind `make demo`: build examples/demo.yml into a bootable kernel+initrd and a tar,
# build it again and check that every output file is byte-identical, then boot it in QEMU when
# qemu-system-x86_64 is installed.
#
# No registry and no Docker: the images come from examples/seed, which builds them on this
# machine from our Go code (examples/hello) and Debian's kernel package into out/demo/cache.
# Run from anywhere; paths are taken from the repository root. Needs go, apt-get and dpkg-deb;
# bin/kiln is built when missing (make demo builds it first).
#
# Environment: SOURCE_DATE_EPOCH (the time stamped on every file; default 0),
# KILN_DEMO_TIMEOUT (seconds the boot may take; default 120), KILN_DEMO_ACCEL (QEMU's -accel;
# default tcg).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ARCH=amd64
OUT=out/demo
AGAIN=$OUT/again
KILN=bin/kiln
TIMEOUT=${KILN_DEMO_TIMEOUT:-120}
export KILN_CACHE=$PWD/$OUT/cache

step() { printf '\n==> %s\n' "$*"; }
die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

step "Checking tools"
command -v go >/dev/null || die "go is not installed"
for tool in apt-get apt-cache dpkg dpkg-deb sha256sum; do
	command -v "$tool" >/dev/null || die "$tool is missing: this demo needs a Debian or Ubuntu machine (apt and dpkg)"
done
if [[ ! -x $KILN ]]; then
	echo "building $KILN"
	go build -trimpath -o "$KILN" ./cmd/kiln
fi
echo "ok: go $(go env GOVERSION), $KILN, apt, dpkg-deb"

step "Seeding the image cache $OUT/cache (hello, init and Debian's kernel for $ARCH)"
mkdir -p "$OUT"
# The seed runs apt-get update once by itself if the kernel's look-up or download fails.
go run ./examples/seed -cache "$KILN_CACHE" -arch "$ARCH"
"$KILN" cache ls

# Outputs of earlier runs go, so that the lock file is written afresh from this cache.
rm -rf "$AGAIN" "$OUT"/demo-* "$OUT"/demo.*
mkdir -p "$AGAIN"

step "Building examples/demo.yml into $OUT (formats kernel+initrd and tar)"
"$KILN" build -arch "$ARCH" -pull=false -format kernel+initrd,tar -dir "$OUT" examples/demo.yml

outputs=(demo-kernel demo-initrd.img demo-cmdline demo.tar demo.lock.yml)
printf '\n%-18s %12s  %s\n' FILE BYTES SHA256
for f in "${outputs[@]}"; do
	[[ -f $OUT/$f ]] || die "kiln build wrote no $OUT/$f"
	printf '%-18s %12d  %s\n' "$f" "$(stat -c %s "$OUT/$f")" "$(sha256sum "$OUT/$f" | cut -d' ' -f1)"
done
printf 'command line: %s\n' "$(cat "$OUT/demo-cmdline")"

step "Building again into $AGAIN, with the first build's lock file"
cp "$OUT/demo.lock.yml" "$AGAIN/"
"$KILN" build -q -arch "$ARCH" -pull=false -format kernel+initrd,tar -dir "$AGAIN" examples/demo.yml
same=yes
for f in "${outputs[@]}"; do
	if cmp -s "$OUT/$f" "$AGAIN/$f"; then
		echo "identical: $f"
	else
		echo "DIFFERENT: $f" >&2
		same=no
	fi
done
echo "reproducible: $same"
[[ $same == yes ]] || die "the two builds differ"

step "Booting the kernel and initrd in QEMU"
if ! command -v qemu-system-x86_64 >/dev/null; then
	echo "qemu-system-x86_64 is not installed: skipping the boot."
	echo "To boot the demo too: apt-get install -y qemu-system-x86, then make demo again."
	exit 0
fi
# TCG by default: it boots in seconds; a /dev/kvm that is present but broken (nested
# virtualisation) can hang instead. KILN_DEMO_ACCEL=kvm opts in.
accel=${KILN_DEMO_ACCEL:-tcg}
log=$OUT/console.log
echo "console: $log (accel $accel, timeout ${TIMEOUT}s)"
status=0
timeout "$TIMEOUT" qemu-system-x86_64 -accel "$accel" -m 512 -nographic -no-reboot \
	-kernel "$OUT/demo-kernel" -initrd "$OUT/demo-initrd.img" \
	-append "$(cat "$OUT/demo-cmdline") console=ttyS0 panic=-1" \
	</dev/null >"$log" 2>&1 || status=$?
tr -d '\r' <"$log" | grep -o 'kiln-demo: .*' || true
if [[ $status == 124 ]]; then
	echo "QEMU still ran after ${TIMEOUT}s; killed it." >&2
fi
for marker in "kiln-demo: init up" "kiln-demo: done"; do
	grep -q "$marker" "$log" || die "no \"$marker\" on the console (QEMU exit status $status); see $log"
done
echo "booted: yes (QEMU exit status $status)"
