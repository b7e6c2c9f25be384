package main

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
)

// children starts the sessions' processes and collects how they end. An ordinary process
// leaves that to os/exec. The first process of a PID namespace (a container without pid: host)
// is also the parent of every orphan in it, which stays a zombie until it is collected: there
// children collects every child that ends with wait4(-1) and hands each session's status to
// the session (the way kiln-buildkitd reaps in services/buildkitd).
//
// The processes' standard streams must be files (a pty or pipes), never other writers: a
// reaped child's os/exec.Cmd is never waited for, so os/exec must have no copying to finish.
type children struct {
	reaping bool

	mu      sync.Mutex                      // held while starting, so that a child is known before it can be reaped
	waiting map[int]chan syscall.WaitStatus // the sessions' children, by PID
}

// newChildren returns a starter; with reap it collects every child of the process from now
// on, until stop is called.
func newChildren(reap bool) (c *children, stop func()) {
	c = &children{reaping: reap, waiting: map[int]chan syscall.WaitStatus{}}
	if !reap {
		return c, func() {}
	}
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	done := make(chan struct{})
	go func() {
		for {
			c.reap()
			select {
			case <-sigchld:
			case <-done:
				return
			}
		}
	}()
	return c, func() { signal.Stop(sigchld); close(done) }
}

// reap collects every child that has ended, and gives the sessions' children's status to
// their sessions.
func (c *children) reap() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if ch, ok := c.waiting[pid]; ok {
			delete(c.waiting, pid)
			ch <- ws
		}
	}
}

// start starts cmd and returns a function that waits for it to end.
func (c *children) start(cmd *exec.Cmd) (wait func() syscall.WaitStatus, err error) {
	if !c.reaping {
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return func() syscall.WaitStatus {
			_ = cmd.Wait() // an exit status that is not 0 is an error here; the status says it
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
				return ws
			}
			return syscall.WaitStatus(255 << 8)
		}, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	c.waiting[cmd.Process.Pid] = ch
	return func() syscall.WaitStatus {
		ws := <-ch
		_ = cmd.Process.Release()
		return ws
	}, nil
}
