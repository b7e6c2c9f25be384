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
	// Timeout, when not zero, is how long a container may run: then it gets SIGTERM, and
	// SIGKILL Grace later.
	Timeout time.Duration
	// TimeoutAnnotation, when set, names the config.json annotation (a Go duration, "0" for
	// no limit) with which a container replaces Timeout for itself.
	TimeoutAnnotation string
	// Grace is how long a timed-out container has between SIGTERM and SIGKILL; 0 means
	// DefaultGrace.
	Grace time.Duration
}

// AnnotationOnbootTimeout, a Go duration ("90s", "10m", "0" for no limit) on an onboot
// container, replaces the onboot time limit (kiln.onboot.timeout= on the kernel command line,
// else 5 minutes) for that container. kiln build rejects a value that is not a duration.
const AnnotationOnbootTimeout = "kiln.onboot.timeout"

// DefaultGrace is how long a timed-out container has between SIGTERM and SIGKILL.
const DefaultGrace = 10 * time.Second

// TimeoutError is a container stopped because it ran longer than its time limit.
type TimeoutError struct {
	Limit  time.Duration
	Source string        // where the limit came from, for the message
	Grace  time.Duration // set when SIGTERM did not stop it and it was killed
}

func (e *TimeoutError) Error() string {
	msg := fmt.Sprintf("timed out: still running after %s (%s)", e.Limit, e.Source)
	if e.Grace > 0 {
		return msg + fmt.Sprintf("; killed with SIGKILL after SIGTERM did not stop it within %s", e.Grace)
	}
	return msg + "; stopped with SIGTERM"
}

// limit returns b's time limit and where it comes from.
func (r *Runner) limit(kind string, b *bundle.Bundle) (time.Duration, string) {
	if r.TimeoutAnnotation != "" && b.Spec != nil {
		if v, ok := b.Spec.Annotations[r.TimeoutAnnotation]; ok {
			d, err := ParseTimeout(v)
			if err == nil {
				return d, "its " + r.TimeoutAnnotation + " annotation"
			}
			r.Console.Printf("%s %s: annotation %s: %v; using the limit of %s", kind, b.Name, r.TimeoutAnnotation, err, r.Timeout)
		}
	}
	return r.Timeout, "the limit for " + kind + " containers"
}

// ParseTimeout reads a time limit: a Go duration ("90s", "5m"), "0" for none. Negative values
// are an error.
func ParseTimeout(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 90s or 5m: %w", v, err)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", v)
	}
	return d, nil
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
	limit, source := r.limit(kind, b)
	status, err := r.exec(ctx, b, lines, limit, source)
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

// exec runs `runc run` with its output in a pipe copied to w, and returns its exit code. After
// limit (when not 0) the container gets SIGTERM, then SIGKILL after the grace period, and the
// error is a *TimeoutError; when ctx ends it gets SIGKILL at once.
func (r *Runner) exec(ctx context.Context, b *bundle.Bundle, w io.Writer, limit time.Duration, source string) (int, error) {
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
	wctx := ctx
	if limit > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeoutCause(ctx, limit, errLimit)
		defer cancel()
	}
	ws, werr := proc.Wait(wctx)
	var timeout *TimeoutError
	if werr != nil && ctx.Err() == nil && errors.Is(context.Cause(wctx), errLimit) {
		// Over its time limit: ask it to stop, and give it the grace period to do so.
		timeout = &TimeoutError{Limit: limit, Source: source}
		grace := r.Grace
		if grace <= 0 {
			grace = DefaultGrace
		}
		r.runc("kill", b.ID, "TERM")
		gctx, cancel := context.WithTimeout(ctx, grace)
		ws, werr = proc.Wait(gctx)
		cancel()
		if werr != nil {
			timeout.Grace = grace
		}
	}
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
	if timeout != nil {
		return -1, timeout
	}
	if werr != nil {
		return -1, fmt.Errorf("stopped before it finished: %w", werr)
	}
	return reaper.ExitCode(ws), nil
}

// errLimit is the cause of the context that ends at a container's time limit.
var errLimit = errors.New("time limit reached")

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
