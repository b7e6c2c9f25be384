package builder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/internal/testutil"
)

// shortTempDir returns a temporary directory with a short path: the daemon's socket lives in it
// and unix socket paths are limited to 107 bytes, which t.TempDir can come close to.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func readPID(t *testing.T, d *Daemon) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(d.Root, pidFileName))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	return pid
}

func TestDaemonLifecycle(t *testing.T) {
	t.Parallel()
	bkd, runc := testutil.BuildkitdBinaries(t)
	ctx := t.Context()
	port := closedPort(t)
	d := &Daemon{Root: shortTempDir(t), Buildkitd: bkd, Runc: runc, TCP: "127.0.0.1:" + port}
	t.Cleanup(func() {
		if err := d.Stop(context.Background()); err != nil {
			t.Errorf("Stop at cleanup: %v", err)
		}
	})

	st, err := d.Status(ctx)
	if err != nil || st.Running {
		t.Fatalf("Status before Start = %+v, %v; want not running", st, err)
	}

	// TCP without certificates is refused before anything starts.
	err = d.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "kiln builder certs") {
		t.Fatalf("Start with TCP and no certificates: %v, want a refusal naming kiln builder certs", err)
	}
	if _, err := os.Stat(filepath.Join(d.Root, pidFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("refused Start left a pid file: %v", err)
	}

	if _, err := GenerateCerts(d.CertDir(), nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := readPID(t, d)
	if err := d.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if again := readPID(t, d); again != pid {
		t.Fatalf("second Start replaced the daemon: pid %d, then %d", pid, again)
	}

	st, err = d.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	wantAddrs := []string{d.Address(), "tcp://127.0.0.1:" + port}
	if !st.Running || st.PID != pid || !slices.Equal(st.Addresses, wantAddrs) || !st.TLS || st.Version == "" {
		t.Errorf("Status = %+v; want running, pid %d, addresses %v, TLS and a version", st, pid, wantAddrs)
	}
	if len(st.Workers) == 0 || !slices.Contains(st.Workers[0].Platforms, "linux/amd64") ||
		st.Workers[0].Executor != "oci" || st.Workers[0].Snapshotter != "overlayfs" {
		t.Errorf("workers %+v; want an oci/overlayfs worker building linux/amd64", st.Workers)
	}
	table := st.String()
	for _, s := range []string{fmt.Sprintf("running (pid %d)", pid), "tcp://127.0.0.1:" + port + " (mutual TLS)",
		"WORKER", "overlayfs", "linux/amd64", d.LogFile()} {
		if !strings.Contains(table, s) {
			t.Errorf("status table lacks %q:\n%s", s, table)
		}
	}

	// Remote kiln reaches it over TCP with the client certificate.
	nodes, err := ParseNodes("amd64=tcp://127.0.0.1:"+port, d.CertDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := Connect(ctx, nodes[0])
	if err != nil {
		t.Fatalf("Connect over TCP: %v", err)
	}
	c.Close()

	// Asking for other addresses while it runs is an error, not a silent no-op.
	plain := *d
	plain.TCP = ""
	if err := plain.Start(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("Start with other addresses: %v, want an already-running error", err)
	}

	if err := d.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if processAlive(pid, d.StateDir()) {
		t.Errorf("buildkitd %d still runs after Stop", pid)
	}
	for _, name := range []string{pidFileName, socketName} {
		if _, err := os.Stat(filepath.Join(d.Root, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after Stop: %v, want it removed", name, err)
		}
	}
	if st, err := d.Status(ctx); err != nil || st.Running || st.String() == "" ||
		!strings.Contains(st.String(), "stopped") {
		t.Errorf("Status after Stop = %+v, %v; want stopped", st, err)
	}
	if err := d.Stop(ctx); err != nil {
		t.Errorf("Stop when stopped: %v", err)
	}

	// Stale files: a pid file naming a live process that is not buildkitd (this test), and a
	// socket left behind as a plain file.
	if err := os.WriteFile(filepath.Join(d.Root, pidFileName), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Root, socketName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := d.Status(ctx); err != nil || st.Running {
		t.Errorf("Status with a stale pid file = %+v, %v; want stopped", st, err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatalf("Start over stale files: %v", err)
	}
	if again := readPID(t, d); again == os.Getpid() || again == pid {
		t.Errorf("pid file holds %d after restart (test %d, old daemon %d)", again, os.Getpid(), pid)
	}
	c, err = Connect(ctx, Node{Platform: "linux/amd64", Address: d.Address()})
	if err != nil {
		t.Fatalf("Connect over the socket after restart: %v", err)
	}
	c.Close()
}

func TestDaemonStartFailureShowsLog(t *testing.T) {
	t.Parallel()
	bkd, runc := testutil.BuildkitdBinaries(t)
	// buildkitd exits at once when the socket's group does not exist.
	d := &Daemon{Root: shortTempDir(t), Buildkitd: bkd, Runc: runc, Group: "kiln-no-such-group"}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	err := d.Start(t.Context())
	if err == nil {
		t.Fatal("Start succeeded with a group that does not exist")
	}
	for _, s := range []string{"exited while starting", d.LogFile(), "kiln-no-such-group"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	if _, err := os.Stat(filepath.Join(d.Root, pidFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed Start left a pid file: %v", err)
	}
}

func TestDaemonStartRefusals(t *testing.T) {
	long := filepath.Join(t.TempDir(), strings.Repeat("r", 100))
	tests := []struct {
		name string
		d    Daemon
		want string
	}{
		{"socket path too long", Daemon{Root: long, Buildkitd: "/nonexistent/buildkitd", Runc: "/nonexistent/runc"},
			"shorter builder directory"},
		{"bad TCP address", Daemon{Root: shortTempDir(t), TCP: "127.0.0.1"}, "want HOST:PORT"},
		{"TCP without certificates", Daemon{Root: shortTempDir(t), TCP: "127.0.0.1:1", Buildkitd: "/nonexistent/buildkitd",
			Runc: "/nonexistent/runc"}, "kiln builder certs"},
		{"missing buildkitd", Daemon{Root: shortTempDir(t), Buildkitd: "/nonexistent/buildkitd", Runc: "/nonexistent/runc"},
			"starting /nonexistent/buildkitd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.d.Start(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDaemonStopNeverStarted(t *testing.T) {
	for _, root := range []string{t.TempDir(), filepath.Join(t.TempDir(), "absent")} {
		d := &Daemon{Root: root}
		if err := d.Stop(t.Context()); err != nil {
			t.Errorf("Stop(%s): %v", root, err)
		}
		if st, err := d.Status(t.Context()); err != nil || st.Running {
			t.Errorf("Status(%s) = %+v, %v", root, st, err)
		}
	}
}

func TestDefaultRoot(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv(RootEnv, "")
	if got, err := DefaultRoot(); err != nil || got != filepath.Join(home, ".kiln", "builder") {
		t.Errorf("DefaultRoot() = %q, %v; want ~/.kiln/builder", got, err)
	}
	t.Setenv(RootEnv, "rel/builder")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DefaultRoot(); err != nil || got != filepath.Join(wd, "rel", "builder") {
		t.Errorf("DefaultRoot() with %s=rel/builder = %q, %v", RootEnv, got, err)
	}
	d := &Daemon{}
	if got := d.Address(); got != "unix://"+filepath.Join(wd, "rel", "builder", "buildkitd.sock") {
		t.Errorf("Address() = %q", got)
	}
}

func TestFindBinary(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "buildkitd")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExe := filepath.Join(dir, "runc")
	if err := os.WriteFile(notExe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(BuildkitdEnv, exe)
	if got, err := FindBuildkitd(); err != nil || got != exe {
		t.Errorf("FindBuildkitd() = %q, %v; want %q", got, err, exe)
	}
	t.Setenv(RuncEnv, notExe)
	if _, err := FindRunc(); err == nil || !strings.Contains(err.Error(), RuncEnv) {
		t.Errorf("FindRunc() with a non-executable file: %v, want an error naming %s", err, RuncEnv)
	}
	t.Setenv(RuncEnv, filepath.Join(dir, "absent"))
	if _, err := FindRunc(); err == nil {
		t.Error("FindRunc() with a missing file succeeded")
	}

	// Without the variable, the checkout's bin/ is found from a package directory, and an
	// unknown binary's error tells how to get it.
	t.Setenv(BuildkitdEnv, "")
	if root, ok := checkoutRoot(); ok {
		want := filepath.Join(root, "bin", "buildkitd")
		if checkExecutable(want) == nil {
			if got, err := FindBuildkitd(); err != nil || got != want {
				t.Errorf("FindBuildkitd() = %q, %v; want %q", got, err, want)
			}
		}
	}
	t.Setenv("PATH", dir)
	if _, err := findBinary("kiln-no-such-tool", "KILN_NO_SUCH_TOOL"); err == nil ||
		!strings.Contains(err.Error(), "make tools") || !strings.Contains(err.Error(), "KILN_NO_SUCH_TOOL") {
		t.Errorf("findBinary of a missing tool: %v", err)
	}
}

func TestFlagValues(t *testing.T) {
	args := []string{"buildkitd", "--addr", "unix:///a", "--root=/r", "--addr=tcp://:1", "--debug", "--addr"}
	if got := flagValues(args, "--addr"); !slices.Equal(got, []string{"unix:///a", "tcp://:1"}) {
		t.Errorf("flagValues --addr = %v", got)
	}
	if got := flagValues(args, "--root"); !slices.Equal(got, []string{"/r"}) {
		t.Errorf("flagValues --root = %v", got)
	}
}
