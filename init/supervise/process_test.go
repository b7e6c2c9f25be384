package supervise

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-os/kiln/init/console"
	"github.com/kiln-os/kiln/init/reaper"
)

// syncBuffer is a bytes.Buffer safe to read while the console writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startReaper(t *testing.T) *reaper.Reaper {
	t.Helper()
	r := reaper.New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// A quick policy, so the test does not take seconds per restart.
func quickPolicy() Policy {
	return Policy{Mode: Always, Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond, Limit: 3, Window: time.Minute, Stable: time.Minute}
}

func waitDone(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatal("supervision did not end")
	}
}

func TestProcessRestartsThenGivesUp(t *testing.T) {
	var con, log syncBuffer
	c := console.New(&con)
	p := &Process{
		Name: "flaky", Path: "/bin/sh", Args: []string{"-c", "echo hello; echo oops >&2; exit 3"},
		Output: c.Lines("flaky", &log, false), Policy: quickPolicy(), Reaper: startReaper(t), Console: c,
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p.Done())
	out := con.String()
	for _, want := range []string{
		"kiln-init: flaky exited (status 3), restarting in 10ms\n",
		"kiln-init: flaky exited (status 3), restarting in 20ms\n",
		"kiln-init: flaky exited (status 3), restarting in 40ms\n",
		"kiln-init: flaky exited (exit status 3); not restarting: it was restarted 3 times within 1m0s; giving up\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	// Four runs; the output reaches both the console (prefixed) and the log (raw). The last
	// run's copy may still be on its way when supervision ends.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(log.String(), "hello\n") < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := strings.Count(log.String(), "hello\n"); n != 4 {
		t.Errorf("log has %d runs, want 4:\n%s", n, log.String())
	}
	if n := strings.Count(con.String(), "flaky: oops\n"); n < 3 {
		t.Errorf("console has %d prefixed stderr lines:\n%s", n, con.String())
	}
}

func TestProcessStop(t *testing.T) {
	tests := []struct {
		name   string
		script string
		killed bool
	}{
		{"stops on SIGTERM", "echo ready; exec sleep 600", false},
		{"killed after the grace period", `trap "" TERM; echo ready; while :; do sleep 0.05; done`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var con syncBuffer
			c := console.New(&con)
			p := &Process{Name: "svc", Path: "/bin/sh", Args: []string{"-c", tt.script}, Output: c.Lines("svc", nil, false),
				Policy: quickPolicy(), Reaper: startReaper(t), Console: c}
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(con.String(), "svc: ready\n") {
				if time.Now().After(deadline) {
					t.Fatal("the script never got ready")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := p.Stop(300 * time.Millisecond); err != nil {
				t.Fatal(err)
			}
			waitDone(t, p.Done())
			out := con.String()
			if strings.Contains(out, "restarting") {
				t.Errorf("a stopped process was restarted:\n%s", out)
			}
			if got := strings.Contains(out, "did not stop within 300ms; killing it"); got != tt.killed {
				t.Errorf("killed=%v, want %v:\n%s", got, tt.killed, out)
			}
		})
	}
}

func TestProcessStartFailure(t *testing.T) {
	c := console.New(&syncBuffer{})
	p := &Process{Name: "containerd", Path: "/nonexistent/containerd", Policy: quickPolicy(), Reaper: startReaper(t), Console: c}
	err := p.Start()
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/containerd") {
		t.Fatalf("err = %v", err)
	}
	if err := p.Stop(time.Second); err != nil {
		t.Fatalf("Stop after a failed start: %v", err)
	}
}
