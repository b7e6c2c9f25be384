package reaper

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-os/kiln/init/internal/testenv"
)

func startReaper(t *testing.T) *Reaper {
	t.Helper()
	r := New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func wait(t *testing.T, p *Proc) unix.WaitStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("wait for pid %d: %v", p.Pid, err)
	}
	return ws
}

func TestExitStatus(t *testing.T) {
	r := startReaper(t)
	tests := []struct {
		script   string
		code     int
		describe string
	}{
		{"exit 0", 0, "exit status 0"},
		{"exit 3", 3, "exit status 3"},
		{"kill -9 $$", 137, "killed by signal 9 (SIGKILL)"},
		{"kill -TERM $$", 143, "killed by signal 15 (SIGTERM)"},
	}
	for _, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			p, err := r.Start(exec.Command("/bin/sh", "-c", tt.script))
			if err != nil {
				t.Fatal(err)
			}
			ws := wait(t, p)
			if got := ExitCode(ws); got != tt.code {
				t.Errorf("ExitCode = %d, want %d", got, tt.code)
			}
			if got := Describe(ws); got != tt.describe {
				t.Errorf("Describe = %q, want %q", got, tt.describe)
			}
		})
	}
}

// Many processes exiting at once each get their own status, never another's.
func TestConcurrentStartsGetTheirOwnStatus(t *testing.T) {
	r := startReaper(t)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := r.Start(exec.Command("/bin/sh", "-c", fmt.Sprintf("exit %d", i)))
			if err != nil {
				errs <- err
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ws, err := p.Wait(ctx)
			if err != nil {
				errs <- err
				return
			}
			if ExitCode(ws) != i {
				errs <- fmt.Errorf("process %d got status %d", i, ExitCode(ws))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSignal(t *testing.T) {
	r := startReaper(t)
	p, err := r.Start(exec.Command("/bin/sleep", "600"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := wait(t, p); ExitCode(ws) != 143 {
		t.Fatalf("got %s, want SIGTERM", Describe(ws))
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signalling an exited process: %v, want nil", err)
	}
}

func TestStartRejectsWritersThatNeedWait(t *testing.T) {
	r := New()
	cmd := exec.Command("/bin/true")
	cmd.Stdout = &bytes.Buffer{}
	if _, err := r.Start(cmd); err == nil {
		t.Fatal("Start accepted a bytes.Buffer as stdout; its copying goroutine would need cmd.Wait")
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd = exec.Command("/bin/true")
	cmd.Stdout = f
	p, err := r.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	for r.Reap() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	<-p.Done()
}

func TestStartMissingBinary(t *testing.T) {
	r := New()
	if _, err := r.Start(exec.Command("/nonexistent/program")); err == nil {
		t.Fatal("Start of a missing program succeeded")
	}
}

// As PID 1 the reaper inherits orphans; a child subreaper inherits them the same way, so this
// test makes itself one and checks that an orphan's exit is collected and counted.
func TestOrphansAreReaped(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		testenv.SkipOrFail(t, "cannot become a child subreaper (prctl PR_SET_CHILD_SUBREAPER needs Linux 3.4+): %v", err)
	}
	r := startReaper(t)
	p, err := r.Start(exec.Command("/bin/sh", "-c", "sleep 0.2 & exit 0"))
	if err != nil {
		t.Fatal(err)
	}
	if ws := wait(t, p); ExitCode(ws) != 0 {
		t.Fatalf("sh: %s", Describe(ws))
	}
	deadline := time.Now().Add(30 * time.Second)
	for r.Orphans() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the orphaned sleep was never reaped")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
