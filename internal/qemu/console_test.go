package qemu

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func contains(s string) func(string) bool {
	return func(l string) bool { return strings.Contains(l, s) }
}

// TestConsoleLines: output arriving in arbitrary pieces becomes lines without \r; each
// match consumes the lines up to it, so later searches only see later lines.
func TestConsoleLines(t *testing.T) {
	c := newConsole()
	for _, piece := range []string{"boot", "ing\r\nstep one\r", "\nstep two\r\nstep one again\n", "login: "} {
		c.Write([]byte(piece))
	}
	steps := []struct {
		match string
		want  string
		ok    bool
	}{
		{"step", "step one", true},
		{"step one", "step one again", true}, // "step one" itself is behind us now
		{"booting", "", false},               // passed over by the search above
		{"login:", "login: ", true},          // the partial line
		{"login:", "", false},                // offered once
	}
	for _, s := range steps {
		got, ok, changed := c.next(contains(s.match))
		if got != s.want || ok != s.ok || (ok == (changed != nil)) {
			t.Fatalf("next(%q) = %q, %v, changed %v; want %q, %v", s.match, got, ok, changed != nil, s.want, s.ok)
		}
	}
	// The partial line, now complete, is not offered again; the line after it is.
	c.Write([]byte("root\nprompt #\n"))
	if got, ok, _ := c.next(contains("")); !ok || got != "prompt #" {
		t.Errorf("after the partial line completed: %q, %v; want %q", got, ok, "prompt #")
	}
	want := []string{"booting", "step one", "step two", "step one again", "login: root", "prompt #"}
	if got := c.lastLines(); !reflect.DeepEqual(got, want) {
		t.Errorf("lastLines = %q, want %q", got, want)
	}
}

// TestConsoleWakesWaiters: the channel next returns is closed by the next write.
func TestConsoleWakesWaiters(t *testing.T) {
	c := newConsole()
	_, ok, changed := c.next(contains("x"))
	if ok {
		t.Fatal("matched on an empty console")
	}
	select {
	case <-changed:
		t.Fatal("changed closed before any write")
	default:
	}
	c.Write([]byte("x"))
	<-changed
}

func TestConsoleTailAndPanic(t *testing.T) {
	c := newConsole()
	for i := range 100 {
		fmt.Fprintf(c, "line %d\r\n", i)
	}
	c.Write([]byte("[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n"))
	c.Write([]byte("[    1.1] Kernel panic - not syncing: again\nhalf"))
	tail := c.lastLines()
	if len(tail) != tailLines || tail[0] != "line 63" || tail[len(tail)-1] != "half" {
		t.Errorf("lastLines: %d lines from %q to %q; want %d from line 63 to half", len(tail), tail[0], tail[len(tail)-1], tailLines)
	}
	if got := c.panicLine(); !strings.HasSuffix(got, "VFS: Unable to mount root fs") {
		t.Errorf("panicLine = %q, want the first panic", got)
	}
}

// TestConsoleLimits: a line that never ends is cut, and unread lines beyond maxPending are
// dropped oldest first.
func TestConsoleLimits(t *testing.T) {
	c := newConsole()
	c.Write([]byte(strings.Repeat("a", maxLine+10)))
	if got, ok, _ := c.next(contains("a")); !ok || len(got) != maxLine {
		t.Errorf("a long line: got %d bytes, %v; want a %d-byte piece", len(got), ok, maxLine)
	}
	c = newConsole()
	for i := range maxPending + 5 {
		fmt.Fprintf(c, "%d\n", i)
	}
	if got, ok, _ := c.next(contains("")); !ok || got != "5" || c.dropped != 5 {
		t.Errorf("first kept line %q (dropped %d), want 5 (dropped 5)", got, c.dropped)
	}
}

func TestLimitedBuffer(t *testing.T) {
	b := &limitedBuffer{max: 8}
	b.Write([]byte("hello "))
	b.Write([]byte("world"))
	if got := b.String(); got != "lo world" {
		t.Errorf("limitedBuffer = %q, want %q", got, "lo world")
	}
}
