package supervise

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-os/kiln/init/console"
	"github.com/kiln-os/kiln/init/internal/testenv"
)

// binaries finds containerd, its runc shim and runc: KILN_CONTAINERD names the containerd
// binary (the shim must sit next to it), KILN_RUNC the runc binary (the Makefile exports both,
// pointing at bin/ after make tools); without them, bin/ at the repository root, then PATH.
// The test needs root, as containerd does. Anything missing skips, or fails under CI.
func binaries(t *testing.T) (containerd, binDirs string) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "containerd needs root (run the tests as root)")
	}
	containerd, cerr := findBinary("KILN_CONTAINERD", "containerd")
	runc, rerr := findBinary("KILN_RUNC", "runc")
	if err := errors.Join(cerr, rerr); err != nil {
		testenv.SkipOrFail(t, "%v (set KILN_CONTAINERD to containerd v2, with containerd-shim-runc-v2 beside it, and KILN_RUNC to runc; the Makefile exports both from bin/ after make tools)", err)
	}
	shim := filepath.Join(filepath.Dir(containerd), "containerd-shim-runc-v2")
	if _, err := os.Stat(shim); err != nil {
		testenv.SkipOrFail(t, "no containerd-shim-runc-v2 beside KILN_CONTAINERD=%s (make tools builds both into bin/): %v", containerd, err)
	}
	return containerd, filepath.Dir(containerd) + ":" + filepath.Dir(runc)
}

// findBinary returns the program env names, else the repository's bin/name, else name on PATH.
func findBinary(env, name string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return p, nil
	}
	if p, err := filepath.Abs(filepath.Join("..", "..", "bin", name)); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not set and there is no %s in bin/ or on PATH: %w", env, name, err)
	}
	return p, nil
}

// startContainerd runs a private containerd under dir, supervised like kiln-init does it.
func startContainerd(t *testing.T, dir string, c *console.Console) string {
	containerd, binDirs := binaries(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "containerd.toml")
	// The CRI plugins are not needed and would look for CNI; "opt" would write to /opt.
	err := os.WriteFile(cfg, []byte(`version = 3
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.internal.v1.opt"]
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "containerd.sock")
	log, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	p := &Process{
		Name: "containerd", Path: containerd,
		Args:   []string{"--config", cfg, "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"), "--address", sock},
		Env:    []string{"PATH=" + binDirs + ":/usr/sbin:/usr/bin:/sbin:/bin"},
		Output: c.Lines("containerd", log, true), Policy: DefaultPolicy(), Reaper: startReaper(t), Console: c,
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(10 * time.Second); err != nil {
			t.Error(err)
		}
	})
	return sock
}

// writeService compiles testdata/svc into a new bundle's rootfs and writes its config.json.
func writeService(t *testing.T, dir, name string, args []string) {
	t.Helper()
	rootfs := filepath.Join(dir, name, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(rootfs, "svc"), "./testdata/svc")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the test service: %v\n%s", err, out)
	}
	s := specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/"}},
		Root:    &specs.Root{Path: "rootfs"}, // relative, as kiln writes it
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance"}},
		},
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
			{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
		},
			// A cgroup of this test run's own: with none, runc names it after the container ID
			// alone, and a process an earlier, killed run left behind would make it non-empty.
			CgroupsPath: fmt.Sprintf("/kiln-test-%d/%s", os.Getpid(), name),
		},
	}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, con *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(con.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("console never showed %q:\n%s", want, con.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Services run from plain bundle directories through a real containerd: output reaches the
// console and the log, a crashing service is restarted and given up on, a missing binary is
// reported, a killed service comes back, and StopAll stops them.
func TestServicesWithContainerd(t *testing.T) {
	dir := t.TempDir()
	var con syncBuffer
	c := console.New(&con)
	sock := startContainerd(t, filepath.Join(dir, "ctr"), c)
	svcDir := filepath.Join(dir, "services")
	writeService(t, svcDir, "crash", []string{"/svc", "7"})
	writeService(t, svcDir, "good", []string{"/svc"})
	writeService(t, svcDir, "missing", []string{"/no-such-binary"})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := Connect(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	logs := filepath.Join(dir, "log")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	// A namespace of its own: the runc shim keeps state under /run/containerd/runc/NAMESPACE
	// whatever containerd's --state says.
	ns := fmt.Sprintf("kiln-test-%d", os.Getpid())
	s := &Services{Client: client, Console: c, LogDir: logs, CgroupRoot: filepath.Join(dir, "cgroup"), Policy: quickPolicy(), Namespace: ns,
		FIFODir: filepath.Join(dir, "fifo")}
	t.Cleanup(func() {
		os.Remove(filepath.Join("/run/containerd/runc", ns))
		// The services' cgroups (writeService), in every hierarchy, once they are empty.
		dirs, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/*/kiln-test-%d/*", os.Getpid()))
		more, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/kiln-test-%d/*", os.Getpid()))
		for _, d := range append(dirs, more...) {
			os.Remove(d)
			os.Remove(filepath.Dir(d))
		}
	})
	s.Policy.Limit = 2
	up, failed, err := s.StartAll(ctx, svcDir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(up, ",") != "crash,good" || strings.Join(failed, ",") != "missing" {
		t.Errorf("up %q, failed %q", up, failed)
	}
	waitFor(t, &con, "kiln-init: service good started (containerd: task ")
	waitFor(t, &con, "good: svc up\n")
	waitFor(t, &con, "good: svc err\n")
	waitFor(t, &con, "kiln-init: service crash exited (status 7), restarting in 10ms\n")
	waitFor(t, &con, "kiln-init: service crash exited (status 7), restarting in 20ms\n")
	waitFor(t, &con, "kiln-init: service crash exited (status 7); not restarting: it was restarted 2 times within 1m0s; giving up\n")
	waitFor(t, &con, "kiln-init: service missing failed to start: ")
	waitFor(t, &con, "/no-such-binary")

	// Killed from outside kiln-init (as `kill` inside the system would): restarted.
	good, err := client.LoadContainer(namespaces.WithNamespace(ctx, ns), "good")
	if err != nil {
		t.Fatal(err)
	}
	task, err := good.Task(namespaces.WithNamespace(ctx, ns), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Kill(namespaces.WithNamespace(ctx, ns), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &con, "kiln-init: service good exited (status 137), restarting in 10ms\n")
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(con.String(), "kiln-init: service good started (") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("good was not started again:\n%s", con.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for strings.Count(con.String(), "good: svc up\n") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no output from the restarted good:\n%s", con.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := s.StopAll(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(con.String(), "service good exited (status 0), restarting") {
		t.Errorf("a stopped service was restarted:\n%s", con.String())
	}
	log, err := os.ReadFile(filepath.Join(logs, "good.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"svc up\n", "svc err\n", "svc bye\n"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("good.log lacks %q:\n%s", want, log)
		}
	}
	if _, err := client.LoadContainer(namespaces.WithNamespace(ctx, ns), "good"); err == nil {
		t.Error("the container is still there after StopAll")
	}
}
