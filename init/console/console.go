// Package console writes kiln-init's messages and the output of the programs it runs to the
// system console, one whole line at a time, so that lines from concurrent writers never mix.
//
// Console prints kiln-init's own lines ("kiln-init: ..."); LineWriter fans a program's output
// out to the console, each line prefixed with the program's name, and unchanged to a log file.
// It does not open devices or rotate log files.
package console

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// Prefix starts every line kiln-init prints about itself.
const Prefix = "kiln-init: "

// Console serialises writes to one output. The zero value is not usable; use New.
type Console struct {
	mu    sync.Mutex
	w     io.Writer
	debug bool
}

// New returns a Console writing to w.
func New(w io.Writer) *Console {
	return &Console{w: w}
}

// SetOutput replaces the writer, for when the real console becomes available.
func (c *Console) SetOutput(w io.Writer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w = w
}

// SetDebug turns Debugf output on or off.
func (c *Console) SetDebug(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.debug = on
}

// Debug reports whether debug output is on.
func (c *Console) Debug() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.debug
}

// Printf prints one message line starting with "kiln-init: ". A trailing newline is added.
func (c *Console) Printf(format string, args ...any) {
	c.line(Prefix + fmt.Sprintf(format, args...))
}

// Debugf prints like Printf, but only when debug output is on.
func (c *Console) Debugf(format string, args ...any) {
	if c.Debug() {
		c.Printf(format, args...)
	}
}

func (c *Console) line(s string) {
	b := make([]byte, 0, len(s)+1)
	b = append(b, s...)
	if len(b) == 0 || b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	c.write(b)
}

// write writes b in one call under the lock. Errors are dropped: there is nowhere else to
// report that the console itself failed.
func (c *Console) write(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = c.w.Write(b)
}

// maxLine is the longest line kept in a LineWriter's buffer; longer ones are printed in pieces.
const maxLine = 4096

// LineWriter is an io.Writer for a program's output: every complete line goes to the console
// as "NAME: line", and every byte goes unchanged to the log writer (which may be nil). It is
// safe for concurrent use, so a program's stdout and stderr can share one.
type LineWriter struct {
	mu     sync.Mutex
	con    *Console
	name   string
	log    io.Writer
	buf    []byte
	quiet  bool
	logErr error
}

// Lines returns a LineWriter for the program called name. log receives the raw bytes; it may
// be nil. With quiet set, nothing goes to the console (the log still gets everything).
func (c *Console) Lines(name string, log io.Writer, quiet bool) *LineWriter {
	return &LineWriter{con: c, name: name, log: log, quiet: quiet}
}

// Write implements io.Writer. It never fails, so that a broken log file does not stop the
// program's output from reaching the console; the first log error is kept (see LogErr).
func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.log != nil && w.logErr == nil {
		if _, err := w.log.Write(p); err != nil {
			w.logErr = err
			if !w.quiet {
				w.con.Printf("%s: writing its log failed, console only from now on: %v", w.name, err)
			}
		}
	}
	if w.quiet {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		switch {
		case i >= 0 && i <= maxLine:
			w.emit(w.buf[:i])
			w.buf = w.buf[i+1:]
			continue
		case len(w.buf) > maxLine:
			w.emit(w.buf[:maxLine])
			w.buf = w.buf[maxLine:]
			continue
		}
		break
	}
	if len(w.buf) == 0 {
		w.buf = nil
	}
	return len(p), nil
}

// Flush prints a last line that did not end with a newline.
func (w *LineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
}

// LogErr returns the first error writing the log, or nil.
func (w *LineWriter) LogErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logErr
}

func (w *LineWriter) emit(line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	b := make([]byte, 0, len(w.name)+2+len(line)+1)
	b = append(b, w.name...)
	b = append(b, ": "...)
	b = append(b, line...)
	b = append(b, '\n')
	w.con.write(b)
}

// Tail is an io.Writer that keeps only the last Max bytes written to it, for showing the end
// of a program's output when it fails.
type Tail struct {
	mu  sync.Mutex
	Max int
	buf []byte
	cut bool
}

// Write implements io.Writer; it never fails.
func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.Max; t.Max > 0 && over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.cut = true
	}
	return len(p), nil
}

// String returns what was kept; Truncated says whether earlier bytes were dropped.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Truncated reports whether output was dropped from the front.
func (t *Tail) Truncated() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cut
}

// Panic reports a panic that a goroutine recovered from (its signature fits guard.Reporter).
func (c *Console) Panic(name string, value any, stack []byte) {
	c.Printf("BUG: %s panicked: %v; it has stopped, the rest of the system goes on", name, value)
	c.write(stack)
}
