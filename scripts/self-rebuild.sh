#!/usr/bin/env bash
# The full self-rebuild behind `make self-rebuild`: every package images/builder.yml is made of,
# and the bases they build from, built again by a booted builder appliance's own buildkitd
# (kiln pkg build -force -builders: no BuildKit cache, every RUN step on the node's runc), each
# compared by digest with this machine's build of the same package; then images/builder.yml is
# assembled from the node's images and compared byte for byte with this machine's. The times
# and digests go into docs/appliance.md, between the self-rebuild markers.
#
# It starts from make demo's world (_out/demo: this machine's builds in its cache, the client
# certificate and the node configuration): run make demo first. Its own state is in
# _out/self-rebuild: a cache that starts as a copy of this machine's images (so that the
# comparison is not disturbed by what the node writes), the node's state disk and the logs. The
# record is docs/self-rebuild.tsv (committed): a run that stops part way, in this clone or
# another, is resumed by running it again, since packages whose tag already has a row with
# this machine's digest are not built again.
#
#   PACKAGES="init system/runc"   only these, in build order (default: all, below)
#   MEM=8G CPUS=2                 the node's memory and virtual CPUs (one host thread each under TCG)
#   KILN_DEMO_PORT=41236          the loopback port the node's BuildKit is forwarded to
#
# Heavy: under software emulation Go's compiler runs many times slower than here; see the
# recorded figures in docs/appliance.md before starting it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ARCH=$(go env GOARCH)
DEMO=$PWD/_out/demo
OUT=$PWD/_out/self-rebuild
KILN=$PWD/bin/kiln
PORT=${KILN_DEMO_PORT:-41236}
MEM=${MEM:-8G}
export APPLIANCE_CPUS=${CPUS:-$(nproc)}
export KILN_BUILDER_ROOT=$DEMO/builder KILN=$KILN
export KILN_BUILDKITD=${KILN_BUILDKITD:-$PWD/bin/buildkitd} KILN_RUNC=${KILN_RUNC:-$PWD/bin/runc}
: "${GOPROXY_URL:=$(go env GOPROXY | cut -d, -f1)}"
export GOPROXY_URL
ALL=(tools/debian-base tools/go kernel kernel/virt init system/runc system/containerd system/kiln
	services/metadata services/disk services/network services/time services/buildkitd services/sshd
	services/shell)
read -r -a PKGS <<<"${PACKAGES:-${ALL[*]}}"

step() { printf '\n==> %s\n' "$*"; }
die() {
	printf 'self-rebuild: %s\n' "$*" >&2
	exit 1
}
# shellcheck source=scripts/appliance-lib.sh
. scripts/appliance-lib.sh
[[ -x $KILN ]] || die "run make tools first (make self-rebuild does)"
[[ -d $DEMO/cache && -f $DEMO/client/certs/client.pem && -d $DEMO/node ]] ||
	die "no make demo world in $DEMO: run make demo first (it builds this machine's images and the certificates)"
port_free "$PORT"
mkdir -p "$OUT/logs"
QEMU_PID=
RECORD= # set in step 4
cleanup() {
	if [[ -n $RECORD && -f $RECORD ]]; then
		cp "$RECORD" docs/self-rebuild.tsv
		if declare -F render >/dev/null; then render; fi
	fi
	if [[ -n $QEMU_PID ]]; then kill "$QEMU_PID" 2>/dev/null || true; fi
	KILN_CACHE=$DEMO/cache "$KILN" builder stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "1. This machine's builds of ${#ALL[@]} packages for linux/$ARCH (make demo's cache; cached ones are skipped)"
KILN_CACHE=$DEMO/cache "$KILN" pkg build -platforms "linux/$ARCH" -progress "${KILN_PROGRESS:-auto}" "${ALL[@]}" |
	tee "$OUT/host.txt"
KILN_CACHE=$DEMO/cache "$KILN" builder stop >/dev/null

step "2. The node's cache: a copy of this machine's images"
seed=$(KILN_CACHE=$DEMO/cache "$KILN" cache ls | awk '$1 == "kiln/debian-seed:bookworm" {print $1; exit}')
[[ -n $seed ]] || die "make demo's cache has no Debian seed"
mapfile -t refs < <(awk 'NF == 2 {print $1}' "$OUT/host.txt")
rm -rf "$OUT/cache"
KILN_CACHE=$DEMO/cache "$KILN" cache export -o - "$seed" "${refs[@]}" | KILN_CACHE=$OUT/cache "$KILN" cache import -
export KILN_CACHE=$OUT/cache

step "3. Booting the appliance: $APPLIANCE_CPUS virtual CPUs, $MEM, BuildKit on 127.0.0.1:$PORT"
[[ -e $OUT/state.img ]] || truncate -s 60G "$OUT/state.img"
boot_appliance "$DEMO/sys/builder" "$DEMO/node" "$PORT" "$MEM" "$OUT/console.log" "$OUT/state.img"
wait_for "buildkitd: ready on tcp://" 900
grep -F "buildkitd: ready on tcp://" "$CONSOLE_LOG" | head -1

# The record (committed): one row per package, "ref package digest seconds date vcpus", the
# digest the node built, equal to this machine's. A row stays valid while its package's tag
# does, so a rebuild can be finished in several runs; system/kiln's tag changes with every
# commit that touches its source (the whole repository less docs/, images/, scripts/ and the
# README), so its row is redone after each such commit.
#
# The run works on a copy of the record in $OUT and writes it (and the table) into docs/ only
# when it ends, well or not, so that the repository holds still while it runs (docs/ is out of
# system/kiln's tag today, but step 5 must not depend on that).
RECORD=$OUT/self-rebuild.tsv
if [[ -f docs/self-rebuild.tsv ]]; then
	cp docs/self-rebuild.tsv "$RECORD"
else
	printf '# ref\tpackage\tdigest\tseconds on the node\tdate\tnode vCPUs\n' >"$RECORD"
fi
mapfile -t current < <("$KILN" pkg show-tag "${ALL[@]}")
commit=$(git rev-parse --short HEAD)
[[ -z $(git status --porcelain) ]] || commit+=" (with uncommitted changes)"
# shellcheck source=scripts/markers.sh
. scripts/markers.sh

# render: the table of the current tags' rows into docs/appliance.md; ASSEMBLED (the system's
# sums, once every package is rebuilt) closes it.
render() {
	local total=0 missing=() row ref p digest secs date cpus
	{
		echo "Written by \`make self-rebuild\` (\`scripts/self-rebuild.sh\`) at commit $commit: a $(nproc)-core host, the $ARCH node under QEMU's software emulation (TCG), every package built with \`kiln pkg build -force -builders linux/$ARCH=tcp://NODE\` (no BuildKit cache) into the digest this machine's build of the same package has. The seconds are the node's, from the run on the date given; rows come from \`docs/self-rebuild.tsv\`."
		echo
		echo "| package | image | digest (node = host) | seconds on the node | run (date, vCPUs) |"
		echo "|---|---|---|---|---|"
		for i in "${!ALL[@]}"; do
			row=$(awk -F'\t' -v r="${current[$i]}" '$1 == r' "$RECORD" | tail -1)
			if [[ -z $row ]]; then
				missing+=("${ALL[$i]}")
				printf '| %s | `%s` | not rebuilt on the node yet | | |\n' "${ALL[$i]}" "${current[$i]}"
				continue
			fi
			IFS=$'\t' read -r ref p digest secs date cpus <<<"$row"
			printf '| %s | `%s` | `%s` | %d | %s, %s |\n' "$p" "$ref" "$digest" "$secs" "$date" "$cpus"
			total=$((total + secs))
		done
		echo
		if ((${#missing[@]})); then
			echo "${#missing[@]} of ${#ALL[@]} packages still to rebuild on the node (${missing[*]}); $total s so far."
		else
			echo "Every package rebuilt on the node, $total s in all."
		fi
		if [[ -n ${ASSEMBLED:-} ]]; then
			echo "images/builder.yml assembled from the node's images equals this machine's build, byte for byte:"
			echo
			sed 's/^/    /' "$ASSEMBLED"
		fi
	} >"$OUT/table.md"
	replace_between docs/appliance.md "<!-- self-rebuild:begin (generated by make self-rebuild; edits are overwritten) -->" \
		"<!-- self-rebuild:end -->" "$OUT/table.md"
}

step "4. Every package again, on the node (the record: docs/self-rebuild.tsv)"
for i in "${!ALL[@]}"; do
	p=${ALL[$i]} ref=${current[$i]}
	[[ " ${PKGS[*]} " == *" $p "* ]] || continue
	here=$(awk -v r="$ref" '$1 == r {print $2}' "$OUT/host.txt")
	[[ -n $here ]] || die "step 1 printed no digest for $ref"
	if awk -F'\t' -v r="$ref" -v d="$here" '$1 == r && $3 == d {f = 1} END {exit !f}' "$RECORD"; then
		echo "$p: rebuilt on a node before, with this machine's digest ($ref)"
		continue
	fi
	log=$OUT/logs/${p//\//_}.txt
	printf '%s: building %s on the node ... ' "$p" "$ref"
	start=$SECONDS
	KILN_BUILDER_ROOT=$DEMO/client "$KILN" pkg build -force -platforms "linux/$ARCH" -progress plain \
		-builders "linux/$ARCH=tcp://127.0.0.1:$PORT" "$p" >"$log" 2>&1 || {
		echo failed
		tail -40 "$log" >&2
		die "building $p on the node failed (all of it in $log)"
	}
	secs=$((SECONDS - start))
	there=$(awk -v r="$ref" 'NF == 2 && $1 == r {print $2}' "$log" | tail -1)
	echo "$secs s"
	[[ $there == "$here" ]] || die "$p: the node built $there, this machine $here (log in $log)"
	{
		awk -F'\t' -v p="$p" '$2 != p' "$RECORD"
		printf '%s\t%s\t%s\t%d\t%s\t%s\n' "$ref" "$p" "$there" "$secs" "$(date -u +%Y-%m-%d)" "$APPLIANCE_CPUS"
	} >"$RECORD.new"
	mv "$RECORD.new" "$RECORD"
done

step "5. images/builder.yml from the node's images, against this machine's"
rm -rf "$OUT/sys" "$OUT/host-sys"
mkdir -p "$OUT/sys" "$OUT/host-sys"
"$KILN" build -q -arch "$ARCH" -format kernel+initrd -dir "$OUT/sys" images/builder.yml
KILN_CACHE=$DEMO/cache "$KILN" build -q -arch "$ARCH" -format kernel+initrd -dir "$OUT/host-sys" images/builder.yml
: >"$OUT/system.txt"
for f in builder-kernel builder-initrd.img builder-cmdline; do
	cmp -s "$OUT/sys/$f" "$OUT/host-sys/$f" || die "$f differs between the node's images and this machine's"
	printf '%s  %s\n' "$(sha256sum "$OUT/sys/$f" | cut -d' ' -f1)" "$f" | tee -a "$OUT/system.txt"
done
power_off

all=yes
for ref in "${current[@]}"; do
	awk -F'\t' -v r="$ref" '$1 == r {f = 1} END {exit !f}' "$RECORD" || all=
done
[[ -z $all ]] || ASSEMBLED=$OUT/system.txt
cp "$RECORD" docs/self-rebuild.tsv
render
RECORD= # written
cat "$OUT/table.md"
