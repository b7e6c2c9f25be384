// Package streamio holds the two small helpers kiln's media writers (assemble/gpt, iso, uki,
// internal/fatimg) share when they write an image front to back: a writer that counts what
// went through it, and a run of zero bytes written without allocating it.
package streamio

import "io"

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
