package layers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

type closeErrReader struct {
	io.Reader
	err error
}

func (c closeErrReader) Close() error { return c.err }

// TestFlattenLayerErrors checks that errors found while reading layers, in either pass and
// whatever goroutine reads them, name the lowest layer that fails.
func TestFlattenLayerErrors(t *testing.T) {
	good := tarBytes(t, []ent{file("a", "a")})
	boom := errors.New("boom")
	opener := func(b []byte, openErr, closeErr error, failOn int) Layer {
		n := 0
		return LayerFunc(func() (io.ReadCloser, error) {
			n++
			if openErr != nil && n >= failOn {
				return nil, openErr
			}
			var cerr error
			if n >= failOn {
				cerr = closeErr
			}
			return closeErrReader{bytes.NewReader(b), cerr}, nil
		})
	}
	truncated := LayerFunc(func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(bytes.NewReader(good[:600]), errReader{boom})), nil
	})
	tests := []struct {
		name   string
		layers []Layer
		want   string
	}{
		{"pass 1 lowest failing layer wins", []Layer{opener(good, nil, nil, 1), truncated, opener(good, boom, nil, 1)}, "layer 1 entry"},
		{"pass 2 open", []Layer{opener(good, boom, nil, 2)}, "layer 0: open: boom"},
		{"pass 2 close", []Layer{opener(good, nil, boom, 2)}, "layer 0: close: boom"},
		{"pass 2 close of lower layer first", []Layer{opener(good, nil, boom, 2), opener(tarBytes(t, []ent{file("b", "b")}), boom, nil, 2)}, "layer 0: close: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Flatten(context.Background(), tt.layers, &recorder{})
			if !errors.Is(err, boom) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want boom and %q", err, tt.want)
			}
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
