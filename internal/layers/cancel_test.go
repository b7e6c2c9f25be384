package layers

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// bigLayer is a layer holding one file of size zero bytes, generated as it is read. It
// counts what was read, cancels after cancelAt bytes, and records how it was closed: Close
// reads the rest first, as a verifying layer does; Abandon does not.
type bigLayer struct {
	size, cancelAt int64
	cancel         func()
	read           atomic.Int64
	closed         atomic.Int32
	abandoned      atomic.Int32
}

func (l *bigLayer) Open() (io.ReadCloser, error) {
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "big", Mode: 0o644, Size: l.size}); err != nil {
		return nil, err
	}
	r := io.MultiReader(&hdr, io.LimitReader(zeros{}, l.size), bytes.NewReader(make([]byte, 1024+(512-l.size%512)%512)))
	return &bigReader{l: l, r: r}, nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type bigReader struct {
	l *bigLayer
	r io.Reader
}

func (b *bigReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if b.l.read.Add(int64(n)) >= b.l.cancelAt && b.l.cancel != nil {
		b.l.cancel()
	}
	return n, err
}

func (b *bigReader) Close() error {
	b.l.closed.Add(1)
	_, err := io.Copy(io.Discard, b) // what a digest check does
	return err
}

func (b *bigReader) Abandon() { b.l.abandoned.Add(1) }

// TestCancelInsideLargeEntry cancels while a large entry is being read, in pass 1 (its body
// skipped; 64 GiB, which would take minutes to read) and in pass 2 (its body written): each
// returns context.Canceled promptly, having read little more than where the cancel came, and
// abandons the layer instead of reading it to its end.
func TestCancelInsideLargeEntry(t *testing.T) {
	for _, tc := range []struct {
		name           string
		size, cancelAt int64
		wantClosed     int32 // normal closes: pass 1 of the pass 2 case ends normally
	}{
		{"pass 1", 64 << 30, 32 << 20, 0},
		{"pass 2", 256 << 20, 256<<20 + 32<<20, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			l := &bigLayer{size: tc.size, cancelAt: tc.cancelAt, cancel: cancel}
			done := make(chan error, 1)
			go func() {
				_, err := Flatten(ctx, []Layer{l}, discardWriter{})
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("error = %v, want context.Canceled", err)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("no return within 60s of a cancel")
			}
			if got := l.read.Load(); got > tc.cancelAt+64<<20 {
				t.Errorf("read %d bytes, %d after the cancel", got, got-tc.cancelAt)
			}
			if l.abandoned.Load() != 1 || l.closed.Load() != tc.wantClosed {
				t.Errorf("abandoned %d, closed %d times; want 1 and %d: a cancelled read abandons the layer",
					l.abandoned.Load(), l.closed.Load(), tc.wantClosed)
			}
		})
	}
}

// discardWriter reads every body and keeps nothing.
type discardWriter struct{}

func (discardWriter) WriteEntry(e archiveEntry, body io.Reader) error {
	if body != nil {
		_, err := io.Copy(io.Discard, body)
		return err
	}
	return nil
}
func (discardWriter) Close() error { return nil }
