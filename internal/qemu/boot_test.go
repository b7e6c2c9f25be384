package qemu_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-os/kiln/internal/qemu"
	"github.com/kiln-os/kiln/internal/qemu/qemutest"
	"github.com/kiln-os/kiln/internal/testenv"
)

// bootTimeout is generous: TCG on a busy 2-core machine, two VMs at once.
const bootTimeout = 120 * time.Second

func skipShort(t *testing.T) {
	t.Helper()
	testenv.Short(t, "boots a VM")
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestBootMarkerInit boots a Debian kernel with a Go init that prints a marker and powers
// off, on every architecture (and amd64's bzImage too), with a disk, a NIC and a port forward
// attached so QEMU checks those arguments per architecture. It proves the console reaches
// WaitFor, the host side of the forward listens, and power-off ends QEMU with status 0. The
// log gives the time from start to marker.
func TestBootMarkerInit(t *testing.T) {
	skipShort(t)
	cases := []struct {
		name, arch string
		bzImage    bool
		format     qemu.KernelFormat
	}{
		{"amd64", "amd64", false, qemu.FormatELF},
		{"arm64", "arm64", false, qemu.FormatARM64Image},
		{"s390x", "s390x", false, qemu.FormatS390Image},
		{"amd64-bzImage", "amd64", true, qemu.FormatBzImage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kernel := qemutest.Kernel(t, tc.arch)
			if tc.bzImage {
				kernel = qemutest.PackagedKernel(t, tc.arch)
			}
			info, err := qemu.Inspect(kernel)
			if err != nil {
				t.Fatal(err)
			}
			if info.Arch != tc.arch || info.Format != tc.format || info.PVH != (tc.format == qemu.FormatELF) {
				t.Fatalf("Inspect(%s) = %+v, want arch %s, format %s", kernel, info, tc.arch, tc.format)
			}
			marker := "qemu-test-marker " + tc.name
			disk := filepath.Join(t.TempDir(), "disk,with,commas.img")
			if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			initrd := qemutest.MarkerInitrd(t, tc.arch, marker)
			port := freePort(t)
			var console strings.Builder
			start := time.Now()
			vm, err := qemu.Start(t.Context(), qemu.Config{
				// Arch left empty: taken from the kernel.
				Kernel: kernel,
				Initrd: initrd,
				Disks:  []qemu.Disk{{Path: disk}},
				PortForwards: []qemu.Forward{
					{HostAddr: "127.0.0.1", Host: port, Guest: 80},
					{Proto: "udp", HostAddr: "127.0.0.1", Host: port, Guest: 53},
				},
				Console: &console, // read only after Wait
			})
			if err != nil {
				t.Fatal(err)
			}
			defer vm.Kill()
			dialForward(t, vm, port)
			line, err := vm.WaitFor(t.Context(), marker, bootTimeout)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: marker after %.2f s", tc.name, time.Since(start).Seconds())
			if strings.TrimSpace(line) != marker {
				t.Errorf("matched line %q, want %q", line, marker)
			}
			if err := vm.Wait(); err != nil {
				t.Fatalf("after power-off: %v", err)
			}
			if !strings.Contains(console.String(), marker) {
				t.Errorf("Config.Console did not receive the marker line")
			}
		})
	}
}

// dialForward connects to the forwarded host port until QEMU accepts (it listens before the
// guest runs), failing if QEMU exits first.
func dialForward(t *testing.T, vm *qemu.VM, port int) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-vm.Done():
			t.Fatalf("qemu exited before it listened on the forwarded port %s: %v", addr, vm.Wait())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestKernelPanicIsAnError boots the amd64 kernel without an initrd: it cannot mount a root
// and panics; panic=-1 and -no-reboot make QEMU exit 0, which Wait must still report as an
// *ExitError naming the panic, and WaitFor as ErrExited.
func TestKernelPanicIsAnError(t *testing.T) {
	skipShort(t)
	t.Parallel()
	vm, err := qemu.Start(t.Context(), qemu.Config{Kernel: qemutest.Kernel(t, "amd64"), Cmdline: "quiet"})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	_, err = vm.WaitFor(t.Context(), "this line never appears", bootTimeout)
	if !errors.Is(err, qemu.ErrExited) || !strings.Contains(err.Error(), "Kernel panic") {
		t.Errorf("WaitFor error %v, want ErrExited with the panic in the console tail", err)
	}
	var ee *qemu.ExitError
	if err := vm.Wait(); !errors.As(err, &ee) || ee.Code != 0 || !strings.Contains(ee.Panic, "VFS: Unable to mount root fs") || ee.ExitCode() != 1 {
		t.Fatalf("Wait = %v, want an *ExitError with code 0 and the VFS panic", err)
	}
}

// TestPowerdown presses the power button through QMP. On s390x it arrives as a
// signal-quiesce, which the kernel passes to init as SIGINT once Ctrl-Alt-Del is off; the
// init then powers off. On amd64 no one handles the ACPI event, so the VM runs on until Kill,
// and Wait reports the signal.
func TestPowerdown(t *testing.T) {
	skipShort(t)
	const marker = "qemu-test idle init ready"
	t.Run("s390x", func(t *testing.T) {
		t.Parallel()
		vm, err := qemu.Start(t.Context(), qemu.Config{
			Kernel: qemutest.Kernel(t, "s390x"),
			Initrd: qemutest.IdleInitrd(t, "s390x", marker),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer vm.Kill()
		if _, err := vm.WaitFor(t.Context(), marker, bootTimeout); err != nil {
			t.Fatal(err)
		}
		if err := vm.Powerdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := vm.WaitFor(t.Context(), qemutest.SignalLine, bootTimeout); err != nil {
			t.Fatal(err)
		}
		if err := vm.Wait(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("amd64-kill", func(t *testing.T) {
		t.Parallel()
		vm, err := qemu.Start(t.Context(), qemu.Config{
			Kernel: qemutest.Kernel(t, "amd64"),
			Initrd: qemutest.IdleInitrd(t, "amd64", marker),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer vm.Kill()
		if _, err := vm.WaitFor(t.Context(), marker, bootTimeout); err != nil {
			t.Fatal(err)
		}
		if err := vm.Powerdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		vm.Kill()
		var ee *qemu.ExitError
		if err := vm.Wait(); !errors.As(err, &ee) || ee.Code != -1 {
			t.Fatalf("Wait after Kill = %v, want an *ExitError with code -1", err)
		}
	})
}

// TestContextEndStopsQEMU cancels the context of a running VM: QEMU must stop and Wait must
// report the context's error.
func TestContextEndStopsQEMU(t *testing.T) {
	skipShort(t)
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const marker = "qemu-test idle init ready"
	vm, err := qemu.Start(ctx, qemu.Config{
		Kernel: qemutest.Kernel(t, "amd64"),
		Initrd: qemutest.IdleInitrd(t, "amd64", marker),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	if _, err := vm.WaitFor(t.Context(), marker, bootTimeout); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := vm.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel = %v, want context.Canceled", err)
	}
}
