package ocicache

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-os/kiln/internal/atomicfile"
)

// tarBytes builds a deterministic tar of regular files.
func tarBytes(t testing.TB, files map[string]string) []byte {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// opener returns a tarball.Opener over fixed bytes; fail, when set and true, makes it fail
// half-way through.
func opener(data []byte, fail *bool) tarball.Opener {
	return func() (io.ReadCloser, error) {
		if fail != nil && *fail {
			return io.NopCloser(io.MultiReader(bytes.NewReader(data[:len(data)/2]), errReader{})), nil
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// testImage builds a small OCI image for platform p whose one layer holds /hello = content.
func testImage(t testing.TB, p v1.Platform, content string) v1.Image {
	t.Helper()
	return testImageFrom(t, p, opener(tarBytes(t, map[string]string{"hello": content, "etc/arch": p.String()}), nil))
}

func testImageFrom(t testing.TB, p v1.Platform, op tarball.Opener) v1.Image {
	t.Helper()
	l, err := tarball.LayerFromOpener(op, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	s390x = v1.Platform{OS: "linux", Architecture: "s390x"}
)

// testIndex builds an OCI index with one image per platform.
func testIndex(t testing.TB, content string, ps ...v1.Platform) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, p := range ps {
		p := p
		adds = append(adds, mutate.IndexAddendum{
			Add:        testImage(t, p, content+" "+p.String()),
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
}

func newCache(t testing.TB) *Cache {
	t.Helper()
	c, err := Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func digestOf(t testing.TB, x interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// blobFiles lists the blob names present in the cache.
func blobFiles(t testing.TB, c *Cache) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(c.Root(), "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// tempFiles lists leftover temporary files in the cache root and in blobs/sha256.
func tempFiles(t testing.TB, c *Cache) []string {
	t.Helper()
	var out []string
	for _, pat := range []string{
		filepath.Join(c.Root(), atomicfile.Prefix+"*"),
		filepath.Join(c.Root(), legacyTmpPrefix+"*"),
		filepath.Join(c.Root(), "blobs", "sha256", atomicfile.Prefix+"*"),
	} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	return out
}

// readAllLayers reads every layer of img to the end through the cache's verifying reader.
func readAllLayers(img v1.Image) error {
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func refs(t testing.TB, c *Cache) []string {
	t.Helper()
	es, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Familiar)
	}
	return out
}
