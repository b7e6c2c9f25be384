// Package streamio holds the small helpers kiln's image writers (assemble and its media
// packages, internal/fatimg, internal/ocicache) share when they write an image front to back:
// a writer that counts what went through it, a run of zero bytes written without allocating
// it, and a fast test for all-zero bytes (what sparse and qcow2 writers leave out).
package streamio

import (
	"bytes"
	"io"
)

// Counter writes to W and counts the bytes written in N.
type Counter struct {
	W io.Writer
	N int64
}

func (c *Counter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += int64(n)
	return n, err
}

var zeroBlock [64 << 10]byte

// Zeros writes n zero bytes to w (nothing when n is 0 or less).
func Zeros(w io.Writer, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeroBlock)))
		if _, err := w.Write(zeroBlock[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// IsZero reports whether b holds only zero bytes. It compares b with a block of zeros, which
// bytes.Equal does in vectorised code: many times faster than a loop over the bytes.
func IsZero(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), len(zeroBlock))
		if !bytes.Equal(b[:k], zeroBlock[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}
