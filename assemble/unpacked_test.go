package assemble

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A compressed layer is decompressed once: the first build leaves each layer's unpacked copy
// in the cache, named after its blob, and the next build reads the copies and writes the same
// bytes. A damaged copy fails the build, which names it, removes it and leaves no output; the
// build after that decompresses the layer again. KILN_UNPACKED_LAYERS=0 writes no copies.
func TestUnpackedLayerCopies(t *testing.T) {
	cache := seedCache(t)
	yml := writeYAML(t, systemYAML)
	formats, err := LookupFormats("kernel+initrd,tar")
	if err != nil {
		t.Fatal(err)
	}
	buildTo := func() (string, error) {
		out := t.TempDir()
		_, err := build(t, Options{Files: []string{yml}, Dir: out, Cache: cache, Formats: formats})
		return out, err
	}
	copies := func() []string {
		t.Helper()
		names, err := filepath.Glob(filepath.Join(cache.UnpackedLayerDir(), "*"))
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	sameOutputs := func(a, b string) {
		t.Helper()
		for _, name := range []string{TarFile("system"), InitrdFile("system")} {
			x, err := os.ReadFile(filepath.Join(a, name))
			if err != nil {
				t.Fatal(err)
			}
			y, err := os.ReadFile(filepath.Join(b, name))
			if err != nil || !bytes.Equal(x, y) {
				t.Errorf("%s differs between a build with unpacked copies and one without (%v)", name, err)
			}
		}
	}

	first, err := buildTo()
	if err != nil {
		t.Fatal(err)
	}
	made := copies()
	// The images have 5 layers, all gzip: kernel 1, init 2, app 1, and the kernel's own.
	if len(made) < 4 {
		t.Fatalf("the first build left %d unpacked copies: %v", len(made), made)
	}
	for _, p := range made {
		if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(cache.UnpackedLayerDir()))), "blobs", "sha256", filepath.Base(p))); err != nil {
			t.Errorf("copy %s is not named after a blob: %v", filepath.Base(p), err)
		}
	}
	second, err := buildTo()
	if err != nil {
		t.Fatal(err)
	}
	sameOutputs(first, second)

	// Damage every copy in its last byte (the tar's end padding, which the flattener does not
	// otherwise need): the check against the DiffID still catches it.
	for _, p := range made {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-1] ^= 1
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := buildTo()
	if err == nil || !strings.Contains(err.Error(), "unpacked copy") || !strings.Contains(err.Error(), "DiffID") ||
		!strings.Contains(err.Error(), "run the build again") {
		t.Fatalf("a build from damaged copies: error %v, want one naming the unpacked copy and its DiffID", err)
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Errorf("the failed build left %d files", len(left))
	}
	if len(copies()) >= len(made) {
		t.Errorf("the damaged copy was not removed: %v", copies())
	}
	var third string
	for range len(made) { // each failed build removes the copy it found damaged
		if third, err = buildTo(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	sameOutputs(first, third)

	if err := os.RemoveAll(cache.UnpackedLayerDir()); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KILN_UNPACKED_LAYERS", "0")
	fourth, err := buildTo()
	if err != nil {
		t.Fatal(err)
	}
	if len(copies()) != 0 {
		t.Errorf("KILN_UNPACKED_LAYERS=0 wrote copies: %v", copies())
	}
	sameOutputs(first, fourth)
}
