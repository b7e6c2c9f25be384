package kernel

import (
	"os"
	"os/exec"
	"testing"
)

// TestTools runs the tests of kernel/tools, a module of its own that `go test ./...` from the
// repository root does not reach. Its tests compare modules.dep with depmod's and take vmlinux
// out of Debian's bzImage when a kernel package is at hand (see kernel/tools/internal/testdeb).
func TestTools(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH: %v", err)
	}
	args := []string{"test", "-count=1"}
	if testing.Short() {
		args = append(args, "-short")
	}
	if testing.Verbose() {
		args = append(args, "-v")
	}
	cmd := exec.Command(goCmd, append(args, "./...")...)
	cmd.Dir = "tools"
	// The module's own go.mod and go.sum decide its dependencies, not the parent's flags.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	t.Logf("go %v (in kernel/tools):\n%s", args, out)
	if err != nil {
		t.Fatalf("kernel/tools tests failed: %v", err)
	}
}
