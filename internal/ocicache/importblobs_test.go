package ocicache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-os/kiln/internal/testenv"
)

// stripMediaTypes removes the mediaType of every index.json entry, as some writers leave it out.
func stripMediaTypes(t *testing.T, ms []member) []member {
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
			im.Manifests[j].MediaType = ""
		}
		b, err := json.Marshal(im)
		if err != nil {
			t.Fatal(err)
		}
		out[i].data = b
	}
	return out
}

func TestImportBlobsRoundTrip(t *testing.T) {
	src := newCache(t)
	imgDesc, err := src.WriteImage("kiln/img:1", testImage(t, amd64, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	idxDesc, err := src.WriteIndex("kiln/multi:1", testIndex(t, "blobs", amd64, s390x))
	if err != nil {
		t.Fatal(err)
	}
	tarball := export(t, src, "kiln/img:1", "kiln/multi:1")

	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"as exported", tarball},
		{"entries without media types", writeMembers(t, stripMediaTypes(t, readMembers(t, tarball)))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t)
			got, err := c.ImportBlobs(bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if r := refs(t, c); len(r) != 0 {
				t.Errorf("ImportBlobs named %v", r)
			}
			if !reflect.DeepEqual(blobFiles(t, c), blobFiles(t, src)) {
				t.Errorf("blobs %v, want the source's %v", blobFiles(t, c), blobFiles(t, src))
			}
			// ExportOCI sorts its index.json by name: img before multi.
			want := []v1.Descriptor{imgDesc, idxDesc}
			names := []string{"kiln/img:1", "kiln/multi:1"}
			if len(got) != len(want) {
				t.Fatalf("got %d descriptors, want %d: %+v", len(got), len(want), got)
			}
			for i, d := range got {
				if d.Digest != want[i].Digest || d.Size != want[i].Size || d.MediaType != want[i].MediaType {
					t.Errorf("descriptor %d = %s %d %s, want %s %d %s", i, d.Digest, d.Size, d.MediaType,
						want[i].Digest, want[i].Size, want[i].MediaType)
				}
				if Familiar(d.Annotations[AnnotationRefName]) != names[i] || Familiar(d.Annotations[AnnotationContainerdName]) != names[i] {
					t.Errorf("descriptor %d annotations %v, want both names %s", i, d.Annotations, names[i])
				}
			}
			if tmp := tempFiles(t, c); len(tmp) != 0 {
				t.Errorf("temp files left: %v", tmp)
			}
			// The blobs are complete: name them and read every layer.
			if err := c.Tag("kiln/named:1", got[1]); err != nil {
				t.Fatal(err)
			}
			for _, p := range []v1.Platform{amd64, s390x} {
				img, _, err := c.Image("kiln/named:1", &p)
				if err != nil {
					t.Fatal(err)
				}
				if err := readAllLayers(img); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestImportBlobsMultiArch is the package builder's use: one image per platform, each from
// its own tar, then an index written by the caller and named with Tag.
func TestImportBlobsMultiArch(t *testing.T) {
	c := newCache(t)
	release, err := c.Hold()
	if err != nil {
		t.Fatal(err)
	}
	var children []v1.Descriptor
	for _, p := range []v1.Platform{amd64, arm64} {
		src := newCache(t)
		if _, err := src.WriteImage("kiln/pkg:build", testImage(t, p, "pkg")); err != nil {
			t.Fatal(err)
		}
		ds, err := c.ImportBlobs(bytes.NewReader(export(t, src)))
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 {
			t.Fatalf("got %d descriptors, want 1", len(ds))
		}
		d := v1.Descriptor{MediaType: ds[0].MediaType, Size: ds[0].Size, Digest: ds[0].Digest, Platform: &p}
		children = append(children, d)
	}
	// Garbage collection started now must wait for release, even though nothing names the
	// blobs yet.
	cleaned := make(chan error, 1)
	go func() { _, err := c.Clean(false); cleaned <- err }()
	waitForBlockedLock(t, filepath.Join(c.Root(), gcLockFile), cleaned)
	raw, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: children})
	if err != nil {
		t.Fatal(err)
	}
	h, n, err := c.WriteBlob(bytes.NewReader(raw), v1.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Tag("kiln/pkg:1", v1.Descriptor{MediaType: types.OCIImageIndex, Size: n, Digest: h}); err != nil {
		t.Fatal(err)
	}
	release()
	if err := <-cleaned; err != nil {
		t.Fatal(err)
	}
	for _, p := range []v1.Platform{amd64, arm64} {
		img, _, err := c.Image("kiln/pkg:1", &p)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != p.Architecture {
			t.Errorf("%s: config says %s", p, cf.Architecture)
		}
		if err := readAllLayers(img); err != nil {
			t.Fatal(err)
		}
	}
}

func TestImportBlobsErrorsStoreNothing(t *testing.T) {
	src := newCache(t)
	d, err := src.WriteImage("kiln/v:1", testImage(t, amd64, "broken"))
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := src.readManifest(d)
	if err != nil {
		t.Fatal(err)
	}
	layer, config := m.Layers[0].Digest, m.Config.Digest
	full := export(t, src, "kiln/v:1")
	base := readMembers(t, full)
	edit := func(h v1.Hash, f func([]byte) []byte) []byte {
		out := append([]member{}, base...)
		for i := range out {
			if strings.HasSuffix(out[i].name, h.Hex) {
				out[i].data = f(append([]byte{}, out[i].data...))
			}
		}
		return writeMembers(t, out)
	}
	drop := func(h v1.Hash) []byte {
		var out []member
		for _, m := range base {
			if !strings.HasSuffix(m.name, h.Hex) {
				out = append(out, m)
			}
		}
		return writeMembers(t, out)
	}

	tests := []struct {
		name   string
		data   []byte
		errIs  error
		errHas string
	}{
		{"tar cut inside a blob", full[:len(full)/2], nil, "truncated inside member"},
		{"tar cut inside a header", full[:1024+100], nil, "truncated"},
		{"layer content does not match its name", edit(layer, func(b []byte) []byte { b[10] ^= 1; return b }), ErrCorrupt, layer.String()},
		{"config content does not match its name", edit(config, func(b []byte) []byte { b[2] ^= 1; return b }), ErrCorrupt, config.String()},
		{"missing layer", drop(layer), ErrNotFound, layer.String()},
		{"missing config", drop(config), ErrNotFound, config.String()},
		{"missing manifest", drop(d.Digest), ErrNotFound, d.Digest.String()},
		{"not a layout", tarBytes(t, map[string]string{"etc/hostname": "x"}), nil, "no index.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t)
			if _, err := c.WriteImage("kiln/other:1", testImage(t, amd64, "other")); err != nil {
				t.Fatal(err)
			}
			refsBefore, blobsBefore := refs(t, c), blobFiles(t, c)
			got, err := c.ImportBlobs(bytes.NewReader(tt.data))
			if err == nil {
				t.Fatalf("ImportBlobs succeeded: %+v", got)
			}
			if tt.errIs != nil && !errors.Is(err, tt.errIs) {
				t.Errorf("err = %v, want %v", err, tt.errIs)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("err = %v, want it to contain %q", err, tt.errHas)
			}
			if r := refs(t, c); !reflect.DeepEqual(r, refsBefore) {
				t.Errorf("refs %v after a failed import, want %v", r, refsBefore)
			}
			if b := blobFiles(t, c); !reflect.DeepEqual(b, blobsBefore) {
				t.Errorf("blobs %v after a failed import, want %v", b, blobsBefore)
			}
			if tmp := tempFiles(t, c); len(tmp) != 0 {
				t.Errorf("temp files after a failed import: %v", tmp)
			}
		})
	}
}

// waitForBlockedLock waits until some process or goroutine is blocked taking a flock on path,
// as /proc/locks shows it ("->" lines name the inode as major:minor:inode). It fails at once
// if the operation that should block reports on done instead.
func waitForBlockedLock(t *testing.T, path string, done <-chan error) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	ino := fmt.Sprintf(":%d ", fi.Sys().(*syscall.Stat_t).Ino)
	for range 10000 {
		select {
		case err := <-done:
			t.Fatalf("the operation did not wait for the lock on %s (err %v)", path, err)
		default:
		}
		b, err := os.ReadFile("/proc/locks")
		if err != nil {
			testenv.SkipOrFail(t, "cannot see lock waiters in /proc/locks (mount procfs at /proc): %v", err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "-> FLOCK") && strings.Contains(l, ino) {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("nobody waited for the lock on %s", path)
}
