#!/usr/bin/env bash
# seed.sh: make the very first Debian base with no base image at all, and put it in the kiln
# cache as kiln/debian-seed:bookworm (one image per architecture in one index).
#
# mmdebstrap builds each root filesystem on the host from Debian's packages, fetched from the
# machine's configured apt sources (override with KILN_APT_SOURCES=FILE, a sources.list or
# deb822 file). Foreign architectures run their maintainer scripts under qemu-user through
# binfmt_misc (scripts/binfmt.sh registers it). SOURCE_DATE_EPOCH fixes every time in the
# output; by default it is the time of the last commit of this folder, so the same mirror state
# gives the same bytes.
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
sources=${KILN_APT_SOURCES:-}
if [[ -z $sources ]]; then
	for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
		[[ -s $f ]] && { sources=$f; break; }
	done
fi
[[ -n $sources ]] || { echo "seed.sh: no apt sources found; set KILN_APT_SOURCES" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "seed.sh: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
	SOURCE_DATE_EPOCH=$(git -C "$here" log -1 --format=%ct -- . 2>/dev/null || true)
	SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
fi
export SOURCE_DATE_EPOCH

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for arch in "${arches[@]}"; do
	echo "seed.sh: $suite for $arch (from $sources)" >&2
	mmdebstrap --quiet --variant=minbase --include=ca-certificates,unzip \
		--architectures="$arch" "$suite" "$tmp/$arch.tar" "$sources"
	"$kiln" cache import -rootfs -platform "linux/$arch" -name "$ref" "$tmp/$arch.tar"
	rm -f "$tmp/$arch.tar"
done
