//go:build !e2eheavy

package e2e

// e2eArches are the architectures the end-to-end tests build packages for and boot: amd64
// and arm64 in make test (CI). make test-heavy adds s390x (the e2eheavy tag, see
// arches_heavy_test.go): its Debian seed under qemu-user, its Go toolchain compiled from
// source and its packages would push a cold CI run past its time limit.
var e2eArches = []string{"amd64", "arm64"}
