// Package guard keeps a panic in one of kiln-init's goroutines from killing PID 1 (when PID 1
// exits, the kernel panics). Go runs a function in a goroutine that recovers, reports the panic
// with the goroutine's name and stack, and calls an optional handler; Forever parks the caller
// without ever letting the runtime decide that every goroutine is asleep.
//
// It cannot catch panics in goroutines that libraries start, nor fatal runtime errors.
package guard

import (
	"fmt"
	"runtime/debug"
	"time"
)

// Reporter receives a panic report: the goroutine's name, the value and the stack.
type Reporter func(name string, value any, stack []byte)

// Recover is deferred at the top of a goroutine: it turns a panic into a call to report. It
// returns nothing and must be called directly by defer (recover only works there).
func Recover(name string, report Reporter) {
	if v := recover(); v != nil {
		report(name, v, debug.Stack())
	}
}

// Go runs fn in a new goroutine named name; a panic in it is passed to report instead of
// crashing the process.
func Go(name string, report Reporter, fn func()) {
	go func() {
		defer Recover(name, report)
		fn()
	}()
}

// Safe calls fn and returns a panic in it as an error naming name, with the stack.
func Safe(name string, fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%s panicked: %v\n%s", name, v, debug.Stack())
		}
	}()
	return fn()
}

// Forever blocks the calling goroutine for good. Unlike an empty select it never lets the Go
// runtime report a deadlock and exit, which for PID 1 would panic the kernel.
func Forever() {
	for {
		time.Sleep(time.Hour)
	}
}
