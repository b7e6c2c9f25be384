package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// minimalPackages are the packages images/minimal.yml names.
var minimalPackages = []string{"kernel/virt", "init", "system/runc", "system/containerd", "services/hello", "services/shell"}

// markerTimeout is how long one console marker may take under software emulation, with two
// VMs sharing two cores and other tests running.
const markerTimeout = 4 * time.Minute

// TestMinimalBoots builds the packages of images/minimal.yml for each of e2eArches (amd64 and
// arm64; s390x too in make test-heavy),
// assembles the system for each (amd64 twice, which must give the same kernel, initrd and
// command line bytes) and boots it in QEMU, checking from the console that: the
// onboot container ran, the services run under containerd, a service that dies is restarted,
// and a shutdown asked for from inside runs onshutdown and powers off with QEMU exiting 0;
// and, over the whole console at the end, that nothing failed (no step, container or panic).
func TestMinimalBoots(t *testing.T) {
	w := setup(t)
	w.pkgBuild(t, minimalPackages...)
	out := t.TempDir()
	for _, arch := range e2eArches {
		name := "minimal-" + arch
		w.must(t, w.kiln, "build", "-arch", arch, "-format", "kernel+initrd", "-dir", out, "-name", name, "images/minimal.yml")
	}
	// The same inputs give the same bytes: build amd64 again, pinned by the first build's lock.
	w.rebuildSame(t, out, "minimal-amd64", "amd64", "images/minimal.yml")
	for _, arch := range e2eArches {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			bootMinimal(t, filepath.Join(out, "minimal-"+arch), arch)
		})
	}
}

func bootMinimal(t *testing.T, prefix, arch string) {
	ctx := context.Background() // the VM's own deadline (startVM) bounds every wait
	start := time.Now()
	vm, typer := startVM(t, prefix, arch)
	log := prefix + "-console.log"
	failed := func(err error) {
		t.Helper()
		t.Fatalf("%s: %v\n(the whole console is in %s)", arch, err, log)
	}
	var seen []string // every line expected, in order, for the check of the whole console
	expect := func(what string) {
		t.Helper()
		if _, err := vm.WaitFor(ctx, what, markerTimeout); err != nil {
			failed(err)
		}
		seen = append(seen, what)
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
	waitExit(t, vm)
	// The whole console, start to end: no failure anywhere (a step, a container, a panic).
	if err := vm.Check(seen...); err != nil {
		failed(err)
	}
	t.Logf("%s: booted, checked and powered off in %s", arch, time.Since(start).Round(100*time.Millisecond))
}

// containerdNamespace is the containerd namespace kiln's init runs services in (LinuxKit's).
const containerdNamespace = "services.linuxkit"
