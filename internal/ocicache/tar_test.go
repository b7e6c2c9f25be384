package ocicache

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// member is one tar entry, for taking exported tars apart and rebuilding them differently.
type member struct {
	name string
	typ  byte
	data []byte
}

func readMembers(t *testing.T, b []byte) []member {
	t.Helper()
	var out []member
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, member{h.Name, h.Typeflag, data})
	}
}

func writeMembers(t *testing.T, ms []member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range ms {
		h := &tar.Header{Name: m.name, Typeflag: m.typ, Mode: 0o644, Size: int64(len(m.data))}
		if m.typ == tar.TypeDir {
			h.Size, h.Mode = 0, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func export(t *testing.T, c *Cache, refs ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := c.ExportOCI(&buf, refs...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExportImportRoundTrip(t *testing.T) {
	a := newCache(t)
	if _, err := a.WriteImage("kiln/img:1", testImage(t, amd64, "img")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteIndex("kiln/multi:1", testIndex(t, "multi", amd64, arm64, s390x)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteImage("kiln/not-exported:1", testImage(t, amd64, "other")); err != nil {
		t.Fatal(err)
	}
	first := export(t, a, "kiln/multi:1", "kiln/img:1")
	if again := export(t, a, "kiln/img:1", "kiln/multi:1"); !bytes.Equal(first, again) {
		t.Fatal("two exports of the same refs differ")
	}

	// Layout: sorted names, fixed times, no owners.
	var names []string
	tr := tar.NewReader(bytes.NewReader(first))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v uid %d gid %d %q %q", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		names = append(names, h.Name)
	}
	if !sort.StringsAreSorted(names) || names[0] != "blobs/" || names[len(names)-1] != "oci-layout" {
		t.Errorf("member order: %v", names)
	}

	b := newCache(t)
	got, err := b.Import(bytes.NewReader(first))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"kiln/img:1", "kiln/multi:1"}; !reflect.DeepEqual(familiars(got), want) {
		t.Fatalf("imported %v, want %v", got, want)
	}
	second := export(t, b, "kiln/img:1", "kiln/multi:1")
	if !bytes.Equal(first, second) {
		t.Fatal("export after import differs from the original export")
	}
	if _, _, err := b.Image("kiln/multi:1", &s390x); err != nil {
		t.Fatal(err)
	}

	// Another tool reads the exported tar once unpacked.
	dir := t.TempDir()
	for _, m := range readMembers(t, first) {
		p := filepath.Join(dir, m.name)
		if m.typ == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, m.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 2 {
		t.Fatalf("layout index: %v, %v", im, err)
	}
	for _, d := range im.Manifests {
		if !strings.HasSuffix(d.Annotations[AnnotationRefName], "kiln/img:1") && !strings.HasSuffix(d.Annotations[AnnotationRefName], "kiln/multi:1") {
			t.Errorf("unexpected entry %v", d.Annotations)
		}
		if d.MediaType.IsImage() {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if err := readAllLayers(img); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestExportTime(t *testing.T) {
	when := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	c, err := Open(t.TempDir(), WithExportTime(when))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteImage("kiln/img:1", testImage(t, amd64, "img")); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(export(t, c)))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(when) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, when)
		}
	}
}

func familiars(refs []string) []string {
	var out []string
	for _, r := range refs {
		out = append(out, Familiar(r))
	}
	return out
}

// setAnnotations rewrites the annotations of every entry of an exported index.json.
func setAnnotations(t *testing.T, ms []member, ann map[string]string) []member {
	t.Helper()
	out := append([]member{}, ms...)
	for i, m := range out {
		if m.name != "index.json" {
			continue
		}
		var im v1.IndexManifest
		if err := json.Unmarshal(m.data, &im); err != nil {
			t.Fatal(err)
		}
		for j := range im.Manifests {
			im.Manifests[j].Annotations = ann
		}
		b, err := json.Marshal(im)
		if err != nil {
			t.Fatal(err)
		}
		out[i].data = b
	}
	return out
}

func TestImportVariants(t *testing.T) {
	src := newCache(t)
	img := testImage(t, amd64, "variants")
	d, err := src.WriteImage("kiln/v:1", img)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	layerDigest := digestOf(t, ls[0])
	base := readMembers(t, export(t, src, "kiln/v:1"))

	reorder := func(ms []member) []member { // index.json and oci-layout first, blobs reversed
		var out []member
		for i := len(ms) - 1; i >= 0; i-- {
			out = append(out, ms[i])
		}
		return out
	}
	dotSlash := func(ms []member) []member {
		out := append([]member{}, ms...)
		for i := range out {
			out[i].name = "./" + out[i].name
		}
		return out
	}
	noDirs := func(ms []member) []member {
		var out []member
		for _, m := range ms {
			if m.typ != tar.TypeDir {
				out = append(out, m)
			}
		}
		return out
	}
	edit := func(ms []member, h v1.Hash, f func([]byte) []byte) []member {
		out := append([]member{}, ms...)
		for i := range out {
			if strings.HasSuffix(out[i].name, h.Hex) {
				out[i].data = f(append([]byte{}, out[i].data...))
			}
		}
		return out
	}
	drop := func(ms []member, h v1.Hash) []member {
		var out []member
		for _, m := range ms {
			if !strings.HasSuffix(m.name, h.Hex) {
				out = append(out, m)
			}
		}
		return out
	}

	tests := []struct {
		name    string
		members []member
		opts    []ImportOption
		want    []string
		errIs   error
		errHas  string
	}{
		{"as exported", base, nil, []string{"kiln/v:1"}, nil, ""},
		{"index.json first", reorder(base), nil, []string{"kiln/v:1"}, nil, ""},
		{"dot-slash names, no dirs", dotSlash(noDirs(base)), nil, []string{"kiln/v:1"}, nil, ""},
		{"override name", base, []ImportOption{WithName("kiln/renamed:7")}, []string{"kiln/renamed:7"}, nil, ""},
		{"tag-only ref.name plus repository", setAnnotations(t, base, map[string]string{AnnotationRefName: "v2"}),
			[]ImportOption{WithName("kiln/tagged")}, []string{"kiln/tagged:v2"}, nil, ""},
		{"full ref.name", setAnnotations(t, base, map[string]string{AnnotationRefName: "kiln/full:3"}), nil, []string{"kiln/full:3"}, nil, ""},
		{"containerd name wins", setAnnotations(t, base, map[string]string{AnnotationRefName: "v9", AnnotationContainerdName: "kiln/ctr:9"}),
			nil, []string{"kiln/ctr:9"}, nil, ""},
		{"tag-only without name", setAnnotations(t, base, map[string]string{AnnotationRefName: "v2"}), nil, nil, nil, "only by the tag"},
		{"no name", setAnnotations(t, base, nil), nil, nil, nil, "has no name"},
		{"corrupt layer", edit(base, layerDigest, func(b []byte) []byte { b[10] ^= 1; return b }), nil, nil, ErrCorrupt, layerDigest.String()},
		{"truncated layer", edit(base, layerDigest, func(b []byte) []byte { return b[:5] }), nil, nil, ErrCorrupt, layerDigest.String()},
		{"missing layer", drop(base, layerDigest), nil, nil, ErrNotFound, layerDigest.String()},
		{"missing manifest", drop(base, d.Digest), nil, nil, ErrNotFound, d.Digest.String()},
		{"no index.json", base[:len(base)-2], nil, nil, nil, "no index.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t)
			got, err := c.Import(bytes.NewReader(writeMembers(t, tt.members)), tt.opts...)
			if tt.want != nil {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(familiars(got), tt.want) {
					t.Fatalf("imported %v, want %v", familiars(got), tt.want)
				}
				gi, _, err := c.Image(got[0], &amd64)
				if err != nil {
					t.Fatal(err)
				}
				if err := readAllLayers(gi); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("import succeeded: %v", got)
			}
			if tt.errIs != nil && !errors.Is(err, tt.errIs) {
				t.Errorf("err = %v, want %v", err, tt.errIs)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("err = %v, want it to contain %q", err, tt.errHas)
			}
			// Nothing was added.
			if r := refs(t, c); len(r) != 0 {
				t.Errorf("refs after a failed import: %v", r)
			}
			if b := blobFiles(t, c); len(b) != 0 {
				t.Errorf("blobs after a failed import: %v", b)
			}
			if tmp := tempFiles(t, c); len(tmp) != 0 {
				t.Errorf("temp files after a failed import: %v", tmp)
			}
		})
	}
}
