// Package kernel holds no code: the folder is the kernel package (build.yml and Dockerfile,
// which repackage Debian's kernel as kiln's kernel image), kernel/virt (the same kernel with
// only the modules a virtual machine needs) and kernel/tools, the packing tool, a Go module of
// its own. This package's test runs that module's tests, so that `go test ./...` from the
// repository root covers them.
package kernel
