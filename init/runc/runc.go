// Package runc runs kiln's onboot and onshutdown containers: each bundle in a folder, one at a
// time and in name order, with `runc run`, until it exits. A container's output is kept (in
// /var/log and in memory) and shown when it fails; a failure stops the sequence unless the
// container is optional (the kiln.optional=true annotation) or the caller asked to go on.
//
// It does not restart anything and does not talk to containerd; see package supervise.
package runc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-os/kiln/init/bundle"
	"github.com/kiln-os/kiln/init/console"
	"github.com/kiln-os/kiln/init/guard"
	"github.com/kiln-os/kiln/init/reaper"
)

// Runner runs bundles with runc.
type Runner struct {
	Runc       string // the runc binary
	Root       string // runc's state directory (--root); "" for runc's default
	LogDir     string // where KIND.NAME.log files go; "" for none
	CgroupRoot string // where runtime.json cgroups are made
	Console    *console.Console
	Reaper     *reaper.Reaper
	// Live also copies the output to the console as it comes (kiln.debug).
	Live bool
	// Timeout, when not zero, kills a container that runs longer.
	Timeout time.Duration
}

// tailSize is how much of a container's output is kept to show when it fails.
const tailSize = 64 * 1024

// Failure is a container that did not exit 0.
type Failure struct {
	Kind, Name string
	Err        error
}

func (f *Failure) Error() string { return fmt.Sprintf("%s %s: %v", f.Kind, f.Name, f.Err) }
func (f *Failure) Unwrap() error { return f.Err }

// RunAll runs every bundle in dir. kind ("onboot", "onshutdown") names them in messages.
// Each success prints "kiln-init: KIND NAME exited 0". A failure prints the container's output
// and returns a *Failure, unless the container is optional or keepGoing is set, in which case
// the rest still run (all failures are returned together at the end when keepGoing is set).
func (r *Runner) RunAll(ctx context.Context, dir, kind string, keepGoing bool) error {
	bundles, err := bundle.List(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, b := range bundles {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s stopped before %s: %w", kind, b.Name, err)
		}
		err := r.Run(ctx, kind, b)
		if err == nil {
			continue
		}
		if b.Optional() {
			r.Console.Printf("%s %s is optional (%s=true); going on", kind, b.Name, bundle.AnnotationOptional)
			continue
		}
		if !keepGoing {
			return err
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run prepares one bundle (runtime.json) and runs it to completion.
func (r *Runner) Run(ctx context.Context, kind string, b *bundle.Bundle) error {
	fail := func(err error) error {
		r.Console.Printf("%s %s failed: %v", kind, b.Name, err)
		return &Failure{Kind: kind, Name: b.Name, Err: err}
	}
	if u := b.Runtime.Unsupported(); len(u) > 0 {
		r.Console.Printf("%s %s: runtime.json sets %s, which kiln-init does not support; ignored", kind, b.Name, strings.Join(u, ", "))
	}
	if err := bundle.Apply(bundle.Plan(b, r.CgroupRoot)); err != nil {
		return fail(fmt.Errorf("prepare runtime.json: %w", err))
	}
	tail := &console.Tail{Max: tailSize}
	sinks := []io.Writer{tail}
	if r.LogDir != "" {
		f, err := os.OpenFile(filepath.Join(r.LogDir, kind+"."+b.Name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			r.Console.Printf("%s %s: no log file: %v", kind, b.Name, err)
		} else {
			defer f.Close()
			sinks = append(sinks, f)
		}
	}
	lines := r.Console.Lines(b.Name, io.MultiWriter(sinks...), !r.Live)
	status, err := r.exec(ctx, b, lines)
	lines.Flush()
	if err == nil && status == 0 {
		r.Console.Printf("%s %s exited 0", kind, b.Name)
		return nil
	}
	if err == nil {
		err = fmt.Errorf("runc run exited with status %d", status)
	}
	ferr := fail(err)
	if out := tail.String(); out != "" && !r.Live {
		more := ""
		if tail.Truncated() {
			more = fmt.Sprintf(" (last %d bytes)", tailSize)
		}
		r.Console.Printf("%s %s output%s:", kind, b.Name, more)
		show := r.Console.Lines(b.Name, nil, false)
		_, _ = show.Write([]byte(out))
		show.Flush()
	}
	return ferr
}

// exec runs `runc run` with its output in a pipe copied to w, and returns its exit code.
func (r *Runner) exec(ctx context.Context, b *bundle.Bundle, w io.Writer) (int, error) {
	args := []string{}
	if r.Root != "" {
		args = append(args, "--root", r.Root)
	}
	args = append(args, "run", "--bundle", b.Dir, b.ID)
	pr, pw, err := os.Pipe()
	if err != nil {
		return -1, fmt.Errorf("make an output pipe: %w", err)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		pr.Close()
		pw.Close()
		return -1, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	cmd := exec.Command(r.Runc, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, pw, pw
	proc, err := r.Reaper.Start(cmd)
	pw.Close()
	devnull.Close()
	if err != nil {
		pr.Close()
		return -1, fmt.Errorf("start %s: %w", r.Runc, err)
	}
	copied := make(chan struct{})
	guard.Go("output of "+b.Name, r.Console.Panic, func() {
		defer close(copied)
		_, _ = io.Copy(w, pr)
	})
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	ws, werr := proc.Wait(ctx)
	if werr != nil {
		// Stop the container, then runc itself, collect runc's exit and remove what is left
		// of the container (its state and cgroup).
		r.runc("kill", "--all", b.ID, "KILL")
		_ = proc.Signal(os.Kill)
		ws, _ = proc.Wait(context.Background())
		r.runc("delete", "--force", b.ID)
	}
	// The container may have left a process holding the pipe; do not wait for it forever.
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
	}
	pr.Close()
	if werr != nil {
		return -1, fmt.Errorf("stopped before it finished: %w", werr)
	}
	return reaper.ExitCode(ws), nil
}

// runc runs a short runc command (kill, delete) and waits up to 10 seconds for it.
func (r *Runner) runc(args ...string) {
	if r.Root != "" {
		args = append([]string{"--root", r.Root}, args...)
	}
	p, err := r.Reaper.Start(exec.Command(r.Runc, args...))
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.Wait(ctx); err != nil {
		_ = p.Signal(os.Kill)
	}
}
