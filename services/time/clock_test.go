package main

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/beevik/ntp"
)

// recordClock records what would have been done to the clock; the tests never set their
// machine's clock.
type recordClock struct {
	mu           sync.Mutex
	steps, slews []time.Duration
}

func (c *recordClock) Step(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.steps = append(c.steps, d)
	return nil
}

func (c *recordClock) Slew(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slews = append(c.slews, d)
	return nil
}

func (c *recordClock) calls() (steps, slews []time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.steps...), append([]time.Duration(nil), c.slews...)
}

// refuseClock fails the test on any use: the clock of a -dry-run, and the package's
// systemClock while the tests run (see TestMain).
type refuseClock struct{ t *testing.T }

var errRefused = errors.New("the tests never set the clock")

func (c refuseClock) Step(d time.Duration) error {
	if c.t != nil {
		c.t.Errorf("the clock was stepped by %s", d)
	}
	return errRefused
}

func (c refuseClock) Slew(d time.Duration) error {
	if c.t != nil {
		c.t.Errorf("the clock was slewed by %s", d)
	}
	return errRefused
}

func TestCorrect(t *testing.T) {
	for _, tc := range []struct {
		offset time.Duration
		step   bool
	}{
		{0, false}, {12 * time.Millisecond, false}, {-499 * time.Millisecond, false},
		{500 * time.Millisecond, false}, {-500 * time.Millisecond, false},
		{501 * time.Millisecond, true}, {-501 * time.Millisecond, true}, {-3600 * time.Second, true},
	} {
		var c recordClock
		action, err := Correct(&c, tc.offset)
		steps, slews := c.calls()
		if tc.step && (err != nil || action != "clock stepped" || len(steps) != 1 || steps[0] != tc.offset || len(slews) != 0) {
			t.Errorf("Correct(%s) = %q, %v; steps %v, slews %v; want one step", tc.offset, action, err, steps, slews)
		}
		if !tc.step && (err != nil || action != "slewing" || len(slews) != 1 || slews[0] != tc.offset || len(steps) != 0) {
			t.Errorf("Correct(%s) = %q, %v; steps %v, slews %v; want one slew", tc.offset, action, err, steps, slews)
		}
	}
}

func TestBackoff(t *testing.T) {
	for failures, want := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 320 * time.Second, 640 * time.Second, 15 * time.Minute, 15 * time.Minute} {
		if got := backoff(10*time.Second, 15*time.Minute, failures); got != want {
			t.Errorf("backoff after %d failures = %s, want %s", failures, got, want)
		}
	}
	if got := backoff(10*time.Second, 15*time.Minute, 1000); got != 15*time.Minute {
		t.Errorf("backoff after 1000 failures = %s", got)
	}
	if got := backoff(time.Hour, time.Minute, 0); got != time.Minute {
		t.Errorf("backoff with -retry over -interval = %s, want the interval", got)
	}
}

// Best takes the valid answer with the smallest root distance, the first on a tie.
func TestBest(t *testing.T) {
	answer := func(server string, dist time.Duration, err error) Answer {
		return Answer{Server: server, Resp: &ntp.Response{RootDistance: dist}, Err: err}
	}
	for _, tc := range []struct {
		name    string
		answers []Answer
		want    string
	}{
		{"none", nil, ""},
		{"only failures", []Answer{{Server: "a", Err: errors.New("refused")}, answer("b", time.Millisecond, ntp.ErrKissOfDeath)}, ""},
		{"nearest", []Answer{answer("a", 30*time.Millisecond, nil), answer("b", 10*time.Millisecond, nil), answer("c", 20*time.Millisecond, nil)}, "b"},
		{"an invalid one is nearer", []Answer{answer("a", time.Millisecond, ntp.ErrInvalidStratum), answer("b", time.Second, nil)}, "b"},
		{"tie", []Answer{answer("a", time.Millisecond, nil), answer("b", time.Millisecond, nil)}, "a"},
	} {
		got, ok := Best(tc.answers)
		if ok != (tc.want != "") || got.Server != tc.want {
			t.Errorf("%s: Best = %q, %v; want %q", tc.name, got.Server, ok, tc.want)
		}
	}
}
