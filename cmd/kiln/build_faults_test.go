package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-os/kiln/assemble"
	"github.com/kiln-os/kiln/internal/atomicfile"
)

// TestKilnFaultsHelper is the kiln process of the exec tests below: the test binary runs
// itself with KILN_FAULTS_HELPER=1 and kiln's arguments after "--", so no separate build of
// the command is needed. Run as a test of its own (it never skips, so CI sees nothing
// skipped), it checks such a process is kiln: an unknown command is a usage mistake, code 2.
func TestKilnFaultsHelper(t *testing.T) {
	if os.Getenv("KILN_FAULTS_HELPER") == "1" {
		os.Args = append([]string{"kiln"}, flag.Args()...)
		main()
		return
	}
	var stderr bytes.Buffer
	err := kilnCmd(t, &stderr, "no-such-command").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("kiln no-such-command in the helper process: %v, want exit code 2; stderr:\n%s", err, stderr.String())
	}
}

// kilnCmd is a kiln subprocess with its own cache.
func kilnCmd(t *testing.T, stderr *bytes.Buffer, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestKilnFaultsHelper$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "KILN_FAULTS_HELPER=1", "KILN_CACHE="+filepath.Join(t.TempDir(), "cache"))
	cmd.Stderr = stderr
	return cmd
}

// bigSystem writes a YAML whose files section holds a sparse 3 GiB file: no disk used, and a
// build takes long enough to be interrupted while it streams.
func bigSystem(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(3 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	yml := filepath.Join(dir, "big.yml")
	if err := os.WriteFile(yml, []byte("files:\n  - path: big\n    source: "+big+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return yml
}

func temps(dir string) []string {
	l, _ := filepath.Glob(filepath.Join(dir, atomicfile.Prefix+"*"))
	return l
}

// startMidBuild starts `kiln build` of the big system into out and returns once one of its
// temporary outputs holds more than 1 MiB: the build is streaming.
func startMidBuild(t *testing.T, out string, stderr *bytes.Buffer) *exec.Cmd {
	t.Helper()
	cmd := kilnCmd(t, stderr, "build", "-format", "tar,docker", "-dir", out, bigSystem(t))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range temps(out) {
			if fi, err := os.Stat(p); err == nil && fi.Size() > 1<<20 {
				return cmd
			}
		}
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("the build never started writing its outputs; stderr:\n%s", stderr.String())
	return nil
}

// waitExit waits for cmd, failing the test if it takes longer than d.
func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("kiln did not exit within %v", d)
		return nil
	}
}

// TestBuildSIGTERM interrupts a build while it streams a large file: kiln exits promptly,
// with code 1 and a message, and leaves neither outputs nor temporary files.
func TestBuildSIGTERM(t *testing.T) {
	out := t.TempDir()
	var stderr bytes.Buffer
	cmd := startMidBuild(t, out, &stderr)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := waitExit(t, cmd, 10*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want code 1; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "kiln build: interrupted") {
		t.Errorf("stderr lacks the interruption:\n%s", stderr.String())
	}
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		t.Errorf("an interrupted build left %s", e.Name())
	}
}

// TestBuildSIGKILLThenClean kills a build with SIGKILL while it streams (its temporary files
// stay), then checks the next build into the same folder removes them and says so.
func TestBuildSIGKILLThenClean(t *testing.T) {
	out := t.TempDir()
	var stderr bytes.Buffer
	cmd := startMidBuild(t, out, &stderr)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitExit(t, cmd, 10*time.Second)
	left := temps(out)
	if len(left) == 0 {
		t.Fatal("the killed build left no temporary file; the test needs one")
	}

	small := filepath.Join(t.TempDir(), "small.yml")
	if err := os.WriteFile(small, []byte("files:\n  - path: etc/motd\n    contents: hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr2 bytes.Buffer
	next := kilnCmd(t, &stderr2, "build", "-format", "tar", "-dir", out, small)
	if err := next.Start(); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, next, 60*time.Second); err != nil {
		t.Fatalf("next build: %v\n%s", err, stderr2.String())
	}
	if want := "removed " + strconv.Itoa(len(left)) + " stale temporary file(s) ("; !strings.Contains(stderr2.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr2.String())
	}
	if l := temps(out); len(l) > 0 {
		t.Errorf("temporary files still there: %v", l)
	}
	if _, err := os.Stat(assemble.TarFile(filepath.Join(out, "small"))); err != nil {
		t.Errorf("the next build's output: %v", err)
	}
}

// TestBuildFIFOs: a named pipe as the YAML file or as a files source fails at once (exit 1),
// naming it, where kiln used to block for ever.
func TestBuildFIFOs(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.yml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src.yml")
	if err := os.WriteFile(src, []byte("files:\n  - path: etc/x\n    source: "+fifo+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KILN_CACHE", filepath.Join(dir, "cache"))
	for _, yml := range []string{fifo, src} {
		out := t.TempDir()
		var stderr bytes.Buffer
		done := make(chan int, 1)
		go func() {
			done <- run(context.Background(), []string{"build", "-format", "tar", "-dir", out, yml}, &stderr)
		}()
		select {
		case code := <-done:
			if code != 1 || !strings.Contains(stderr.String(), fifo+" is a named pipe") {
				t.Errorf("%s: exit %d, stderr:\n%s", yml, code, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: kiln build blocked on a named pipe", yml)
		}
		if ents, _ := os.ReadDir(out); len(ents) > 0 {
			t.Errorf("%s: a failed build left %d files", yml, len(ents))
		}
	}
}

// TestPanicIsAnError: a panic in a command reaches the user as an error (exit code 1 in
// run), not as Go's crash report with exit code 2.
func TestPanicIsAnError(t *testing.T) {
	err := runCommand(context.Background(), command{name: "x", run: func(context.Context, []string) error {
		panic("boom")
	}}, nil)
	if err == nil || !strings.Contains(err.Error(), "internal error") {
		t.Fatalf("error = %v", err)
	}
	var ue usageError
	if errors.As(err, &ue) {
		t.Error("a panic must not read as a usage mistake")
	}
}
