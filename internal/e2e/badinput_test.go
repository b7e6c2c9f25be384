package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-os/kiln/internal/qemu"
)

// TestBadInputBoots boots two broken systems on amd64 (the checks are the init's, the same on
// every architecture) and reads the console:
//
//   - testdata/degraded.yml: an unknown module, a failing optional onboot container and a service
//     whose binary is missing are each reported, the rest comes up, and a shutdown asked for
//     from inside still powers off with QEMU exiting 0;
//   - testdata/failing.yml: a failing onboot container stops the boot with its output on the
//     console, and the system powers off cleanly (kiln.onfail's default).
func TestBadInputBoots(t *testing.T) {
	w := setup(t)
	w.pkgBuild(t, minimalPackages...)
	out := t.TempDir()
	for _, name := range []string{"degraded", "failing"} {
		w.must(t, w.kiln, "build", "-arch", "amd64", "-format", "kernel+initrd", "-dir", out, "-name", name,
			filepath.Join("internal/e2e/testdata", name+".yml"))
	}
	t.Run("degraded", func(t *testing.T) {
		t.Parallel()
		vm, typer := startVM(t, filepath.Join(out, "degraded"), "amd64")
		for _, want := range []string{
			// (WaitFor moves past each matched line, so one string per line.)
			`kiln-init: step modules failed (`,
			`kiln-init: onboot fails-optional failed: runc run exited with status 7`,
			`kiln-init: onboot fails-optional is optional`,
			`kiln-init: service hello started`,
			`kiln-init: service missing-binary failed to start: create task`,
			`2 of 3 services up`,
		} {
			waitLine(t, vm, want)
		}
		for _, l := range vm.Console() {
			if strings.Contains(l, "step modules failed") && !strings.Contains(l, `unknown module "no_such_module"`) {
				t.Errorf("the module failure does not name the module: %q", l)
			}
		}
		if _, err := io.WriteString(typer, "kill -TERM 1\n"); err != nil {
			t.Fatal(err)
		}
		waitLine(t, vm, "kiln-init: powering off")
		waitExit(t, vm)
	})
	t.Run("failing", func(t *testing.T) {
		t.Parallel()
		vm, _ := startVM(t, filepath.Join(out, "failing"), "amd64")
		for _, want := range []string{
			`kiln-init: onboot fails failed: runc run exited with status 7`,
			`fails: hello: exiting with status 7`,
			`kiln-init: boot failed: step onboot`,
			`kiln-init: powering off`,
		} {
			waitLine(t, vm, want)
		}
		waitExit(t, vm)
		for _, l := range vm.Console() {
			if strings.Contains(l, "kiln-init: service hello started") {
				t.Errorf("a service started after the boot failed: %q", l)
			}
		}
	})
}

// startVM boots PREFIX-kernel and PREFIX-initrd.img on arch and returns the VM and a writer
// that types into its console. The console goes to PREFIX-console.log.
func startVM(t *testing.T, prefix, arch string) (*qemu.VM, io.Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	cmdline, err := os.ReadFile(prefix + "-cmdline")
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(prefix + "-console.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	stdin, typer := io.Pipe()
	t.Cleanup(func() { typer.Close() })
	vm, err := qemu.Start(ctx, qemu.Config{
		Arch: arch, Kernel: prefix + "-kernel", Initrd: prefix + "-initrd.img",
		Cmdline: strings.TrimSpace(string(cmdline)), Memory: "2048M", Console: log, Stdin: stdin,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Kill)
	return vm, typer
}

func waitLine(t *testing.T, vm *qemu.VM, want string) {
	t.Helper()
	if _, err := vm.WaitFor(context.Background(), want, markerTimeout); err != nil {
		t.Fatalf("waiting for %q: %v", want, err)
	}
}

func waitExit(t *testing.T, vm *qemu.VM) {
	t.Helper()
	select {
	case <-vm.Done():
		if err := vm.Wait(); err != nil {
			var ee *qemu.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("QEMU ended badly: %v", ee)
			}
			t.Fatalf("QEMU: %v", err)
		}
	case <-time.After(markerTimeout):
		t.Fatal(fmt.Errorf("QEMU did not exit after the guest powered off"))
	}
}
