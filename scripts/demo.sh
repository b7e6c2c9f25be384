#!/usr/bin/env bash
# The demo behind `make demo`: build kiln's minimal system (images/minimal.yml) for this
# machine's architecture from nothing but Debian's packages and the Go module proxy, build it
# twice and compare the bytes, then boot it in QEMU and check it from the console.
#
#   1. the Debian seed (tools/debian-base/seed.sh: mmdebstrap, no base image)
#   2. the packages with BuildKit (kiln pkg build): debian-base, go, kernel, init, runc,
#      containerd, hello, shell
#   3. the system (kiln build -format kernel+initrd), twice, compared byte for byte
#   4. the boot (internal/cmd/bootcheck): onboot runs, services come up under containerd,
#      `ctr tasks ls` in the console shell lists them, `kill -TERM 1` powers off cleanly
#
# Everything lives in _out/demo (cache, builder state, outputs: a folder Go, the linters and git
# ignore, so make test works after make demo); a second run reuses the cache
# and only rebuilds what changed. Needs root (buildkitd), mmdebstrap, qemu-system for this
# architecture; `make demo` builds bin/ first. About 10 minutes the first time on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ARCH=$(go env GOARCH)
OUT=$PWD/_out/demo
KILN=$PWD/bin/kiln
export KILN_CACHE=$OUT/cache KILN_BUILDER_ROOT=$OUT/builder KILN=$KILN
export KILN_BUILDKITD=${KILN_BUILDKITD:-$PWD/bin/buildkitd} KILN_RUNC=${KILN_RUNC:-$PWD/bin/runc}
: "${GOPROXY_URL:=$(go env GOPROXY | cut -d, -f1)}"
export GOPROXY_URL
PACKAGES=(tools/debian-base tools/go kernel kernel/virt init system/runc system/containerd services/hello services/shell)

step() { printf '\n==> %s\n' "$*"; }
die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

step "Checking tools"
[[ $(id -u) == 0 ]] || die "buildkitd needs root: run as root"
command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (apt-get install mmdebstrap)"
[[ -x $KILN && -x $KILN_BUILDKITD && -x $KILN_RUNC ]] || die "run make tools first (make demo does)"
echo "ok: go $(go env GOVERSION), $ARCH, $KILN"
mkdir -p "$OUT"
trap '"$KILN" builder stop >/dev/null 2>&1 || true' EXIT

step "1. The Debian seed for $ARCH (mmdebstrap from this machine's apt sources)"
if "$KILN" cache ls | grep -q "^kiln/debian-seed:bookworm .*linux/$ARCH"; then
	echo "already in $KILN_CACHE"
else
	tools/debian-base/seed.sh "$ARCH"
fi

step "2. Packages for linux/$ARCH with BuildKit (cached ones are skipped)"
"$KILN" pkg build -platforms "linux/$ARCH" -progress "${KILN_PROGRESS:-auto}" "${PACKAGES[@]}"

step "3. images/minimal.yml for $ARCH, twice"
rm -rf "$OUT/sys" "$OUT/again"
mkdir -p "$OUT/sys" "$OUT/again"
"$KILN" build -arch "$ARCH" -format kernel+initrd -dir "$OUT/sys" images/minimal.yml
cp "$OUT/sys/minimal.lock.yml" "$OUT/again/"
"$KILN" build -q -arch "$ARCH" -format kernel+initrd -dir "$OUT/again" images/minimal.yml
same=yes
for f in minimal-kernel minimal-initrd.img minimal-cmdline; do
	printf '%-20s %11d  %s\n' "$f" "$(stat -c %s "$OUT/sys/$f")" "$(sha256sum "$OUT/sys/$f" | cut -d' ' -f1)"
	cmp -s "$OUT/sys/$f" "$OUT/again/$f" || { echo "DIFFERENT: $f" >&2; same=no; }
done
echo "reproducible: $same"
[[ $same == yes ]] || die "the two builds differ"

step "4. Booting it in QEMU (software emulation) and checking it from the console"
go run ./internal/cmd/bootcheck -prefix "$OUT/sys/minimal" -arch "$ARCH" | tee "$OUT/console.log" | tail -40
echo "booted: yes (console in $OUT/console.log; boot it yourself: $KILN run qemu $OUT/sys/minimal)"
