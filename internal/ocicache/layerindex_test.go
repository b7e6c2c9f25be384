package ocicache

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-os/kiln/internal/atomicfile"
)

func writeIndex(t *testing.T, c *Cache, h v1.Hash, content string) error {
	t.Helper()
	return c.WriteLayerIndex(h, func(w io.Writer) error {
		_, err := io.WriteString(w, content)
		return err
	})
}

func readIndex(t *testing.T, c *Cache, h v1.Hash) (string, error) {
	t.Helper()
	f, err := c.OpenLayerIndex(h)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

// TestLayerIndex: an index is stored for a blob that is present only, read back, and removed
// by Clean and Remove once its blob is gone; a stale temporary index file goes too.
func TestLayerIndex(t *testing.T) {
	c := newCache(t)
	img := testImage(t, amd64, "a")
	if _, err := c.WriteImage("kiln/a:1", img); err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	layer := digestOf(t, ls[0])
	if _, err := c.OpenLayerIndex(layer); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenLayerIndex before writing: %v, want fs.ErrNotExist", err)
	}
	if err := writeIndex(t, c, layer, "index of a"); err != nil {
		t.Fatal(err)
	}
	if got, err := readIndex(t, c, layer); err != nil || got != "index of a" {
		t.Fatalf("read back %q, %v", got, err)
	}
	absent := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	if err := writeIndex(t, c, absent, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("index of an absent blob: %v, want ErrNotFound", err)
	}
	if err := writeIndex(t, c, v1.Hash{Algorithm: "sha256", Hex: "../x"}, "x"); err == nil {
		t.Error("index under a malformed digest accepted")
	}
	// A failed write leaves the old index.
	if err := c.WriteLayerIndex(layer, func(w io.Writer) error {
		_, _ = io.WriteString(w, "half")
		return errors.New("stopped")
	}); err == nil {
		t.Error("failed write reported no error")
	}
	if got, _ := readIndex(t, c, layer); got != "index of a" {
		t.Errorf("after a failed write: %q", got)
	}
	// An index whose blob went away some other way, and a stale temporary file.
	orphan := filepath.Join(c.LayerIndexDir(), strings.Repeat("cd", 32))
	stale := filepath.Join(c.LayerIndexDir(), atomicfile.Prefix+"x-1")
	for _, p := range []string{orphan, stale} {
		if err := os.WriteFile(p, []byte("left"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := c.Clean(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{orphan, stale} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s kept by Clean", p)
		}
	}
	if len(rep.TempFiles) != 1 || rep.TempFiles[0] != stale {
		t.Errorf("Clean reported temporary files %v, want %s", rep.TempFiles, stale)
	}
	if got, err := readIndex(t, c, layer); err != nil || got != "index of a" {
		t.Fatalf("index of a live layer removed by Clean: %q, %v", got, err)
	}
	if err := c.Remove("kiln/a:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenLayerIndex(layer); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("index kept after its layer was removed: %v", err)
	}
}

// TestCacheOfAndUnverified: images read from the cache name it; Unverified reads a cache blob
// without the digest check, and leaves other readers alone.
func TestCacheOfAndUnverified(t *testing.T) {
	c := newCache(t)
	if _, err := c.WriteImage("kiln/a:1", testImage(t, amd64, "a")); err != nil {
		t.Fatal(err)
	}
	img, _, err := c.Image("kiln/a:1", &amd64)
	if err != nil {
		t.Fatal(err)
	}
	if CacheOf(img) != c {
		t.Error("CacheOf(cached image) is not the cache")
	}
	if CacheOf(testImage(t, amd64, "b")) != nil {
		t.Error("CacheOf(other image) is not nil")
	}
	if err := readAllLayers(img); err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	plain := Unverified(rc)
	if _, ok := plain.(Verifier); ok {
		t.Error("Unverified returned a verifying reader")
	}
	b, err := io.ReadAll(plain)
	plain.Close()
	if err != nil || int64(len(b)) != mustSize(t, ls[0]) {
		t.Errorf("Unverified read %d bytes, %v", len(b), err)
	}
	other := io.NopCloser(bytes.NewReader(nil))
	if Unverified(other) != other {
		t.Error("Unverified changed a reader that is not a cache blob")
	}
}

func mustSize(t *testing.T, l v1.Layer) int64 {
	t.Helper()
	n, err := l.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
