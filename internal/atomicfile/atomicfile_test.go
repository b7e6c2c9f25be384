package atomicfile

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCommitAndAbort(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "out.bin")
	if err := Write(p, []byte("one"), 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := Create(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("two, half written"); err != nil {
		t.Fatal(err)
	}
	f.Abort()
	f.Abort()
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "one" {
		t.Fatalf("after abort: %q, %v", got, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if err := WriteFile(p, 0o644, func(io.Writer) error { return errors.New("boom") }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failed write: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Fatalf("left files behind: %v", ents)
	}
	f, _ = Create(p, 0o644)
	_, _ = f.WriteString("three")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort() // no effect after commit
	if got, _ := os.ReadFile(p); string(got) != "three" {
		t.Fatalf("after commit: %q", got)
	}
	if err := f.Commit(); err == nil {
		t.Fatal("a second commit succeeded")
	}
}

// TestCleanStaleKeepsLiveWriters: a temporary file of a writer that is still running is kept,
// one whose writer was killed with SIGKILL is removed.
func TestCleanStaleKeepsLiveWriters(t *testing.T) {
	if os.Getenv("ATOMICFILE_HELPER") != "" {
		f, err := Create(os.Getenv("ATOMICFILE_HELPER"), 0o644)
		if err != nil {
			os.Exit(3)
		}
		_, _ = f.WriteString("partial")
		os.Stdout.WriteString("ready\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	dir := t.TempDir()
	live, err := Create(filepath.Join(dir, "live"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()

	cmd := exec.Command(os.Args[0], "-test.run=^TestCleanStaleKeepsLiveWriters$")
	cmd.Env = append(os.Environ(), "ATOMICFILE_HELPER="+filepath.Join(dir, "killed"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("helper: %q %v", buf, err)
	}
	// While the helper lives its file is kept.
	if removed, _, err := CleanStale(dir); err != nil || len(removed) != 0 {
		t.Fatalf("removed live files: %v %v", removed, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	removed, n, err := CleanStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || !strings.Contains(filepath.Base(removed[0]), Prefix+"killed-") || n != int64(len("partial")) {
		t.Fatalf("removed %v (%d bytes), want the killed writer's file", removed, n)
	}
	if _, err := os.Stat(live.Name()); err != nil {
		t.Fatalf("the live writer's file is gone: %v", err)
	}
	if _, _, err := CleanStale(filepath.Join(dir, "missing")); err != nil {
		t.Fatalf("missing folder: %v", err)
	}
}
