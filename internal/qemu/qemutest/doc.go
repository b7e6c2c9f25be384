// Package qemutest supplies what tests need to boot something real under QEMU: Debian
// bookworm kernels for amd64, arm64 and s390x (fetched with apt once and cached under the user
// cache folder) and a minimal initrd whose Go init prints a marker line and powers off.
//
// It is for tests and benchmarks only; nothing outside _test.go files may import it. It
// downloads and builds, but runs no VM: that is package qemu's job. Missing tools or an
// unreachable package mirror skip the test locally and fail it under CI (internal/testenv).
package qemutest
