package ocicache

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/kiln-os/kiln/internal/atomicfile"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func TestFamiliar(t *testing.T) {
	dig := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct{ in, want string }{
		{"alpine", "alpine:latest"},
		{"alpine:3.20", "alpine:3.20"},
		{name.DefaultRegistry + "/library/alpine:3.20", "alpine:3.20"},
		{name.DefaultRegistry + "/kiln/init:v1", "kiln/init:v1"},
		{"kiln/init@" + dig, "kiln/init@" + dig},
		{"kiln/init:v1@" + dig, "kiln/init@" + dig},
		{"127.0.0.1:5000/library/x:1", "127.0.0.1:5000/library/x:1"},
		{"Not A Ref", "Not A Ref"},
	}
	for _, tt := range tests {
		if got := Familiar(tt.in); got != tt.want {
			t.Errorf("Familiar(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDefaultRoot(t *testing.T) {
	t.Setenv("KILN_CACHE", "/somewhere/cache")
	if got, err := DefaultRoot(); err != nil || got != "/somewhere/cache" {
		t.Errorf("with KILN_CACHE: %q, %v", got, err)
	}
	t.Setenv("KILN_CACHE", "")
	t.Setenv("HOME", "/home/u")
	if got, err := DefaultRoot(); err != nil || got != "/home/u/.kiln/cache" {
		t.Errorf("without KILN_CACHE: %q, %v", got, err)
	}
}

func TestWriteImageAndRead(t *testing.T) {
	c := newCache(t)
	img := testImage(t, amd64, "hi")
	d, err := c.WriteImage("kiln/hello:1", img)
	if err != nil {
		t.Fatal(err)
	}
	if want := digestOf(t, img); d.Digest != want {
		t.Fatalf("digest %s, want %s", d.Digest, want)
	}
	got, gd, err := c.Image("kiln/hello:1", &amd64)
	if err != nil {
		t.Fatal(err)
	}
	if gd.Digest != d.Digest || digestOf(t, got) != d.Digest {
		t.Fatalf("read back %s / %s, want %s", gd.Digest, digestOf(t, got), d.Digest)
	}
	ls, err := got.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("layers: %v, %v", ls, err)
	}
	rc, err := ls[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Contains(b, []byte("hi")) {
		t.Fatalf("layer content %q, %v", b, err)
	}
	if _, _, err := c.Image("kiln/hello:1", &s390x); err == nil {
		t.Error("an amd64 image was returned for s390x")
	}
	if _, _, err := c.Image("kiln/other:1", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown ref: %v, want ErrNotFound", err)
	}

	// Another tool reads the cache as an OCI layout.
	p, err := layout.FromPath(c.Root())
	if err != nil {
		t.Fatal(err)
	}
	li, err := p.Image(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := readAllLayers(li); err != nil {
		t.Fatal(err)
	}
}

// TestIndexJSONGolden pins the index.json format: sorted by name, ref.name annotations.
func TestIndexJSONGolden(t *testing.T) {
	c := newCache(t)
	if _, err := c.WriteImage("kiln/b:1", testImage(t, amd64, "b")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteIndex("kiln/multi:1", testIndex(t, "m", amd64, arm64, s390x)); err != nil {
		t.Fatal(err)
	}
	d, err := c.WriteImage("kiln/a:1", testImage(t, amd64, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Tag("kiln/a:also", d); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(c.Root(), "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Keep host names out of the golden file.
	got := bytes.ReplaceAll(b, []byte(name.DefaultRegistry), []byte("DEFAULT-REGISTRY"))
	golden := filepath.Join("testdata", "index.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("index.json differs from %s (run with -update):\n%s", golden, got)
	}
	var es []string
	for _, e := range mustList(t, c) {
		es = append(es, fmt.Sprintf("%s %v", e.Familiar, e.Platforms))
	}
	wantList := []string{"kiln/a:1 [linux/amd64]", "kiln/a:also [linux/amd64]", "kiln/b:1 [linux/amd64]",
		"kiln/multi:1 [linux/amd64 linux/arm64/v8 linux/s390x]"}
	if !reflect.DeepEqual(es, wantList) {
		t.Errorf("List = %q, want %q", es, wantList)
	}
}

func mustList(t *testing.T, c *Cache) []Entry {
	t.Helper()
	es, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestImagePlatform(t *testing.T) {
	c := newCache(t)
	idx := testIndex(t, "p", amd64, arm64, s390x)
	if _, err := c.WriteIndex("kiln/multi:1", idx); err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	byArch := map[string]v1.Hash{}
	for _, d := range im.Manifests {
		byArch[d.Platform.Architecture] = d.Digest
	}
	tests := []struct {
		name     string
		platform *v1.Platform
		want     v1.Hash
		errHas   string
	}{
		{"amd64", &amd64, byArch["amd64"], ""},
		{"arm64 no variant", &v1.Platform{OS: "linux", Architecture: "arm64"}, byArch["arm64"], ""},
		{"arm64 v8", &arm64, byArch["arm64"], ""},
		{"s390x", &s390x, byArch["s390x"], ""},
		{"missing", &v1.Platform{OS: "linux", Architecture: "riscv64"}, v1.Hash{}, "linux/amd64, linux/arm64/v8, linux/s390x"},
		{"wrong variant", &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v9"}, v1.Hash{}, "it has"},
		{"nil on multi", nil, v1.Hash{}, "no platform chosen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, d, err := c.Image("kiln/multi:1", tt.platform)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err = %v, want one containing %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Digest != tt.want || digestOf(t, img) != tt.want {
				t.Fatalf("got %s, want %s", d.Digest, tt.want)
			}
			cf, err := img.ConfigFile()
			if err != nil || cf.Architecture != tt.platform.Architecture {
				t.Fatalf("config %+v, %v", cf, err)
			}
			if err := readAllLayers(img); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A single-platform index needs no platform.
	if _, err := c.WriteIndex("kiln/one:1", testIndex(t, "o", s390x)); err != nil {
		t.Fatal(err)
	}
	if _, d, err := c.Image("kiln/one:1", nil); err != nil || d.Platform.Architecture != "s390x" {
		t.Fatalf("single-platform index: %v, %v", d.Platform, err)
	}
	x, err := c.Index("kiln/multi:1")
	if err != nil || digestOf(t, x) != digestOf(t, idx) {
		t.Fatalf("Index: %v", err)
	}
	if _, err := x.Image(byArch["s390x"]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Index("kiln/one:1@" + byArch["s390x"].String()); err == nil {
		t.Error("Index of an image manifest succeeded")
	}
}

func TestResolveByDigest(t *testing.T) {
	c := newCache(t)
	idx := testIndex(t, "r", amd64, arm64)
	d, err := c.WriteIndex("kiln/r:1", idx)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	child := im.Manifests[1]
	tests := []struct {
		ref  string
		want v1.Hash
	}{
		{"kiln/r:1", d.Digest},
		{"kiln/r@" + d.Digest.String(), d.Digest},
		{"kiln/r:ignored@" + d.Digest.String(), d.Digest},
		{"kiln/r@" + child.Digest.String(), child.Digest},
		{"other/repo@" + child.Digest.String(), child.Digest},
	}
	for _, tt := range tests {
		got, err := c.Resolve(tt.ref)
		if err != nil || got.Digest != tt.want {
			t.Errorf("Resolve(%q) = %s, %v; want %s", tt.ref, got.Digest, err, tt.want)
		}
	}
	if _, _, err := c.Image("kiln/r@"+child.Digest.String(), nil); err != nil {
		t.Errorf("Image by child digest: %v", err)
	}
	missing := "kiln/r@sha256:" + strings.Repeat("0", 64)
	if _, err := c.Resolve(missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve(%s) = %v, want ErrNotFound", missing, err)
	}
}

func TestWriteBlobAtomic(t *testing.T) {
	data := []byte(strings.Repeat("kiln ", 1000))
	sum, _, err := v1.SHA256(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		r       io.Reader
		want    v1.Hash
		corrupt bool
	}{
		{"reader fails", io.MultiReader(bytes.NewReader(data[:100]), errReader{}), sum, false},
		{"short input", bytes.NewReader(data[:len(data)-1]), sum, true},
		{"other content", bytes.NewReader(append([]byte("x"), data[1:]...)), sum, true},
		{"too long", bytes.NewReader(append(data, '!')), sum, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t)
			_, _, err := c.WriteBlob(tt.r, tt.want)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrCorrupt) != tt.corrupt {
				t.Errorf("errors.Is(%v, ErrCorrupt) = %v", err, !tt.corrupt)
			}
			if b := blobFiles(t, c); len(b) != 0 {
				t.Errorf("blobs left: %v", b)
			}
			if tmp := tempFiles(t, c); len(tmp) != 0 {
				t.Errorf("temp files left: %v", tmp)
			}
		})
	}
	c := newCache(t)
	h, n, err := c.WriteBlob(bytes.NewReader(data), v1.Hash{})
	if err != nil || h != sum || n != int64(len(data)) {
		t.Fatalf("WriteBlob = %s, %d, %v", h, n, err)
	}
	// A second write of present content does not read the reader.
	if _, _, err := c.WriteBlob(errReader{}, sum); err != nil {
		t.Fatalf("rewrite of a present blob: %v", err)
	}
}

func TestWriteImageFailedLayer(t *testing.T) {
	c := newCache(t)
	if _, err := c.WriteImage("kiln/keep:1", testImage(t, amd64, "keep")); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(c.Root(), "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	blobsBefore := blobFiles(t, c)
	fail := false
	img := testImageFrom(t, amd64, opener(tarBytes(t, map[string]string{"big": strings.Repeat("z", 1<<16)}), &fail))
	if _, err := img.Manifest(); err != nil { // digests computed while the source works
		t.Fatal(err)
	}
	fail = true
	if _, err := c.WriteImage("kiln/broken:1", img); err == nil {
		t.Fatal("WriteImage with a failing layer succeeded")
	}
	after, err := os.ReadFile(filepath.Join(c.Root(), "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("index.json changed:\n%s", after)
	}
	if got := blobFiles(t, c); !reflect.DeepEqual(got, blobsBefore) {
		t.Errorf("blobs %v, want %v", got, blobsBefore)
	}
	if tmp := tempFiles(t, c); len(tmp) != 0 {
		t.Errorf("temp files left: %v", tmp)
	}
}

// damage rewrites a blob file.
func damage(t *testing.T, c *Cache, h v1.Hash, how string) {
	t.Helper()
	p := filepath.Join(c.Root(), "blobs", "sha256", h.Hex)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	switch how {
	case "flip":
		b[len(b)/2] ^= 0xff
	case "truncate":
		b = b[:len(b)/2]
	case "extend":
		b = append(b, "junk"...)
	case "delete":
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptBlobAndRecovery(t *testing.T) {
	tests := []struct {
		how     string
		target  string // "layer" or "manifest"
		errHas  []string
		errorIs error
	}{
		{"flip", "layer", []string{"corrupt", "kiln cache rm"}, ErrCorrupt},
		{"truncate", "layer", []string{"truncated", "kiln cache clean -all"}, ErrCorrupt},
		{"extend", "layer", []string{"corrupt"}, ErrCorrupt},
		{"delete", "layer", nil, ErrNotFound},
		{"flip", "manifest", []string{"corrupt"}, ErrCorrupt},
		{"truncate", "manifest", []string{"truncated"}, ErrCorrupt},
		{"delete", "manifest", nil, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.how+" "+tt.target, func(t *testing.T) {
			c := newCache(t)
			good := testImage(t, amd64, "good")
			if _, err := c.WriteImage("kiln/good:1", good); err != nil {
				t.Fatal(err)
			}
			bad := testImage(t, amd64, "bad")
			d, err := c.WriteImage("kiln/bad:1", bad)
			if err != nil {
				t.Fatal(err)
			}
			ls, _ := bad.Layers()
			target := d.Digest
			if tt.target == "layer" {
				target = digestOf(t, ls[0])
			}
			damage(t, c, target, tt.how)

			img, _, err := c.Image("kiln/bad:1", &amd64)
			if err == nil {
				err = readAllLayers(img)
			}
			if !errors.Is(err, tt.errorIs) {
				t.Fatalf("reading damaged image: %v, want %v", err, tt.errorIs)
			}
			if !strings.Contains(err.Error(), target.String()) {
				t.Errorf("error does not name %s: %v", target, err)
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q: %v", s, err)
				}
			}
			if tt.how != "delete" {
				rc, err := c.OpenBlob(target)
				if err != nil {
					t.Fatal(err)
				}
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), target.String()) {
					t.Errorf("OpenBlob read: %v", err)
				}
			}
			if es := mustList(t, c); len(es) != 2 {
				t.Errorf("List on a damaged cache: %v", es)
			}

			// Recovery: remove the broken ref; the rest keeps working, the broken one can return.
			if err := c.Remove("kiln/bad:1"); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if c.HasBlob(target) {
				t.Error("damaged blob survived Remove")
			}
			img, _, err = c.Image("kiln/good:1", &amd64)
			if err != nil {
				t.Fatal(err)
			}
			if err := readAllLayers(img); err != nil {
				t.Fatal(err)
			}
			if _, err := c.WriteImage("kiln/bad:1", bad); err != nil {
				t.Fatal(err)
			}
			img, _, err = c.Image("kiln/bad:1", &amd64)
			if err != nil {
				t.Fatal(err)
			}
			if err := readAllLayers(img); err != nil {
				t.Fatalf("re-written image: %v", err)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	c := newCache(t)
	shared := testImage(t, amd64, "shared")
	d, err := c.WriteImage("kiln/a:1", shared)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Tag("kiln/a:2", d); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteIndex("kiln/m:1", testIndex(t, "m", amd64, arm64)); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove("kiln/a:1", "kiln/nope:1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Remove with an unknown ref: %v", err)
	}
	if got := refs(t, c); len(got) != 3 {
		t.Fatalf("a failed Remove changed the cache: %v", got)
	}
	if err := c.Remove("kiln/a:1"); err != nil {
		t.Fatal(err)
	}
	// kiln/a:2 still reaches the shared blobs.
	img, _, err := c.Image("kiln/a:2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := readAllLayers(img); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove("kiln/a@" + d.Digest.String()); err != nil {
		t.Fatal(err)
	}
	if got := refs(t, c); !reflect.DeepEqual(got, []string{"kiln/m:1"}) {
		t.Fatalf("refs = %v", got)
	}
	// A damaged manifest of a remaining image stops collection (its blobs are unknown) and
	// names that image; removing it too recovers.
	dm, err := c.WriteImage("kiln/damaged:1", testImage(t, amd64, "damaged"))
	if err != nil {
		t.Fatal(err)
	}
	damage(t, c, dm.Digest, "flip")
	if err := c.Remove("kiln/m:1"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "kiln/damaged:1") {
		t.Fatalf("Remove next to a damaged image: %v", err)
	}
	if err := c.Remove("kiln/damaged:1"); err != nil {
		t.Fatal(err)
	}
	if b := blobFiles(t, c); len(b) != 0 {
		t.Errorf("blobs left after removing everything: %v", b)
	}
}

func TestClean(t *testing.T) {
	c := newCache(t)
	d, err := c.WriteImage("kiln/a:1", testImage(t, amd64, "a"))
	if err != nil {
		t.Fatal(err)
	}
	loose, _, err := c.WriteBlob(strings.NewReader("unreferenced"), v1.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	// Temporary files whose writers died (no lock held), one of an older kiln, and one of a
	// writer still at work, which must survive.
	stale := []string{
		filepath.Join(c.Root(), atomicfile.Prefix+"index.json-123"),
		filepath.Join(c.Root(), "blobs", "sha256", atomicfile.Prefix+"blob-123"),
		filepath.Join(c.Root(), legacyTmpPrefix+"blob-123"),
	}
	for _, p := range stale {
		if err := os.WriteFile(p, []byte("left by a crash"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	live, err := atomicfile.Create(filepath.Join(c.Root(), "blobs", "sha256", "x"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()
	n := len(blobFiles(t, c)) - 2 // without the two temporary files there
	rep, err := c.Clean(false)
	if err != nil {
		t.Fatal(err)
	}
	if c.HasBlob(loose) {
		t.Error("unreferenced blob kept")
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale temp file %s kept", p)
		}
	}
	if _, err := os.Stat(live.Name()); err != nil {
		t.Errorf("temp file of a live writer removed: %v", err)
	}
	if len(rep.TempFiles) != 3 || rep.TempBytes != 3*int64(len("left by a crash")) || rep.Blobs != 1 || rep.BlobBytes != int64(len("unreferenced")) {
		t.Errorf("report %+v, want 3 temp files of 15 bytes each and 1 blob of 12 bytes", rep)
	}
	if got := len(blobFiles(t, c)) - 1; got != n-1 || !c.HasBlob(d.Digest) {
		t.Errorf("referenced blobs: %d, want %d", got, n-1)
	}
	live.Abort()
	if _, err := c.Clean(true); err != nil {
		t.Fatal(err)
	}
	if got := refs(t, c); len(got) != 0 {
		t.Errorf("refs after Clean(true): %v", got)
	}
	if b := blobFiles(t, c); len(b) != 0 {
		t.Errorf("blobs after Clean(true): %v", b)
	}
	var im v1.IndexManifest
	b, _ := os.ReadFile(filepath.Join(c.Root(), "index.json"))
	if err := json.Unmarshal(b, &im); err != nil || im.Manifests == nil || im.SchemaVersion != 2 {
		t.Errorf("empty index.json: %s (%v)", b, err)
	}
}
