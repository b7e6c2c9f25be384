// Package boot is kiln-init's life as PID 1, written as data: System lists the boot steps
// (each a name, a function and a policy), Runner runs such a list and prints a marker line
// per step, Main runs the boot, waits for a power request and runs Shutdown.
//
// The steps only sequence work; what they do lives in the packages they call (rootfs,
// modules, host, runc, supervise, power).
package boot

import (
	"context"
	"fmt"
	"time"

	"github.com/kiln-os/kiln/init/console"
	"github.com/kiln-os/kiln/init/guard"
)

// Policy says what a step's failure means for the boot.
type Policy int

const (
	// Fatal: the boot cannot go on; what happens instead is kiln.onfail's choice.
	Fatal Policy = iota
	// Continue: the failure is reported and the next step runs.
	Continue
)

func (p Policy) String() string {
	if p == Continue {
		return "continue"
	}
	return "fatal"
}

// Step is one named piece of the boot.
type Step struct {
	Name   string
	Policy Policy
	Run    func(ctx context.Context, s *State) error
}

// StepError is the failure of a fatal step.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("step %s: %v", e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// Runner runs steps in order and prints, for each, exactly one of
//
//	kiln-init: step NAME ok (Xms)
//	kiln-init: step NAME failed (Xms): ERROR
type Runner struct {
	Console *console.Console
	// Now is the clock for the timings; nil means time.Now.
	Now func() time.Time
	// IgnoreFatal runs the remaining steps even after a fatal step failed (kiln.onfail=continue).
	IgnoreFatal bool
}

// Run runs steps until one with the Fatal policy fails (its *StepError is returned) or ctx
// ends (before the next step; ctx's error is returned). A panic in a step is a failure of that
// step. With IgnoreFatal, every step runs and the first fatal failure is returned at the end.
func (r *Runner) Run(ctx context.Context, s *State, steps []Step) error {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	var first error
	for _, st := range steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("boot interrupted before step %s: %w", st.Name, err)
		}
		r.Console.Debugf("step %s starting", st.Name)
		start := now()
		err := guard.Safe("step "+st.Name, func() error { return st.Run(ctx, s) })
		ms := now().Sub(start).Milliseconds()
		if err == nil {
			r.Console.Printf("step %s ok (%dms)", st.Name, ms)
			continue
		}
		r.Console.Printf("step %s failed (%dms): %v", st.Name, ms, err)
		if st.Policy == Continue {
			continue
		}
		serr := &StepError{Step: st.Name, Err: err}
		if !r.IgnoreFatal {
			return serr
		}
		r.Console.Printf("step %s is needed, but going on (kiln.onfail=continue)", st.Name)
		if first == nil {
			first = serr
		}
	}
	return first
}
