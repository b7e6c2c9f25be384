package ocicache

import (
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

func readUnpacked(c *Cache, h v1.Hash) (string, error) {
	f, err := c.OpenUnpackedLayer(h, diff)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

// diff stands for a layer's DiffID in these tests.
var diff = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("d1", 32)}

// TestUnpackedLayer: a copy is stored for a blob that is present only, appears only on
// Commit, and is removed by Clean (which reports its bytes) and Remove once its blob is gone,
// as is a stale temporary copy; RemoveUnpackedLayer drops one.
func TestUnpackedLayer(t *testing.T) {
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
	if _, err := c.OpenUnpackedLayer(layer, diff); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenUnpackedLayer before writing: %v, want fs.ErrNotExist", err)
	}
	if _, err := c.CreateUnpackedLayer(v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}, diff); !errors.Is(err, ErrNotFound) {
		t.Errorf("copy of an absent blob: %v, want ErrNotFound", err)
	}
	if _, err := c.CreateUnpackedLayer(v1.Hash{Algorithm: "sha256", Hex: "../x"}, diff); err == nil {
		t.Error("copy under a malformed digest accepted")
	}
	u, err := c.CreateUnpackedLayer(layer, diff)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(u, "tar of a")
	if _, err := c.OpenUnpackedLayer(layer, diff); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a copy being written is visible: %v", err)
	}
	u.Abort()
	if _, err := c.OpenUnpackedLayer(layer, diff); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an aborted copy is visible: %v", err)
	}
	if u, err = c.CreateUnpackedLayer(layer, diff); err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(u, "tar of a")
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, err := readUnpacked(c, layer); err != nil || got != "tar of a" {
		t.Fatalf("read back %q, %v", got, err)
	}

	orphan := filepath.Join(c.UnpackedLayerDir(), strings.Repeat("cd", 32)+"-"+diff.Hex)
	stale := filepath.Join(c.UnpackedLayerDir(), atomicfile.Prefix+"x-1")
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
	if rep.CopyBytes != 4 || len(rep.TempFiles) != 1 || rep.TempFiles[0] != stale {
		t.Errorf("Clean reported %d bytes of copies and temporary files %v, want 4 and %s", rep.CopyBytes, rep.TempFiles, stale)
	}
	if got, err := readUnpacked(c, layer); err != nil || got != "tar of a" {
		t.Fatalf("copy of a live layer removed by Clean: %q, %v", got, err)
	}
	// A damaged copy is removed only while it is still the one in the cache.
	old, err := c.OpenUnpackedLayer(layer, diff)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if u, err = c.CreateUnpackedLayer(layer, diff); err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(u, "a newer copy")
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveUnpackedLayer(layer, diff, old); err != nil {
		t.Fatal(err)
	}
	if got, err := readUnpacked(c, layer); err != nil || got != "a newer copy" {
		t.Fatalf("removing a replaced copy removed its replacement: %q, %v", got, err)
	}
	cur, err := c.OpenUnpackedLayer(layer, diff)
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if err := c.RemoveUnpackedLayer(layer, diff, cur); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenUnpackedLayer(layer, diff); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("copy kept after RemoveUnpackedLayer: %v", err)
	}
	if u, err = c.CreateUnpackedLayer(layer, diff); err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove("kiln/a:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenUnpackedLayer(layer, diff); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("copy kept after its layer was removed: %v", err)
	}
}
