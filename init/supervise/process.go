package supervise

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/kiln-os/kiln/init/console"
	"github.com/kiln-os/kiln/init/guard"
	"github.com/kiln-os/kiln/init/reaper"
)

// Process supervises one child program (containerd): it starts it, and when it exits starts
// it again as Policy says. Set the fields, then call Start once.
type Process struct {
	Name    string   // for messages: "kiln-init: NAME exited (status N), restarting in Xs"
	Path    string   // the program
	Args    []string // its arguments, without argv[0]
	Env     []string // nil: init's environment
	Output  io.Writer
	Policy  Policy
	Reaper  *reaper.Reaper
	Console *console.Console

	mu       sync.Mutex
	proc     *reaper.Proc
	stopping bool
	done     chan struct{}
	wake     chan struct{}
}

// Start starts the program and supervises it in the background. An error means the first
// start failed (nothing is left running).
func (p *Process) Start() error {
	proc, err := p.spawn()
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.proc = proc
	p.done = make(chan struct{})
	p.wake = make(chan struct{})
	p.mu.Unlock()
	guard.Go("supervisor of "+p.Name, p.Console.Panic, func() { p.loop(proc) })
	return nil
}

func (p *Process) spawn() (*reaper.Proc, error) {
	out, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", p.Name, err)
	}
	var pr *os.File
	if p.Output != nil {
		var pw *os.File
		pr, pw, err = os.Pipe()
		if err != nil {
			out.Close()
			return nil, fmt.Errorf("start %s: make an output pipe: %w", p.Name, err)
		}
		out.Close()
		out = pw
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = p.Env
	cmd.Stdout, cmd.Stderr = out, out
	proc, err := p.Reaper.Start(cmd)
	out.Close()
	if err != nil {
		if pr != nil {
			pr.Close()
		}
		return nil, fmt.Errorf("start %s (%s): %w", p.Name, p.Path, err)
	}
	if pr != nil {
		guard.Go("output of "+p.Name, p.Console.Panic, func() {
			defer pr.Close()
			_, _ = io.Copy(p.Output, pr)
		})
	}
	return proc, nil
}

func (p *Process) loop(proc *reaper.Proc) {
	defer close(p.done)
	var h History
	started := time.Now()
	for {
		ws, _ := proc.Wait(context.Background())
		status := reaper.ExitCode(ws)
		if p.isStopping() {
			return
		}
		d := p.Policy.Next(&h, status, time.Since(started), time.Now())
		if !d.Restart {
			p.Console.Printf("%s exited (%s); not restarting: %s", p.Name, reaper.Describe(ws), d.Reason)
			return
		}
		p.Console.Printf("%s exited (status %d), restarting in %v", p.Name, status, d.Delay)
		for {
			select {
			case <-time.After(d.Delay):
			case <-p.wake:
				return
			}
			started = time.Now()
			next, err := p.spawn()
			if err == nil {
				p.mu.Lock()
				if p.stopping {
					p.mu.Unlock()
					_ = next.Signal(os.Kill)
					return
				}
				p.proc = next
				p.mu.Unlock()
				proc = next
				break
			}
			d = p.Policy.Next(&h, 127, 0, time.Now())
			if !d.Restart {
				p.Console.Printf("%s could not be started again (%v); not restarting: %s", p.Name, err, d.Reason)
				return
			}
			p.Console.Printf("%s could not be started again (%v), retrying in %v", p.Name, err, d.Delay)
		}
	}
}

func (p *Process) isStopping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

// Stop ends supervision and the program: SIGTERM, then SIGKILL after grace. It returns when
// the program has exited (or once more than grace plus 5 seconds have passed).
func (p *Process) Stop(grace time.Duration) error {
	p.mu.Lock()
	if p.done == nil {
		p.mu.Unlock()
		return nil
	}
	if !p.stopping {
		p.stopping = true
		close(p.wake)
	}
	proc := p.proc
	p.mu.Unlock()
	_ = proc.Signal(syscall.SIGTERM)
	select {
	case <-proc.Done():
	case <-time.After(grace):
		p.Console.Printf("%s did not stop within %v; killing it", p.Name, grace)
		_ = proc.Signal(os.Kill)
		select {
		case <-proc.Done():
		case <-time.After(5 * time.Second):
			return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, proc.Pid)
		}
	}
	<-p.done
	return nil
}

// Done is closed when supervision has ended (stopped, or given up). It is nil before a
// successful Start.
func (p *Process) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}
