package assemble

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
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
		blob, _, _ := strings.Cut(filepath.Base(p), "-")
		if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(cache.UnpackedLayerDir()))), "blobs", "sha256", blob)); err != nil {
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

// Two images that share a layer blob but whose configs name different DiffIDs for it (one of
// them wrong, as a hand-edited config can be): each gets the copy checked against its own
// DiffID, so neither breaks the other's builds; the wrong one never gets a copy.
func TestUnpackedCopyPerDiffID(t *testing.T) {
	cache := seedCache(t)
	img, _, err := cache.Image("kiln/test-app:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	wrong, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cache.WriteImage("kiln/test-app-wrong:v1", wrong); err != nil {
		t.Fatal(err)
	}
	formats, err := LookupFormats("tar")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"kiln/test-app:v1", "kiln/test-app-wrong:v1", "kiln/test-app:v1", "kiln/test-app-wrong:v1"} {
		yml := writeYAML(t, "services:\n  - name: app\n    image: "+ref+"\n")
		if _, err := build(t, Options{Files: []string{yml}, Dir: t.TempDir(), Cache: cache, Formats: formats}); err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
	}
	names, err := filepath.Glob(filepath.Join(cache.UnpackedLayerDir(), "*-"+strings.Repeat("0", 64)))
	if err != nil || len(names) != 0 {
		t.Errorf("a copy was kept under the wrong DiffID: %v %v", names, err)
	}
}
