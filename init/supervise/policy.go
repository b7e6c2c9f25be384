// Package supervise keeps long-running programs running: containerd itself (Process, a plain
// child process) and the system's services (Services, containers created through the
// containerd client from the bundles under /containers/services). Both restart what exits
// according to a Policy: a delay that doubles from 1s to 30s, reset by a long enough run, and
// a limit of restarts within a window after which it gives up loudly.
//
// It does not build images or pull anything: a service's root file system is the plain
// directory in its bundle.
package supervise

import (
	"fmt"
	"time"
)

// Mode says when a program that exited is started again.
type Mode string

// The restart modes (the kiln.restart annotation of a service).
const (
	Always    Mode = "always"
	OnFailure Mode = "on-failure"
	Never     Mode = "never"
)

// Policy is a restart policy. It is pure: Next decides from the history and the clock it is
// given.
type Policy struct {
	Mode    Mode
	Initial time.Duration // delay before the first restart
	Max     time.Duration // the delay doubles up to this
	Limit   int           // at most this many restarts ...
	Window  time.Duration // ... within this long; then give up
	Stable  time.Duration // a run at least this long starts the delay over at Initial
}

// DefaultPolicy restarts always, after 1s, 2s, 4s, ... up to 30s, and gives up after 10
// restarts within 5 minutes. A run of a minute or more resets the delay.
func DefaultPolicy() Policy {
	return Policy{Mode: Always, Initial: time.Second, Max: 30 * time.Second, Limit: 10, Window: 5 * time.Minute, Stable: time.Minute}
}

// History is what a Policy remembers about one program. The zero value is a program that has
// not been restarted.
type History struct {
	delay    time.Duration
	restarts []time.Time
}

// Decision is what to do after an exit.
type Decision struct {
	Restart bool
	Delay   time.Duration
	Reason  string // why not, when Restart is false
}

// Next decides what follows an exit with status that came at now, after a run of ranFor. A
// restart is recorded in h.
func (p Policy) Next(h *History, status int, ranFor time.Duration, now time.Time) Decision {
	switch {
	case p.Mode == Never:
		return Decision{Reason: "its restart policy is never"}
	case p.Mode == OnFailure && status == 0:
		return Decision{Reason: "it succeeded and its restart policy is on-failure"}
	}
	kept := h.restarts[:0]
	for _, t := range h.restarts {
		if now.Sub(t) < p.Window {
			kept = append(kept, t)
		}
	}
	h.restarts = kept
	if len(h.restarts) >= p.Limit {
		return Decision{Reason: fmt.Sprintf("it was restarted %d times within %v; giving up", len(h.restarts), p.Window)}
	}
	switch {
	case h.delay == 0 || ranFor >= p.Stable:
		h.delay = p.Initial
	default:
		h.delay = min(2*h.delay, p.Max)
	}
	h.restarts = append(h.restarts, now)
	return Decision{Restart: true, Delay: h.delay}
}

// ParseMode reads a restart mode.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case Always, OnFailure, Never:
		return Mode(s), nil
	}
	return "", fmt.Errorf("restart mode %q: expected always, on-failure or never", s)
}
