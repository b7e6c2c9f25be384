// Package reaper is the only place in kiln-init that waits for child processes. As PID 1,
// init inherits every orphan and must reap it, but a loop calling wait4(-1) would steal the
// exit status of processes that other parts of init started and are waiting for. So nobody
// else waits: processes are started through Reaper.Start, which registers the pid before
// the reaper can see it exit, and the reaper hands each exit to the registered Proc. Exits of
// unregistered processes (orphans) are collected and dropped.
//
// Never call exec.Cmd.Wait or os.Process.Wait on a process started here.
package reaper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Reaper collects exit statuses and dispatches them to their Procs.
type Reaper struct {
	mu      sync.Mutex
	waiters map[int]*Proc
	orphans int
	kick    chan struct{}
}

// New returns a Reaper. Call Run to start collecting.
func New() *Reaper {
	return &Reaper{waiters: map[int]*Proc{}, kick: make(chan struct{}, 1)}
}

// Proc is a process started by Start.
type Proc struct {
	Pid    int
	p      *os.Process
	done   chan struct{}
	status unix.WaitStatus
}

// Start starts cmd and registers it. cmd.Stdin, cmd.Stdout and cmd.Stderr must each be nil or
// an *os.File: other writers make os/exec start copying goroutines that only cmd.Wait ends,
// and cmd.Wait must not be called. Start holds the reaper's lock while the process starts, so
// its exit can never be collected before it is registered.
func (r *Reaper) Start(cmd *exec.Cmd) (*Proc, error) {
	for what, f := range map[string]any{"stdin": cmd.Stdin, "stdout": cmd.Stdout, "stderr": cmd.Stderr} {
		if f == nil {
			continue
		}
		if _, ok := f.(*os.File); !ok {
			return nil, fmt.Errorf("start %s: %s must be nil or an *os.File, got %T (use a pipe)", cmd.Path, what, f)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{Pid: cmd.Process.Pid, p: cmd.Process, done: make(chan struct{})}
	r.waiters[p.Pid] = p
	return p, nil
}

// Run collects exits until ctx ends: on every SIGCHLD, and when Kick is called.
func (r *Reaper) Run(ctx context.Context) {
	sig := make(chan os.Signal, 16)
	signal.Notify(sig, syscall.SIGCHLD)
	defer signal.Stop(sig)
	for {
		r.Reap()
		select {
		case <-ctx.Done():
			return
		case <-sig:
		case <-r.kick:
		}
	}
}

// Kick asks Run to look for exits now, without a SIGCHLD.
func (r *Reaper) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Reap collects every exited child without blocking and returns how many it collected.
func (r *Reaper) Reap() int {
	n := 0
	for {
		r.mu.Lock()
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			r.mu.Unlock()
			continue
		}
		if err != nil || pid <= 0 {
			r.mu.Unlock()
			return n
		}
		n++
		if p, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			p.status = ws
			close(p.done)
		} else {
			r.orphans++
		}
		r.mu.Unlock()
	}
}

// Orphans returns how many exits of unregistered processes were collected.
func (r *Reaper) Orphans() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.orphans
}

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait blocks until the process exits or ctx ends, and returns its status.
func (p *Proc) Wait(ctx context.Context) (unix.WaitStatus, error) {
	select {
	case <-p.done:
		return p.status, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Signal sends sig to the process. A process that has exited is not an error.
func (p *Proc) Signal(sig os.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	err := p.p.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// ExitCode turns a wait status into the number a shell would show: the exit code, or 128 plus
// the signal number for a process killed by a signal.
func ExitCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	default:
		return -1
	}
}

// Describe says how a process ended, for messages: "exit status 3" or "killed by signal 9".
func Describe(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by signal %d (%s)", int(ws.Signal()), unix.SignalName(ws.Signal()))
	default:
		return fmt.Sprintf("wait status %#x", uint32(ws))
	}
}
