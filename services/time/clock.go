package main

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Clock is what the service does with a measured offset: the servers' time minus the local
// clock's.
type Clock interface {
	// Step moves the clock by d at once.
	Step(d time.Duration) error
	// Slew has the clock run a little faster (d > 0) or slower until it has moved by d; a new
	// call replaces what is left of the previous one.
	Slew(d time.Duration) error
}

// StepThreshold is the largest offset that is slewed; larger ones are stepped. Slewing 0.5 s
// at the kernel's 500 ppm takes about 17 minutes, one default interval.
const StepThreshold = 500 * time.Millisecond

// Correct steps the clock by offset when it is larger than StepThreshold either way, else
// slews it, and says which ("clock stepped" or "slewing").
func Correct(c Clock, offset time.Duration) (string, error) {
	if offset > StepThreshold || offset < -StepThreshold {
		return "clock stepped", c.Step(offset)
	}
	return "slewing", c.Slew(offset)
}

// KernelClock is the system's clock, set with adjtimex(2); it needs CAP_SYS_TIME.
type KernelClock struct{}

// Step adds d to the clock (ADJ_SETOFFSET: the kernel adds it to the time it has, so nothing
// is lost between reading the clock and setting it), then cancels a slew still going on.
func (KernelClock) Step(d time.Duration) error {
	tx := unix.Timex{Modes: unix.ADJ_SETOFFSET, Time: unix.NsecToTimeval(d.Nanoseconds())}
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("adjtimex(ADJ_SETOFFSET %s): %w", d, err)
	}
	return KernelClock{}.Slew(0)
}

// Slew is adjtime(3): ADJ_OFFSET_SINGLESHOT, d in microseconds, which the kernel works off at
// 0.5 ms a second. It never touches the clock's frequency.
func (KernelClock) Slew(d time.Duration) error {
	tx := unix.Timex{Modes: unix.ADJ_OFFSET_SINGLESHOT, Offset: d.Microseconds()}
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("adjtimex(ADJ_OFFSET_SINGLESHOT %s): %w", d, err)
	}
	return nil
}
