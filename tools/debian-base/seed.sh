#!/usr/bin/env bash
# seed.sh: make the very first Debian base with no base image at all, and put it in the kiln
# cache as kiln/debian-seed:bookworm (one image per architecture in one index).
#
# mmdebstrap builds each root filesystem on the host from Debian's packages, fetched from the
# machine's configured apt sources (override with KILN_APT_SOURCES=FILE, a sources.list or
# deb822 file). Foreign architectures run their maintainer scripts under qemu-user through
# binfmt_misc (scripts/binfmt.sh registers it). SOURCE_DATE_EPOCH fixes every time in the
# output; by default it is the time of the last commit of seed.sh or seed.lock, so the same mirror state
# gives the same bytes.
#
# seed.lock pins that mirror state: every .deb installed, per architecture, with its version
# and SHA-256. Every architecture is built and checked against its lines before anything is
# imported; if the mirror serves anything else, seed.sh prints the difference and fails, and
# the cache and the lock stay as they were. An architecture with no lines yet gets them
# written. KILN_SEED_UPDATE_LOCK=1 accepts what the mirror serves now: it rewrites the lines of
# the architectures built, and leaves the others alone.
#
# Usage: seed.sh [ARCH...]   (default: amd64 arm64 s390x; env KILN=path to kiln, else the
# checkout's bin/kiln after `make`, else kiln on PATH)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kiln=${KILN:-}
if [[ -z $kiln ]]; then
	if [[ -x $here/../../bin/kiln ]]; then
		kiln=$(cd "$here/../.." && pwd)/bin/kiln
	elif command -v kiln >/dev/null; then
		kiln=kiln
	else
		echo "seed.sh: no kiln: run make in the checkout (it builds bin/kiln), or set KILN=path" >&2
		exit 1
	fi
fi
arches=("$@")
((${#arches[@]})) || arches=(amd64 arm64 s390x)
suite=bookworm
ref=kiln/debian-seed:$suite
lock=$here/seed.lock
case ${KILN_SEED_UPDATE_LOCK:-0} in
0 | '') update=false ;;
1) update=true ;;
*) echo "seed.sh: KILN_SEED_UPDATE_LOCK must be 1 (rewrite the lock) or unset" >&2; exit 1 ;;
esac
sources=${KILN_APT_SOURCES:-}
if [[ -z $sources ]]; then
	for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
		[[ -s $f ]] && { sources=$f; break; }
	done
fi
[[ -n $sources ]] || { echo "seed.sh: no apt sources found; set KILN_APT_SOURCES" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "seed.sh: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
	SOURCE_DATE_EPOCH=$(git -C "$here" log -1 --format=%ct -- seed.sh seed.lock 2>/dev/null || true)
	SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
fi
export SOURCE_DATE_EPOCH LC_ALL=C

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The lock's lines (no comments), checked for shape: ARCH PACKAGE VERSION DEB-ARCH SHA256.
touch "$tmp/lock"
if [[ -e $lock ]]; then
	awk -v f="$lock" '/^[[:space:]]*(#|$)/ { next }
		NF != 5 || length($5) != 64 || $5 ~ /[^0-9a-f]/ { printf "seed.sh: %s:%d: not ARCH PACKAGE VERSION DEB-ARCH SHA256: %s\n", f, NR, $0 > "/dev/stderr"; bad = 1 }
		{ print } END { exit bad }' "$lock" >"$tmp/lock"
fi

# served ARCH DIR: one lock line for each .deb in DIR, sorted.
served() {
	local deb
	for deb in "$2"/*.deb; do
		[[ -e $deb ]] || continue
		printf '%s %s %s\n' "$1" "$(dpkg-deb --show --showformat='${Package} ${Version} ${Architecture}' "$deb")" \
			"$(sha256sum <"$deb" | cut -d' ' -f1)"
	done | sort
}

# difference LOCKED SERVED: a block for each package whose version or bytes differ, sorted.
difference() {
	awk '{ k = $2 " (" $4 ")"; v = $3 "  sha256:" $5; keys[k] = 1 }
		FILENAME == ARGV[1] { locked[k] = v; next }
		{ served[k] = v }
		END {
			for (k in keys) {
				l = (k in locked) ? locked[k] : "-"
				s = (k in served) ? served[k] : "-"
				if (l != s) print k "\t" l "\t" s
			}
		}' "$1" "$2" | sort | awk -F'\t' '{
			split($2, l, " "); split($3, s, " ")
			printf "  %s%s\n    locked  %s\n    served  %s\n", $1,
				(l[1] == s[1]) ? "  (same version, different bytes)" : "", $2, $3
		}'
}

changed=()
for arch in "${arches[@]}"; do
	echo "seed.sh: $suite for $arch (from $sources)" >&2
	start=$SECONDS
	mkdir "$tmp/$arch.debs"
	# mmdebstrap unlinks the Essential packages' .debs once they are installed and empties the
	# apt cache at the end; keep the former, and copy the cache and dpkg's status out first.
	mmdebstrap --quiet --variant=minbase --include=ca-certificates,unzip \
		--skip=essential/unlink \
		--customize-hook="sync-out /var/cache/apt/archives $(printf %q "$tmp/$arch.debs")" \
		--customize-hook="download /var/lib/dpkg/status $(printf %q "$tmp/$arch.status")" \
		--architectures="$arch" "$suite" "$tmp/$arch.tar" "$sources"
	served "$arch" "$tmp/$arch.debs" >"$tmp/$arch.served"
	rm -rf "$tmp/$arch.debs"

	# Every package installed must be one of those .debs, or the lock would miss some.
	mkdir "$tmp/$arch.admin"
	mv "$tmp/$arch.status" "$tmp/$arch.admin/status"
	dpkg-query --admindir="$tmp/$arch.admin" -W -f='${db:Status-Abbrev} ${Package} ${Version} ${Architecture}\n' |
		awk '$1 == "ii" { print $2, $3, $4 }' | sort >"$tmp/$arch.installed"
	if ! cut -d' ' -f2-4 "$tmp/$arch.served" | diff -u "$tmp/$arch.installed" - >"$tmp/$arch.missing"; then
		echo "seed.sh: $arch: the .debs mmdebstrap left do not match the packages it installed (- installed only, + .deb only):" >&2
		cat "$tmp/$arch.missing" >&2
		exit 1
	fi

	grep "^$arch " "$tmp/lock" | sort >"$tmp/$arch.locked" || true
	n=$(wc -l <"$tmp/$arch.served")
	if [[ ! -s $tmp/$arch.locked ]]; then
		echo "seed.sh: $arch: seed.lock has no lines for $arch; adding its $n packages" >&2
		changed+=("$arch")
	elif cmp -s "$tmp/$arch.locked" "$tmp/$arch.served"; then
		echo "seed.sh: $arch: all $n packages match seed.lock" >&2
	elif $update; then
		echo "seed.sh: $arch: KILN_SEED_UPDATE_LOCK=1: accepting what the mirror serves now:" >&2
		difference "$tmp/$arch.locked" "$tmp/$arch.served" >&2
		changed+=("$arch")
	else
		{
			echo "seed.sh: $arch: the mirror serves different bytes than seed.lock locks:"
			difference "$tmp/$arch.locked" "$tmp/$arch.served"
			echo "seed.sh: nothing was imported and seed.lock is unchanged. The apt sources are $sources:"
			echo "seed.sh: to build the locked packages, point KILN_APT_SOURCES at a mirror that still serves"
			echo "seed.sh: them (such as Debian's snapshot archive at the date of the lock's last commit). To accept them instead:"
			echo "seed.sh:     KILN_SEED_UPDATE_LOCK=1 tools/debian-base/seed.sh ${arches[*]}"
			echo "seed.sh: then review and commit tools/debian-base/seed.lock."
		} >&2
		exit 1
	fi
	echo "seed.sh: $arch: root filesystem built in $((SECONDS - start))s" >&2
done

if ((${#changed[@]})); then
	# The other architectures' lines stay; the changed ones are replaced. Written atomically.
	new=$(mktemp "$lock.XXXXXX")
	trap 'rm -rf "$tmp" "$new"' EXIT
	{
		cat <<-'EOF'
			# seed.lock: every .deb that tools/debian-base/seed.sh installs into the Debian seed, for
			# each architecture. One line per .deb: ARCH PACKAGE VERSION DEB-ARCHITECTURE SHA256 (of the
			# .deb file), sorted. seed.sh fails before importing anything when the mirror serves other
			# packages or other bytes. To accept what the mirror serves now, deliberately, run
			#     KILN_SEED_UPDATE_LOCK=1 tools/debian-base/seed.sh [ARCH...]
			# which rewrites those architectures' lines only, then review the diff and commit this file.
			# An architecture with no lines gets them on its first run. Generated: do not edit by hand.
		EOF
		{
			for arch in "${changed[@]}"; do cat "$tmp/$arch.served"; done
			awk -v a=" ${changed[*]} " 'index(a, " " $1 " ") == 0' "$tmp/lock"
		} | sort
	} >"$new"
	chmod 0644 "$new"
	mv -f "$new" "$lock"
	echo "seed.sh: wrote $lock (${changed[*]})" >&2
fi

for arch in "${arches[@]}"; do
	"$kiln" cache import -rootfs -platform "linux/$arch" -name "$ref" "$tmp/$arch.tar"
	rm -f "$tmp/$arch.tar"
done
