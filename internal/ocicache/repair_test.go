package ocicache

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestIndexMissingWithBlobs: a deleted index.json must not be replaced by an empty one (which
// a later clean would take as "nothing is used" and delete every blob).
func TestIndexMissingWithBlobs(t *testing.T) {
	c := newCache(t)
	if _, err := c.WriteImage("kiln/a:1", testImage(t, amd64, "a")); err != nil {
		t.Fatal(err)
	}
	n := len(blobFiles(t, c))
	if err := os.Remove(IndexPath(c.Root())); err != nil {
		t.Fatal(err)
	}
	_, err := Open(c.Root())
	if !errors.Is(err, ErrIndexDamaged) || !strings.Contains(err.Error(), "kiln cache repair") {
		t.Fatalf("Open: %v; want ErrIndexDamaged naming kiln cache repair", err)
	}
	if _, err := os.Stat(IndexPath(c.Root())); !errors.Is(err, os.ErrNotExist) {
		t.Error("Open wrote an index.json over the missing one")
	}
	// The Cache opened before the deletion fails too, and collects nothing.
	if _, err := c.List(); !errors.Is(err, ErrIndexDamaged) {
		t.Errorf("List: %v; want ErrIndexDamaged", err)
	}
	if _, err := c.Clean(false); !errors.Is(err, ErrIndexDamaged) {
		t.Errorf("Clean: %v; want ErrIndexDamaged", err)
	}
	if got := len(blobFiles(t, c)); got != n {
		t.Errorf("%d blobs left of %d", got, n)
	}
}

func TestIndexCorrupt(t *testing.T) {
	for name, content := range map[string]string{
		"empty":     "",
		"truncated": `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","dig`,
		"version":   `{"schemaVersion":1,"manifests":[]}`,
		"digest":    `{"schemaVersion":2,"manifests":[{"digest":"sha256:1234","size":1}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			c := newCache(t)
			if _, err := c.WriteImage("kiln/a:1", testImage(t, amd64, "a")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(IndexPath(c.Root()), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(c.Root()); !errors.Is(err, ErrIndexDamaged) || !strings.Contains(err.Error(), "kiln cache repair") {
				t.Errorf("Open: %v; want ErrIndexDamaged naming kiln cache repair", err)
			}
			if _, _, err := c.Image("kiln/a:1", &amd64); !errors.Is(err, ErrIndexDamaged) {
				t.Errorf("Image: %v; want ErrIndexDamaged", err)
			}
			if b, _ := os.ReadFile(IndexPath(c.Root())); string(b) != content {
				t.Errorf("index.json changed to %q", b)
			}
		})
	}
}

// TestOpenNewCacheSilently: a brand-new folder, or one with an empty blobs/, is initialised.
func TestOpenNewCacheSilently(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if es, err := c.List(); err != nil || len(es) != 0 {
		t.Fatalf("List: %v, %v", es, err)
	}
}

func TestRepair(t *testing.T) {
	c := newCache(t)
	img, err := c.WriteImage("kiln/a:1", testImage(t, amd64, "a"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := c.WriteIndex("kiln/multi:1", testIndex(t, "m", amd64, arm64))
	if err != nil {
		t.Fatal(err)
	}
	// An image whose manifest carries its name, as some exporters write it.
	named := mutate.Annotations(testImage(t, s390x, "named"), map[string]string{AnnotationRefName: "example.com/kiln/named:2"}).(v1.Image)
	nd, err := c.WriteImage("kiln/whatever:1", named)
	if err != nil {
		t.Fatal(err)
	}
	// A damaged manifest blob that nothing names any more.
	bad := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	if err := os.WriteFile(BlobPath(c.Root(), bad), []byte(`{"schemaVersion":2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(IndexPath(c.Root()), []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}

	rc, err := Open(c.Root(), WithoutIndexCheck())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := rc.Repair()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Recovered{}
	for _, r := range rep.Recovered {
		got[r.Familiar] = r
	}
	want := map[string]v1.Hash{
		RecoveredRepo + "@" + img.Digest.String(): img.Digest,
		RecoveredRepo + "@" + idx.Digest.String(): idx.Digest,
		"example.com/kiln/named:2":                nd.Digest,
	}
	if len(got) != len(want) {
		t.Errorf("recovered %v, want %v", rep.Recovered, want)
	}
	for ref, h := range want {
		if got[ref].Digest != h {
			t.Errorf("%s: recovered %v, want %s", ref, got[ref], h)
		}
	}
	if got["example.com/kiln/named:2"].NamedBy != AnnotationRefName {
		t.Errorf("named by %q", got["example.com/kiln/named:2"].NamedBy)
	}
	if len(rep.Corrupt) != 1 || rep.Corrupt[0] != bad {
		t.Errorf("corrupt: %v, want %s", rep.Corrupt, bad)
	}
	if b, err := os.ReadFile(rep.SavedAs); err != nil || string(b) != "{garbage" {
		t.Errorf("damaged index kept as %q: %q, %v", rep.SavedAs, b, err)
	}

	// The cache works again, and Clean keeps every recovered image's blobs.
	c2, err := Open(c.Root())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Clean(false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []v1.Platform{amd64, arm64} {
		i, _, err := c2.Image(RecoveredRepo+"@"+idx.Digest.String(), &p)
		if err != nil {
			t.Fatal(err)
		}
		if err := readAllLayers(i); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := c2.Image("example.com/kiln/named:2", nil); err != nil {
		t.Fatal(err)
	}
	// Repair on an intact index changes nothing.
	if rep, err := c2.Repair(); err != nil || !rep.Intact {
		t.Errorf("second repair: %+v, %v", rep, err)
	}
}

// TestRepairNamesFromIndexDescriptors: a name on an index's descriptor names its child.
func TestRepairNamesFromIndexDescriptors(t *testing.T) {
	c := newCache(t)
	child, err := c.WriteImage("kiln/child:1", testImage(t, amd64, "c"))
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"` +
		string(types.OCIManifestSchema1) + `","digest":"` + child.Digest.String() + `","size":` + itoa(child.Size) +
		`,"annotations":{"io.containerd.image.name":"registry.example/kiln/child:7"}}]}`)
	if _, _, err := c.WriteBlob(bytes.NewReader(raw), v1.Hash{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(IndexPath(c.Root())); err != nil {
		t.Fatal(err)
	}
	rc, err := Open(c.Root(), WithoutIndexCheck())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := rc.Repair()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rep.Recovered {
		names = append(names, r.Familiar)
		if r.Familiar == "registry.example/kiln/child:7" && (r.Digest != child.Digest || r.NamedBy != AnnotationContainerdName) {
			t.Errorf("child: %+v", r)
		}
	}
	if len(names) != 2 || !strings.Contains(strings.Join(names, " "), "registry.example/kiln/child:7") || rep.SavedAs != "" {
		t.Errorf("recovered %v (saved %q); want the index by digest and the child by its annotation", names, rep.SavedAs)
	}
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// TestDiagnoseCorruptLayer: a byte flipped inside a layer makes the tar reader fail before the
// end of the blob, with "archive/tar: invalid tar header" and no digest; Diagnose turns that
// into an error naming the blob and the way out.
func TestDiagnoseCorruptLayer(t *testing.T) {
	c := newCache(t)
	layer := tarBytes(t, map[string]string{"a": strings.Repeat("hello world ", 2000), "b": "x"})
	h, _, err := c.WriteBlob(bytes.NewReader(layer), v1.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	damaged := append([]byte{}, layer...)
	damaged[100] ^= 0xff // inside the first header: its checksum no longer matches
	if err := os.WriteFile(BlobPath(c.Root(), h), damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := c.OpenBlob(h)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, terr := tar.NewReader(rc).Next()
	if terr == nil {
		t.Fatal("tar accepted a damaged header")
	}
	err = Diagnose(rc, terr)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, terr) || !strings.Contains(err.Error(), h.String()) ||
		!strings.Contains(err.Error(), "kiln cache rm") || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("Diagnose: %v; want ErrCorrupt naming %s, corrupt and kiln cache rm", err, h)
	}

	// A blob that matches its digest but is no tar: the decoding error stays as it is.
	junk := bytes.Repeat([]byte("not a tar "), 100)
	jh, _, err := c.WriteBlob(bytes.NewReader(junk), v1.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	rc2, err := c.OpenBlob(jh)
	if err != nil {
		t.Fatal(err)
	}
	defer rc2.Close()
	_, terr = tar.NewReader(rc2).Next()
	if terr == nil {
		t.Fatal("tar accepted junk")
	}
	if err := Diagnose(rc2, terr); err != terr { //nolint:errorlint // the very same error must come back unchanged
		t.Errorf("Diagnose of an intact blob: %v; want %v", err, terr)
	}
}

// TestImportReplacesCorruptBlob: importing a tar again repairs a damaged blob in the cache.
func TestImportReplacesCorruptBlob(t *testing.T) {
	src := newCache(t)
	if _, err := src.WriteImage("kiln/a:1", testImage(t, amd64, "content of a")); err != nil {
		t.Fatal(err)
	}
	var tarball bytes.Buffer
	if err := src.ExportOCI(&tarball, "kiln/a:1"); err != nil {
		t.Fatal(err)
	}
	c := newCache(t)
	if _, err := c.Import(bytes.NewReader(tarball.Bytes())); err != nil {
		t.Fatal(err)
	}
	img, _, err := c.Image("kiln/a:1", &amd64)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	h, _ := ls[0].Digest()
	p := BlobPath(c.Root(), h)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01 // same size, wrong content
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.VerifyBlob(h); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("VerifyBlob of a damaged blob: %v", err)
	}
	if _, err := c.Import(bytes.NewReader(tarball.Bytes())); err != nil {
		t.Fatal(err)
	}
	if err := c.VerifyBlob(h); err != nil {
		t.Errorf("after importing again: %v", err)
	}
	if tmp := tempFiles(t, c); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}
