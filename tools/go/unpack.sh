#!/bin/sh
# unpack-toolchain ZIP DIR: unpack a golang.org/toolchain module zip into DIR as a GOROOT.
# Module zips keep no file modes, so the executables get theirs back here, as the go command
# does when it runs a toolchain from its module cache.
set -eu
zip=$1 dir=$2
tmp=$(mktemp -d)
unzip -q "$zip" -d "$tmp"
mv "$tmp"/golang.org/toolchain@*/ "$dir"
rm -rf "$tmp" "$zip"
chmod -R a+rX "$dir"
find "$dir/bin" "$dir/pkg/tool" -type f -exec chmod a+x {} +
find "$dir/src" -name '*.bash' -exec chmod a+x {} +
