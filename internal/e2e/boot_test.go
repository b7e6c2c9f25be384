package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiln-os/kiln/internal/qemu"
)

// minimalPackages are the packages images/minimal.yml names.
var minimalPackages = []string{"kernel/virt", "init", "system/runc", "system/containerd", "services/hello", "tools/debian-base"}

// markerTimeout is how long one console marker may take under software emulation, with two
// VMs sharing two cores and other tests running.
const markerTimeout = 4 * time.Minute

// TestMinimalBoots builds the packages of images/minimal.yml for amd64, arm64 and s390x,
// assembles the system for each and boots it in QEMU, checking from the console that: the
// onboot container ran, the services run under containerd, a service that dies is restarted,
// and a shutdown asked for from inside runs onshutdown and powers off with QEMU exiting 0.
func TestMinimalBoots(t *testing.T) {
	w := setup(t)
	w.pkgBuild(t, minimalPackages...)
	out := t.TempDir()
	for _, arch := range []string{"amd64", "arm64", "s390x"} {
		name := "minimal-" + arch
		w.must(t, w.kiln, "build", "-arch", arch, "-format", "kernel+initrd", "-dir", out, "-name", name, "images/minimal.yml")
	}
	for _, arch := range []string{"amd64", "arm64", "s390x"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			bootMinimal(t, filepath.Join(out, "minimal-"+arch), arch)
		})
	}
}

func bootMinimal(t *testing.T, prefix, arch string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmdline, err := os.ReadFile(prefix + "-cmdline")
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(prefix + "-console.log")
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	stdin, typer := io.Pipe()
	defer typer.Close()
	start := time.Now()
	vm, err := qemu.Start(ctx, qemu.Config{
		Arch:    arch,
		Kernel:  prefix + "-kernel",
		Initrd:  prefix + "-initrd.img",
		Cmdline: strings.TrimSpace(string(cmdline)),
		Memory:  "2048M",
		Console: log,
		Stdin:   stdin,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	failed := func(err error) {
		t.Helper()
		t.Fatalf("%s: %v\n(the whole console is in %s)", arch, err, log.Name())
	}
	expect := func(what string) {
		t.Helper()
		if _, err := vm.WaitFor(ctx, what, markerTimeout); err != nil {
			failed(err)
		}
		t.Logf("%s: %q after %s", arch, what, time.Since(start).Round(100*time.Millisecond))
	}
	expect("kiln-init: onboot hello-onboot exited 0")
	expect("kiln-init: all services up")
	expect("kiln-init: service crasher exited (status 3)")
	expect("kiln-init: service crasher started")

	// The console shell: containerd runs the services.
	if _, err := fmt.Fprintf(typer, "ctr -n %s tasks ls\n", containerdNamespace); err != nil {
		failed(err)
	}
	running := regexp.MustCompile(`^hello\s+\d+\s+RUNNING`)
	if _, err := vm.WaitForMatch(ctx, running, markerTimeout); err != nil {
		failed(fmt.Errorf("ctr tasks ls did not list hello as RUNNING: %w", err))
	}

	// Shut down from inside.
	if _, err := fmt.Fprintln(typer, "kill -TERM 1"); err != nil {
		failed(err)
	}
	expect("kiln-init: onshutdown hello-onshutdown exited 0")
	expect("kiln-init: powering off")
	done := make(chan error, 1)
	go func() { done <- vm.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			failed(fmt.Errorf("QEMU: %w", err))
		}
	case <-time.After(markerTimeout):
		failed(fmt.Errorf("QEMU did not exit after the guest powered off"))
	}
	t.Logf("%s: booted, checked and powered off in %s", arch, time.Since(start).Round(100*time.Millisecond))
}

// containerdNamespace is the containerd namespace kiln's init runs services in (LinuxKit's).
const containerdNamespace = "services.linuxkit"
