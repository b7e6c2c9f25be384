#!/usr/bin/env bash
# The demo behind `make demo`: build kiln's builder appliance (images/builder.yml) for this
# machine's architecture from nothing but Debian's packages and the Go module proxy, build it
# twice and compare the bytes, boot it in QEMU and build a package on it over mutual TLS.
#
#   1. the Debian seed (tools/debian-base/seed.sh: mmdebstrap, no base image)
#   2. the packages with BuildKit (kiln pkg build): debian-base, go, kernel, init, runc, kiln,
#      containerd, metadata, disk, network, time, buildkitd, sshd, shell, hello, examples/greeting
#   3. the appliance (kiln build -format kernel+initrd), twice, compared byte for byte
#   4. its certificates and node configuration (kiln builder certs -node-config)
#   5. the boot: QEMU with the configuration on a NoCloud drive, a state disk (_out/demo/state.img:
#      formatted at the first boot, BuildKit's cache on it afterwards) and the node's BuildKit
#      port forwarded to a loopback port, until the console says "buildkitd: ready"
#   6. builds on the node: buildctl lists its workers over mutual TLS, and kiln pkg build
#      -builders builds examples/greeting there (a RUN step on the node's runc), which must
#      give the digest step 2 got here;
#      then `kill -TERM 1` on the console powers the node off
#
# Everything lives in _out/demo (cache, builder state, outputs: a folder Go, the linters and git
# ignore, so make test works after make demo); a second run reuses the cache and only rebuilds
# what changed. Needs root (buildkitd), mmdebstrap, qemu-system for this architecture; `make
# demo` builds bin/ first. About 21 minutes on 2 cores, bin/ built. KILN_DEMO_PORT picks the
# loopback port (default 41234).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ARCH=$(go env GOARCH)
OUT=$PWD/_out/demo
KILN=$PWD/bin/kiln
BUILDCTL=${KILN_BUILDCTL:-$PWD/bin/buildctl}
PORT=${KILN_DEMO_PORT:-41234}
export KILN_CACHE=$OUT/cache KILN_BUILDER_ROOT=$OUT/builder KILN=$KILN
export KILN_BUILDKITD=${KILN_BUILDKITD:-$PWD/bin/buildkitd} KILN_RUNC=${KILN_RUNC:-$PWD/bin/runc}
: "${GOPROXY_URL:=$(go env GOPROXY | cut -d, -f1)}"
export GOPROXY_URL
PACKAGES=(tools/debian-base tools/go kernel kernel/virt init system/runc system/containerd system/kiln
	services/metadata services/disk services/network services/time services/buildkitd services/sshd
	services/shell services/hello examples/greeting)

step() { printf '\n==> %s\n' "$*"; }
# shellcheck source=scripts/appliance-lib.sh
. scripts/appliance-lib.sh
die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

step "Checking tools"
[[ $(id -u) == 0 ]] || die "buildkitd needs root: run as root"
command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (apt-get install mmdebstrap)"
[[ -x $KILN && -x $KILN_BUILDKITD && -x $KILN_RUNC && -x $BUILDCTL ]] || die "run make tools first (make demo does)"
port_free "$PORT"
echo "ok: go $(go env GOVERSION), $ARCH, $KILN"
mkdir -p "$OUT"
QEMU_PID=
cleanup() {
	if [[ -n $QEMU_PID ]]; then kill "$QEMU_PID" 2>/dev/null || true; fi
	"$KILN" builder stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "1. The Debian seed for $ARCH (mmdebstrap from this machine's apt sources)"
if "$KILN" cache ls | grep "^kiln/debian-seed:bookworm .*linux/$ARCH" >/dev/null; then
	echo "already in $KILN_CACHE"
else
	tools/debian-base/seed.sh "$ARCH"
fi

step "2. Packages for linux/$ARCH with BuildKit (cached ones are skipped)"
"$KILN" pkg build -platforms "linux/$ARCH" -progress "${KILN_PROGRESS:-auto}" "${PACKAGES[@]}" | tee "$OUT/packages.txt"

step "3. images/builder.yml for $ARCH, twice"
rm -rf "$OUT/sys" "$OUT/again"
mkdir -p "$OUT/sys" "$OUT/again"
"$KILN" build -arch "$ARCH" -format kernel+initrd -dir "$OUT/sys" images/builder.yml
cp "$OUT/sys/builder.lock.yml" "$OUT/again/"
"$KILN" build -q -arch "$ARCH" -format kernel+initrd -dir "$OUT/again" images/builder.yml
same=yes
for f in builder-kernel builder-initrd.img builder-cmdline; do
	printf '%-20s %11d  %s\n' "$f" "$(stat -c %s "$OUT/sys/$f")" "$(sha256sum "$OUT/sys/$f" | cut -d' ' -f1)"
	cmp -s "$OUT/sys/$f" "$OUT/again/$f" || { echo "DIFFERENT: $f" >&2; same=no; }
done
echo "reproducible: $same"
[[ $same == yes ]] || die "the two builds differ"
# images/minimal.yml too, for make bench's boot figures (its lock file pins them).
"$KILN" build -q -arch "$ARCH" -format kernel+initrd -dir "$OUT/sys" images/minimal.yml

step "4. Certificates (a CA, the node's server certificate, this machine's client certificate)"
# Made on the first run; later runs write the node configuration from the files there are.
# The node trusts what this machine trusts for downloads (its root certificates, a proxy's CA
# among them), so that packages whose builds fetch over HTTPS build on it too.
CLIENT=$OUT/client
trust=()
[[ -f /etc/ssl/certs/ca-certificates.crt ]] && trust=(-trust /etc/ssl/certs/ca-certificates.crt)
"$KILN" builder -root "$CLIENT" certs -node-config "$OUT/node" "${trust[@]}"

step "5. Booting the appliance in QEMU (software emulation), BuildKit on 127.0.0.1:$PORT"
boot_appliance "$OUT/sys/builder" "$OUT/node" "$PORT" 2G "$OUT/console.log" "$OUT/state.img"
wait_for "buildkitd: ready on tcp://" 600
grep -E "^(metadata|disk|network|time|sshd|buildkitd): |kiln-init: all services up" "$OUT/console.log" | grep -v "level=" || true

step "6. Building on the node"
C=$CLIENT/certs
"$BUILDCTL" --addr "tcp://127.0.0.1:$PORT" --tlscacert "$C/ca.pem" --tlscert "$C/client.pem" \
	--tlskey "$C/client-key.pem" debug workers
KILN_BUILDER_ROOT=$CLIENT "$KILN" pkg build -force -platforms "linux/$ARCH" -progress plain \
	-builders "linux/$ARCH=tcp://127.0.0.1:$PORT" examples/greeting >"$OUT/node-build.txt" 2>&1 || {
	tail -40 "$OUT/node-build.txt" >&2
	die "building examples/greeting on the node failed (all of it in $OUT/node-build.txt)"
}
grep -E "^#[0-9]+ \[|on tcp://|built " "$OUT/node-build.txt" || true
here=$(awk '$1 ~ /\/greeting:/ {print $2}' "$OUT/packages.txt" | tail -1)
there=$(awk 'NF == 2 && $1 ~ /\/greeting:/ {print $2}' "$OUT/node-build.txt" | tail -1)
echo "examples/greeting built here:        $here"
echo "examples/greeting built on the node: $there"
[[ -n $here && $here == "$there" ]] || die "the node built other bytes than this machine"
power_off
echo "appliance: booted, built examples/greeting bit for bit (console in $OUT/console.log;"
echo "boot it yourself: $KILN run qemu -mem 2G -data $OUT/node -disk $OUT/state.img,format=raw -publish 127.0.0.1:$PORT:1234 $OUT/sys/builder)"
