package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// ErrExited is wrapped by WaitFor's error when QEMU ended before the line appeared.
var ErrExited = errors.New("qemu exited")

// ExitError reports a VM that did not end cleanly: QEMU exited with a status other than 0,
// or the kernel panicked (QEMU then exits 0, because -no-reboot turns the panic's reboot into
// an exit).
type ExitError struct {
	// Code is QEMU's exit status, -1 when a signal ended it.
	Code int
	// Panic is the kernel's panic line from the console, when it panicked.
	Panic string
	// Stderr is the end of QEMU's own messages.
	Stderr string
	// Console holds the last console lines.
	Console []string
}

func (e *ExitError) Error() string {
	var b strings.Builder
	switch {
	case e.Panic != "":
		fmt.Fprintf(&b, "the guest kernel panicked: %s", e.Panic)
	case e.Code < 0:
		b.WriteString("qemu was killed by a signal")
	default:
		fmt.Fprintf(&b, "qemu exited with status %d", e.Code)
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		fmt.Fprintf(&b, "\nqemu said:\n%s", s)
	}
	writeTail(&b, e.Console)
	return b.String()
}

// ExitCode is the exit code a command running the VM should end with: QEMU's status, or 1
// for a kernel panic.
func (e *ExitError) ExitCode() int {
	if e.Code > 0 {
		return e.Code
	}
	return 1
}

func writeTail(b *strings.Builder, lines []string) {
	if len(lines) == 0 {
		b.WriteString("\n(the console printed nothing)")
		return
	}
	fmt.Fprintf(b, "\nlast %d console lines:", len(lines))
	for _, l := range lines {
		b.WriteString("\n  | ")
		b.WriteString(l)
	}
}

// VM is a running QEMU.
type VM struct {
	cmd     *exec.Cmd
	ctx     context.Context
	console *console
	stderr  *limitedBuffer
	qmp     string
	tmp     string
	done    chan struct{} // closed when QEMU has exited and its output is read
	err     error         // Wait's result, set before done is closed
	killed  sync.Once
}

// Start starts QEMU for c and returns at once. The console output goes to c.Console and is
// also scanned for WaitFor. QEMU listens for its machine protocol on c.QMP (a socket in a
// temporary folder when empty), which Powerdown uses. When ctx ends QEMU is stopped.
// Callers must call Wait (or Kill and Wait) to release it.
func Start(ctx context.Context, c Config) (*VM, error) {
	return start(ctx, c, true)
}

// start starts QEMU, adding a QMP socket when qmp is set and c has none.
func start(ctx context.Context, c Config, qmp bool) (*VM, error) {
	vm := &VM{ctx: ctx, console: newConsole(), stderr: &limitedBuffer{max: 8 << 10}, done: make(chan struct{})}
	if c.QMP == "" && qmp {
		dir, err := os.MkdirTemp("", "kiln-qemu-")
		if err != nil {
			return nil, fmt.Errorf("folder for the QMP socket: %w", err)
		}
		vm.tmp = dir
		c.QMP = filepath.Join(dir, "qmp.sock")
	}
	vm.qmp = c.QMP
	cmd, err := Command(ctx, c)
	if err != nil {
		vm.cleanup()
		return nil, err
	}
	cmd.Stdout = vm.console
	if c.Console != nil {
		cmd.Stdout = io.MultiWriter(vm.console, c.Console)
	}
	cmd.Stderr = vm.stderr
	if c.Stderr != nil {
		cmd.Stderr = io.MultiWriter(vm.stderr, c.Stderr)
	}
	// A Stdin that is not a file (an io.Pipe a test types into) would make exec's Wait wait
	// for its copying goroutine, which blocks reading until the caller closes it: QEMU's exit
	// would go unseen. Give QEMU a real pipe and copy into it here instead; the copy ends at
	// the first write after QEMU is gone.
	var stdinR *os.File
	if c.Stdin != nil {
		if _, isFile := c.Stdin.(*os.File); !isFile {
			r, w, err := os.Pipe()
			if err != nil {
				vm.cleanup()
				return nil, err
			}
			stdinR = r
			cmd.Stdin = r
			go func(src io.Reader) {
				_, _ = io.Copy(w, src)
				w.Close()
			}(c.Stdin)
		}
	}
	err = cmd.Start()
	if stdinR != nil {
		stdinR.Close() // QEMU has its own copy
	}
	if err != nil {
		vm.cleanup()
		return nil, fmt.Errorf("starting %s (install it, e.g. from Debian's qemu-system-x86, qemu-system-arm or qemu-system-misc package): %w", cmd.Path, err)
	}
	vm.cmd = cmd
	go vm.wait()
	return vm, nil
}

func (vm *VM) cleanup() {
	if vm.tmp != "" {
		os.RemoveAll(vm.tmp)
	}
}

// wait reaps QEMU and records how it ended.
func (vm *VM) wait() {
	err := vm.cmd.Wait()
	vm.cleanup()
	switch {
	case vm.ctx.Err() != nil:
		vm.err = fmt.Errorf("qemu stopped: %w", vm.ctx.Err())
	case err == nil && vm.console.panicLine() == "":
	default:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			// Not an exit status: the output could not be copied, or the wait failed.
			vm.err = fmt.Errorf("running qemu: %w", err)
			break
		}
		e := &ExitError{Panic: vm.console.panicLine(), Stderr: vm.stderr.String(), Console: vm.console.lastLines()}
		if ee != nil {
			e.Code = ee.ExitCode()
		}
		vm.err = e
	}
	close(vm.done)
}

// Wait waits for QEMU to exit. It returns nil when QEMU exited with status 0 (the guest
// powered off or rebooted) and the kernel did not panic, an *ExitError otherwise, and an
// error wrapping the context's error when the context given to Start ended first.
func (vm *VM) Wait() error {
	<-vm.done
	return vm.err
}

// Done is closed when QEMU has exited.
func (vm *VM) Done() <-chan struct{} { return vm.done }

// Kill stops QEMU at once (SIGKILL); the guest gets no chance to shut down. Wait still
// reports how it ended.
func (vm *VM) Kill() {
	vm.killed.Do(func() {
		select {
		case <-vm.done:
		default:
			_ = vm.cmd.Process.Kill()
		}
	})
}

// Console returns the last console lines (up to 40), for reports.
func (vm *VM) Console() []string { return vm.console.lastLines() }

// Transcript returns every console line so far, the line still being written included, for
// checks of the whole output (CheckConsole). complete is false when the console printed more
// than 64 MiB and later lines were not kept.
func (vm *VM) Transcript() (lines []string, complete bool) { return vm.console.transcript() }

// ErrIncomplete is returned by Check when the console was too long to keep whole.
var ErrIncomplete = errors.New("the console printed more than the transcript keeps; it cannot be checked whole")

// Check runs CheckConsole on the whole console so far.
func (vm *VM) Check(want ...string) error {
	lines, complete := vm.Transcript()
	if !complete {
		return ErrIncomplete
	}
	return CheckConsole(lines, want)
}

// WaitFor waits up to timeout (or until ctx ends) for a console line containing substr and
// returns the line. See WaitForMatch for which lines are searched.
func (vm *VM) WaitFor(ctx context.Context, substr string, timeout time.Duration) (string, error) {
	return vm.waitFor(ctx, fmt.Sprintf("%q", substr), func(l string) bool { return strings.Contains(l, substr) }, timeout)
}

// WaitForMatch waits up to timeout (or until ctx ends) for a console line matching re and
// returns the line. Each call searches the lines after the previous call's match, oldest
// first, so successive calls check that events happened in order; a line still being written
// (a prompt with no newline yet) is searched too. The error carries the last 40 console lines;
// it wraps context.DeadlineExceeded on timeout and ErrExited when QEMU ended first.
func (vm *VM) WaitForMatch(ctx context.Context, re *regexp.Regexp, timeout time.Duration) (string, error) {
	return vm.waitFor(ctx, "/"+re.String()+"/", re.MatchString, timeout)
}

func (vm *VM) waitFor(ctx context.Context, what string, match func(string) bool, timeout time.Duration) (string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		line, ok, changed := vm.console.next(match)
		if ok {
			return line, nil
		}
		select {
		case <-changed:
		case <-vm.done:
			// All output is in: one last look, then report how QEMU ended.
			if line, ok, _ := vm.console.next(match); ok {
				return line, nil
			}
			how := "exited cleanly"
			if vm.err != nil {
				how = vm.err.Error()
				if ee := (*ExitError)(nil); errors.As(vm.err, &ee) {
					how = ee.summary()
				}
			}
			return "", vm.waitError(fmt.Errorf("%w before a console line matched %s (%s)", ErrExited, what, how))
		case <-timer.C:
			return "", vm.waitError(fmt.Errorf("no console line matched %s within %v: %w", what, timeout, context.DeadlineExceeded))
		case <-ctx.Done():
			return "", vm.waitError(fmt.Errorf("waiting for a console line matching %s: %w", what, ctx.Err()))
		}
	}
}

// summary is the first line of Error, without the stderr and console parts.
func (e *ExitError) summary() string {
	s := *e
	s.Stderr, s.Console = "", nil
	msg, _, _ := strings.Cut(s.Error(), "\n")
	if st := strings.TrimSpace(e.Stderr); st != "" {
		msg += "; qemu said: " + strings.ReplaceAll(st, "\n", "; ")
	}
	return msg
}

// waitError adds the console's tail to err.
func (vm *VM) waitError(err error) error {
	var b strings.Builder
	writeTail(&b, vm.console.lastLines())
	return &tailError{err: err, tail: b.String()}
}

// tailError is an error followed by console lines.
type tailError struct {
	err  error
	tail string
}

func (e *tailError) Error() string { return e.err.Error() + e.tail }
func (e *tailError) Unwrap() error { return e.err }

// Run boots c and waits for QEMU to exit: nil when the guest powered off (QEMU exit status 0
// and no kernel panic), an *ExitError otherwise. QEMU runs with exactly the arguments Args
// returns for c (no QMP socket is added).
func Run(ctx context.Context, c Config) error {
	vm, err := start(ctx, c, false)
	if err != nil {
		return err
	}
	return vm.Wait()
}
