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
//   - testdata/degraded.yml: an unknown module, a failing optional onboot container, an optional
//     onboot container that hangs past its kiln.onboot.timeout and a service whose binary is
//     missing are each reported, the rest comes up, and a shutdown asked for from inside still
//     powers off with QEMU exiting 0;
//   - testdata/failing.yml: a failing onboot container stops the boot with its output on the
//     console, and the system powers off cleanly (kiln.onfail's default).
//
// At the end the whole console is checked: the expected lines in order, and no failure line
// other than the expected ones.
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
		want := []string{
			// (WaitFor moves past each matched line, so one string per line.)
			`kiln-init: step modules failed (`,
			`kiln-init: onboot fails-optional failed: runc run exited with status 7`,
			`kiln-init: onboot fails-optional is optional`,
			`kiln-init: onboot hangs failed: timed out: still running after 10s (its kiln.onboot.timeout annotation)`,
			`kiln-init: onboot hangs is optional`,
			`kiln-init: service hello started`,
			`kiln-init: service missing-binary failed to start: create task`,
			`2 of 3 services up`,
		}
		for _, w := range want {
			waitLine(t, vm, w)
		}
		if _, err := io.WriteString(typer, "kill -TERM 1\n"); err != nil {
			t.Fatal(err)
		}
		want = append(want, "kiln-init: powering off")
		waitLine(t, vm, "kiln-init: powering off")
		waitExit(t, vm)
		checkConsole(t, vm, want)
		lines, _ := vm.Transcript()
		for _, l := range lines {
			if strings.Contains(l, "step modules failed") && !strings.Contains(l, `unknown module "no_such_module"`) {
				t.Errorf("the module failure does not name the module: %q", l)
			}
		}
	})
	t.Run("failing", func(t *testing.T) {
		t.Parallel()
		vm, _ := startVM(t, filepath.Join(out, "failing"), "amd64")
		// The container's output is on the console as it comes, before kiln-init's verdict.
		want := []string{
			`fails: hello: exiting with status 7`,
			`kiln-init: onboot fails failed: runc run exited with status 7`,
			`kiln-init: step onboot failed (`,
			`kiln-init: boot failed: step onboot`,
			`kiln-init: powering off`,
		}
		for _, w := range want {
			waitLine(t, vm, w)
		}
		waitExit(t, vm)
		checkConsole(t, vm, want)
		lines, _ := vm.Transcript()
		for _, l := range lines {
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
	return startVMWith(t, prefix, arch)
}

// startVMWith is startVM with disks attached.
func startVMWith(t *testing.T, prefix, arch string, disks ...qemu.Disk) (*qemu.VM, io.Writer) {
	t.Helper()
	return startVMConfig(t, prefix, qemu.Config{Arch: arch, Disks: disks})
}

// startVMConfig boots PREFIX-kernel and PREFIX-initrd.img with the command line in
// PREFIX-cmdline, c.Cmdline appended, and the rest of c (2 GiB of memory unless c says; the
// console to PREFIX-console.log unless c names a writer).
func startVMConfig(t *testing.T, prefix string, c qemu.Config) (*qemu.VM, io.Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	t.Cleanup(cancel)
	cmdline, err := os.ReadFile(prefix + "-cmdline")
	if err != nil {
		t.Fatal(err)
	}
	if c.Console == nil {
		log, err := os.Create(prefix + "-console.log")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { log.Close() })
		c.Console = log
	}
	stdin, typer := io.Pipe()
	t.Cleanup(func() { typer.Close() })
	c.Kernel, c.Initrd = prefix+"-kernel", prefix+"-initrd.img"
	c.Cmdline = strings.TrimSpace(strings.TrimSpace(string(cmdline)) + " " + c.Cmdline)
	c.Stdin = stdin
	if c.Memory == "" {
		c.Memory = "2048M"
	}
	vm, err := qemu.Start(ctx, c)
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

// typeUntil types line into the guest's console shell until the console shows want, which
// must not be part of line itself: a shell that is still starting can swallow what arrives
// before it reads (BusyBox's ash asks the terminal for its cursor position then), so the line
// is typed again every 20 seconds, for at most markerTimeout.
func typeUntil(t *testing.T, vm *qemu.VM, typer io.Writer, line, want string) {
	t.Helper()
	deadline := time.Now().Add(markerTimeout)
	for {
		if _, err := fmt.Fprintln(typer, line); err != nil {
			t.Fatal(err)
		}
		_, err := vm.WaitFor(context.Background(), want, 20*time.Second)
		switch {
		case err == nil:
			return
		case !errors.Is(err, context.DeadlineExceeded) || time.Now().After(deadline):
			t.Fatalf("typed %q, waiting for %q: %v", line, want, err)
		}
	}
}

// checkConsole checks the whole console once QEMU has exited: the lines in want in order, and
// no failure line (qemu.IsFailureLine) that is not one of them.
func checkConsole(t *testing.T, vm *qemu.VM, want []string) {
	t.Helper()
	if err := vm.Check(want...); err != nil {
		t.Error(err)
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
