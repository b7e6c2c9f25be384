package qemu

import (
	"bytes"
	"strings"
	"sync"
)

const (
	// tailLines is how many of the last console lines errors carry.
	tailLines = 40
	// maxPending bounds the lines kept for WaitFor that no WaitFor has passed yet; older
	// ones are dropped.
	maxPending = 100000
	// maxLine cuts a line that never ends (binary output) into pieces of this size.
	maxLine = 64 << 10
	// maxTranscript bounds the bytes of console lines kept for Transcript; lines past it are
	// not kept, and Transcript says the transcript is incomplete.
	maxTranscript = 64 << 20
)

// console splits the guest's console output into lines, keeps the ones not yet read by a
// WaitFor and the last tailLines for error reports, and wakes waiters when output arrives.
type console struct {
	mu      sync.Mutex
	pending []string // complete lines not yet passed by a WaitFor, oldest first
	partial []byte   // the line being written
	// partialSeen is set when a WaitFor matched the partial line: once complete, that line
	// is not offered again.
	partialSeen bool
	dropped     int // lines dropped from pending because nobody read them
	tail        []string
	all         []string // every line, for Transcript, up to maxTranscript bytes
	allBytes    int
	allCut      bool          // lines were left out of all
	panic       string        // the first kernel panic line seen
	changed     chan struct{} // closed and replaced on every write
}

func newConsole() *console { return &console{changed: make(chan struct{})} }

// kernelPanic marks the line Linux prints when it panics.
const kernelPanic = "Kernel panic - not syncing"

// Write takes console output; it never fails.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		room := maxLine - len(c.partial)
		i := bytes.IndexByte(p, '\n')
		switch {
		case i >= 0 && i <= room:
			c.partial = append(c.partial, p[:i]...)
			p = p[i+1:]
			c.endLine()
		case len(p) >= room:
			c.partial = append(c.partial, p[:room]...)
			p = p[room:]
			c.endLine()
		default:
			c.partial = append(c.partial, p...)
			p = nil
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
	return n, nil
}

// endLine moves the partial line to pending and tail.
func (c *console) endLine() {
	line := strings.TrimRight(string(c.partial), "\r")
	c.partial = c.partial[:0]
	if c.panic == "" && strings.Contains(line, kernelPanic) {
		c.panic = line
	}
	if len(c.tail) == tailLines {
		copy(c.tail, c.tail[1:])
		c.tail = c.tail[:tailLines-1]
	}
	c.tail = append(c.tail, line)
	if c.allBytes+len(line) <= maxTranscript {
		c.all = append(c.all, line)
		c.allBytes += len(line)
	} else {
		c.allCut = true
	}
	if c.partialSeen {
		c.partialSeen = false
		return
	}
	if len(c.pending) == maxPending {
		c.pending = c.pending[1:]
		c.dropped++
	}
	c.pending = append(c.pending, line)
}

// next returns the first pending line (or the partial line) that match accepts, dropping it
// and every line before it, and a channel closed on the next write for when none matched.
func (c *console) next(match func(string) bool) (line string, ok bool, changed <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, l := range c.pending {
		if match(l) {
			c.pending = c.pending[i+1:]
			return l, true, nil
		}
	}
	c.pending = c.pending[:0]
	if !c.partialSeen && len(c.partial) > 0 {
		if l := strings.TrimRight(string(c.partial), "\r"); match(l) {
			c.partialSeen = true
			return l, true, nil
		}
	}
	return "", false, c.changed
}

// lastLines returns the last tailLines console lines, the partial one included.
func (c *console) lastLines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]string(nil), c.tail...)
	if len(c.partial) > 0 {
		out = append(out, strings.TrimRight(string(c.partial), "\r"))
		if len(out) > tailLines {
			out = out[1:]
		}
	}
	return out
}

// transcript returns every console line, the partial one included, and false when lines
// were left out because the console outgrew maxTranscript.
func (c *console) transcript() ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]string(nil), c.all...)
	if len(c.partial) > 0 {
		out = append(out, strings.TrimRight(string(c.partial), "\r"))
	}
	return out, !c.allCut
}

// panicLine returns the kernel panic line seen on the console, or "".
func (c *console) panicLine() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.panic
}

// limitedBuffer keeps the last max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
