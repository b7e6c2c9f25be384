package ocicache

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-os/kiln/internal/testenv"
)

// rootfsTar is a small root filesystem tar as mmdebstrap writes one: "./" names, directories,
// a symlink, files, the end-of-archive blocks and padding to a 10 KiB record.
func rootfsTar(t testing.TB, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(1700000000, 0)
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "./bin/", Mode: 0o755},
		{Typeflag: tar.TypeReg, Name: "./bin/sh", Mode: 0o755, Size: int64(len("#!sh\n"))},
		{Typeflag: tar.TypeDir, Name: "./etc/", Mode: 0o755},
		{Typeflag: tar.TypeReg, Name: "./etc/os-release", Mode: 0o644, Size: int64(len(content))},
		{Typeflag: tar.TypeSymlink, Name: "./sbin", Linkname: "bin", Mode: 0o777},
	} {
		h.ModTime = epoch
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		switch h.Name {
		case "./bin/sh":
			io.WriteString(tw, "#!sh\n")
		case "./etc/os-release":
			io.WriteString(tw, content)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if pad := buf.Len() % 10240; pad != 0 {
		buf.Write(make([]byte, 10240-pad))
	}
	return buf.Bytes()
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func importRootfs(t testing.TB, c *Cache, data []byte, ref string, p v1.Platform, opts ...RootfsOption) v1.Descriptor {
	t.Helper()
	d, err := c.ImportRootfs(bytes.NewReader(data), ref, p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestImportRootfsImage(t *testing.T) {
	data := rootfsTar(t, "ID=debian\n")
	c := newCache(t)
	when := time.Date(2024, 6, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	d := importRootfs(t, c, data, "kiln/debian:12", arm64, WithCreated(when))
	if d.MediaType != types.OCIImageIndex {
		t.Errorf("descriptor media type %s, want an OCI index", d.MediaType)
	}
	if got := refs(t, c); !reflect.DeepEqual(got, []string{"kiln/debian:12"}) {
		t.Errorf("refs %v", got)
	}
	img, md, err := c.Image("kiln/debian:12", &arm64)
	if err != nil {
		t.Fatal(err)
	}
	if md.MediaType != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s", md.MediaType)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	wantDiff := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if cf.OS != "linux" || cf.Architecture != "arm64" || cf.Variant != "v8" {
		t.Errorf("config platform %s/%s/%s", cf.OS, cf.Architecture, cf.Variant)
	}
	if !reflect.DeepEqual(cf.RootFS.DiffIDs, []v1.Hash{wantDiff}) || cf.RootFS.Type != "layers" {
		t.Errorf("rootfs %+v, want the sha256 of the tar %s", cf.RootFS, wantDiff)
	}
	if !cf.Created.Equal(when) || len(cf.History) != 1 || !cf.History[0].Created.Equal(when) {
		t.Errorf("created %v, history %+v, want %v", cf.Created, cf.History, when)
	}
	if !reflect.DeepEqual(cf.Config.Env, []string{"PATH=" + DefaultPath}) || !reflect.DeepEqual(cf.Config.Cmd, []string{"/bin/sh"}) {
		t.Errorf("config Env %q Cmd %q", cf.Config.Env, cf.Config.Cmd)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(`"created":"2024-06-01T10:00:00Z"`)) {
		t.Errorf("created is not stored in UTC: %s", raw)
	}
	ls, err := img.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("layers %v, %v", ls, err)
	}
	if mt, _ := ls[0].MediaType(); mt != types.OCILayer {
		t.Errorf("layer media type %s", mt)
	}
	// The layer is a gzip stream that stdlib decompresses to the tar, byte for byte.
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("layer holds %d bytes that differ from the %d-byte tar", len(got), len(data))
	}

	// GNU tar (or bsdtar) reads the stored layer.
	if tarBin, err := exec.LookPath("tar"); err == nil {
		out, err := exec.Command(tarBin, "-tzf", filepath.Join(c.Root(), "blobs", "sha256", digestOf(t, ls[0]).Hex)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "./etc/os-release") {
			t.Errorf("tar -tzf on the layer: %v\n%s", err, out)
		}
	} else {
		t.Log("no tar program; skipped reading the layer with it")
	}

	// go-containerregistry's layout package reads the cache and agrees.
	lp, err := layout.FromPath(c.Root())
	if err != nil {
		t.Fatal(err)
	}
	li, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	outer, err := li.ImageIndex(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	gi, err := outer.Image(md.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if gd, err := gi.Digest(); err != nil || gd != md.Digest {
		t.Errorf("layout reads digest %s (%v), want %s", gd, err, md.Digest)
	}
	gls, err := gi.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if diff, err := gls[0].DiffID(); err != nil || diff != wantDiff {
		t.Errorf("layout computes diff ID %s (%v), want %s", diff, err, wantDiff)
	}
}

func TestImportRootfsGolden(t *testing.T) {
	c := newCache(t)
	importRootfs(t, c, rootfsTar(t, "ID=golden\n"), "kiln/golden:1", amd64, WithCreated(time.Unix(1700000000, 0)))
	img, _, err := c.Image("kiln/golden:1", &amd64)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	config, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	got := append(append(append(manifest, '\n'), config...), '\n')
	golden := filepath.Join("testdata", "rootfs.golden.json")
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
		t.Errorf("manifest and config differ from %s (run with -update if the change is meant: it changes every seed's digest):\n%s", golden, got)
	}
}

func TestImportRootfsDeterministic(t *testing.T) {
	tars := map[string][]byte{}
	for _, p := range []v1.Platform{amd64, arm64, s390x} {
		tars[p.String()] = rootfsTar(t, "ID=debian "+p.String()+"\n")
	}
	opts := []RootfsOption{WithCreated(time.Unix(1700000000, 0))}

	// The same tar, ref, platform and time in two caches.
	a, b := newCache(t), newCache(t)
	da := importRootfs(t, a, tars["linux/amd64"], "kiln/base:1", amd64, opts...)
	db := importRootfs(t, b, tars["linux/amd64"], "kiln/base:1", amd64, opts...)
	if !reflect.DeepEqual(da, db) {
		t.Errorf("two imports differ: %+v and %+v", da, db)
	}
	if !reflect.DeepEqual(blobFiles(t, a), blobFiles(t, b)) {
		t.Errorf("blobs differ: %v and %v", blobFiles(t, a), blobFiles(t, b))
	}
	// gzip input is decompressed: the same image.
	dz := importRootfs(t, newCache(t), gzipped(t, tars["linux/amd64"]), "kiln/base:1", amd64, opts...)
	if !reflect.DeepEqual(da, dz) {
		t.Errorf("gzip input gave %+v, plain %+v", dz, da)
	}
	// Another time gives another image.
	if d := importRootfs(t, newCache(t), tars["linux/amd64"], "kiln/base:1", amd64); d.Digest == da.Digest {
		t.Error("the creation time does not change the digest")
	}

	// A three-platform index does not depend on the order of the imports.
	orders := [][]v1.Platform{{amd64, arm64, s390x}, {s390x, amd64, arm64}, {arm64, s390x, amd64}}
	var first v1.Descriptor
	for i, order := range orders {
		c := newCache(t)
		var d v1.Descriptor
		for _, p := range order {
			d = importRootfs(t, c, tars[p.String()], "kiln/base:1", p, opts...)
		}
		if i == 0 {
			first = d
			es := mustList(t, c)
			if len(es) != 1 || !reflect.DeepEqual(es[0].Platforms, []string{"linux/amd64", "linux/arm64/v8", "linux/s390x"}) {
				t.Errorf("List = %+v", es)
			}
			continue
		}
		if !reflect.DeepEqual(d, first) {
			t.Errorf("order %v gave %s, order %v gave %s", order, d.Digest, orders[0], first.Digest)
		}
	}
}

func TestImportRootfsReplacesPlatform(t *testing.T) {
	c := newCache(t)
	importRootfs(t, c, rootfsTar(t, "old amd64"), "kiln/base:1", amd64)
	importRootfs(t, c, rootfsTar(t, "arm64"), "kiln/base:1", arm64)
	_, oldAMD, err := c.Image("kiln/base:1", &amd64)
	if err != nil {
		t.Fatal(err)
	}
	_, oldARM, err := c.Image("kiln/base:1", &arm64)
	if err != nil {
		t.Fatal(err)
	}
	// linux/arm64 without a variant is the same platform as linux/arm64/v8.
	arm64NoVariant := v1.Platform{OS: "linux", Architecture: "arm64"}
	importRootfs(t, c, rootfsTar(t, "new arm64"), "kiln/base:1", arm64NoVariant)
	importRootfs(t, c, rootfsTar(t, "new amd64"), "kiln/base:1", amd64)

	idx, err := c.Index("kiln/base:1")
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var ps []string
	for _, m := range im.Manifests {
		ps = append(ps, m.Platform.String())
		if m.Digest == oldAMD.Digest || m.Digest == oldARM.Digest {
			t.Errorf("the old %s image is still in the index", m.Platform)
		}
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !reflect.DeepEqual(ps, want) {
		t.Errorf("index platforms %v, want %v", ps, want)
	}
	// The replaced images' blobs go with the next garbage collection.
	if _, err := c.Clean(false); err != nil {
		t.Fatal(err)
	}
	if c.HasBlob(oldAMD.Digest) || c.HasBlob(oldARM.Digest) {
		t.Error("replaced manifests survived Clean")
	}
}

func TestImportRootfsOptions(t *testing.T) {
	c := newCache(t)
	importRootfs(t, c, rootfsTar(t, "x"), "kiln/opts:1", s390x, WithImageConfig(func(cfg *v1.Config) {
		cfg.Cmd = []string{"/bin/bash", "-l"}
		cfg.Env = append(cfg.Env, "LANG=C.UTF-8")
		cfg.Labels = map[string]string{"b": "2", "a": "1"}
	}))
	img, _, err := c.Image("kiln/opts:1", &s390x)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cf.Config.Cmd, []string{"/bin/bash", "-l"}) ||
		!reflect.DeepEqual(cf.Config.Env, []string{"PATH=" + DefaultPath, "LANG=C.UTF-8"}) ||
		cf.Config.Labels["a"] != "1" {
		t.Errorf("config %+v", cf.Config)
	}
	if !cf.Created.Equal(time.Unix(0, 0)) {
		t.Errorf("default created %v, want the Unix epoch", cf.Created)
	}
}

func TestImportRootfsErrors(t *testing.T) {
	good := rootfsTar(t, "ID=debian\n")
	body := bytes.LastIndex(good, []byte("ID=debian\n")) // a file's body, then padding to 512
	withoutTrailer := good[:body+512]                    // ends after that file's block
	tests := []struct {
		name   string
		data   []byte
		ref    string
		p      v1.Platform
		errHas string
	}{
		{"zstd", append([]byte{0x28, 0xb5, 0x2f, 0xfd}, good...), "kiln/x:1", amd64, "zstd-compressed, not an uncompressed tar; decompress it first"},
		{"xz", append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, good...), "kiln/x:1", amd64, "xz-compressed"},
		{"random bytes", bytes.Repeat([]byte("not a tar at all "), 100), "kiln/x:1", amd64, "not an uncompressed tar"},
		{"empty input", nil, "kiln/x:1", amd64, "holds no files"},
		{"gzip of something else", gzipped(t, bytes.Repeat([]byte("hello "), 200)), "kiln/x:1", amd64, "gzip-compressed but what it holds is not a tar"},
		{"truncated gzip", gzipped(t, good)[:100], "kiln/x:1", amd64, "unexpected EOF"},
		{"cut inside a file", good[:body+5], "kiln/x:1", amd64, "damaged or truncated"},
		{"cut in a file's padding", good[:body+100], "kiln/x:1", amd64, "without the end-of-archive blocks"},
		{"cut between entries", withoutTrailer, "kiln/x:1", amd64, "without the end-of-archive blocks"},
		{"data after the end", append(append([]byte{}, good...), []byte("garbage")...), "kiln/x:1", amd64, "data after the end"},
		{"digest reference", good, "kiln/x@sha256:" + strings.Repeat("a", 64), amd64, "give a tag, not a digest"},
		{"no architecture", good, "kiln/x:1", v1.Platform{OS: "linux"}, "needs an OS and an architecture"},
		{"bad reference", good, "Kiln/X:1", amd64, "image reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t)
			d, err := c.ImportRootfs(bytes.NewReader(tt.data), tt.ref, tt.p)
			if err == nil {
				t.Fatalf("import succeeded: %+v", d)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("err = %v, want it to contain %q", err, tt.errHas)
			}
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

func TestImportRootfsOverImage(t *testing.T) {
	c := newCache(t)
	d, err := c.WriteImage("kiln/single:1", testImage(t, amd64, "single"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ImportRootfs(bytes.NewReader(rootfsTar(t, "x")), "kiln/single:1", arm64)
	if err == nil || !strings.Contains(err.Error(), "names a single image") {
		t.Fatalf("err = %v, want a single-image error", err)
	}
	got, err := c.Resolve("kiln/single:1")
	if err != nil || got.Digest != d.Digest {
		t.Errorf("kiln/single:1 now names %s (%v), want %s", got.Digest, err, d.Digest)
	}
	// The same name in the canonical form is the same entry.
	r, _ := name.ParseReference("kiln/single:1")
	if _, err := c.ImportRootfs(bytes.NewReader(rootfsTar(t, "x")), r.Name(), arm64); err == nil {
		t.Error("the canonical name was not recognised")
	}
	if _, err := c.ImportRootfs(bytes.NewReader(rootfsTar(t, "x")), "kiln/single:2", arm64); err != nil {
		t.Errorf("another name: %v", err)
	}
}

// TestImportRootfsLarge streams a tar of several gzip blocks (archive.GzipBlockSize is 1 MiB).
func TestImportRootfsLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	content := make([]byte, 5<<20+123)
	for i := range content {
		content[i] = byte(rng.IntN(16)) // compressible, not trivially
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "./big", Mode: 0o644, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	tw.Write(content)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	a, b := newCache(t), newCache(t)
	// A reader that returns odd-sized pieces, as a pipe would.
	da, err := a.ImportRootfs(iotest.HalfReader(bytes.NewReader(data)), "kiln/big:1", amd64)
	if err != nil {
		t.Fatal(err)
	}
	db := importRootfs(t, b, data, "kiln/big:1", amd64)
	if !reflect.DeepEqual(da, db) {
		t.Errorf("two imports differ: %s and %s", da.Digest, db.Digest)
	}
	img, _, err := a.Image("kiln/big:1", &amd64)
	if err != nil {
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
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("the layer decompresses to %d bytes that differ from the %d-byte tar", len(got), len(data))
	}
}

// TestImportRootfsFromTarProgram imports what the host's tar program writes (as mmdebstrap
// does, with record padding), plain and gzip-compressed by tar itself.
func TestImportRootfsFromTarProgram(t *testing.T) {
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		testenv.SkipOrFail(t, "no tar program on PATH (apt-get install tar): %v", err)
	}
	tree := t.TempDir()
	for name, body := range map[string]string{"etc/os-release": "ID=debian\n", "usr/bin/true": "#!/bin/sh\n"} {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/bin", filepath.Join(tree, "bin")); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(t.TempDir(), "rootfs.tar")
	gz := filepath.Join(t.TempDir(), "rootfs.tar.gz")
	for _, args := range [][]string{{"-cf", plain}, {"-czf", gz}} {
		cmd := exec.Command(tarBin, append(args, "-C", tree, ".")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
	}
	var ds []v1.Descriptor
	for _, file := range []string{plain, gz} {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		d, err := newCache(t).ImportRootfs(f, "kiln/tar:1", amd64)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(file), err)
		}
		ds = append(ds, d)
	}
	if !reflect.DeepEqual(ds[0], ds[1]) {
		t.Errorf("the tar and its gzip gave different images: %s, %s", ds[0].Digest, ds[1].Digest)
	}
}

// TestImportRootfsConcurrent imports two platforms under one name at once: both must land.
func TestImportRootfsConcurrent(t *testing.T) {
	c := newCache(t)
	ps := []v1.Platform{amd64, s390x}
	errs := make(chan error, len(ps))
	for _, p := range ps {
		data := rootfsTar(t, p.String())
		go func() {
			_, err := c.ImportRootfs(bytes.NewReader(data), "kiln/both:1", p)
			errs <- err
		}()
	}
	for range ps {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	es := mustList(t, c)
	if len(es) != 1 || !reflect.DeepEqual(es[0].Platforms, []string{"linux/amd64", "linux/s390x"}) {
		t.Errorf("List = %+v", es)
	}
}
