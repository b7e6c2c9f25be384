package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-os/kiln/internal/ocicache"
)

// runCapture runs kiln with args and returns the exit code, standard output and standard error.
func runCapture(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	saved := os.Stdout
	os.Stdout = out
	var stderr bytes.Buffer
	code := run(context.Background(), args, &stderr)
	os.Stdout = saved
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	return code, string(b), stderr.String()
}

func writeRootfsTar(t *testing.T, path string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755},
		{Typeflag: tar.TypeReg, Name: "./etc/os-release", Mode: 0o644, Size: 10},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Write([]byte("ID=debian\n"))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCacheImportRootfs(t *testing.T) {
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs.tar")
	writeRootfsTar(t, rootfs)
	cacheDir := filepath.Join(dir, "cache")
	t.Setenv("KILN_CACHE", cacheDir)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")

	usage := []struct {
		args []string
		want string
	}{
		{[]string{"cache", "import", "-rootfs", "-platform", "linux/arm64", rootfs}, "-rootfs needs -name REF"},
		{[]string{"cache", "import", "-rootfs", "-name", "kiln/base:1", rootfs}, "-rootfs needs -platform"},
		{[]string{"cache", "import", "-rootfs", "-name", "kiln/base:1", "-platform", "arm64", rootfs}, `-platform "arm64": expected OS/ARCH`},
		{[]string{"cache", "import", "-rootfs", "-name", "kiln/base:1", "-platform", "linux/arm64", "-created", "yesterday", rootfs}, `-created "yesterday"`},
		{[]string{"cache", "import", "-platform", "linux/arm64", rootfs}, "only with -rootfs"},
		{[]string{"cache", "import", "-rootfs", "-name", "kiln/base:1", "-platform", "linux/arm64"}, "give exactly one tar file"},
	}
	for _, tc := range usage {
		t.Run(tc.want, func(t *testing.T) {
			code, _, stderr := runCapture(t, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.want)
			}
		})
	}

	// A file that is not a tar is an error of the run, not of the usage.
	notTar := filepath.Join(dir, "random.bin")
	if err := os.WriteFile(notTar, bytes.Repeat([]byte("random "), 200), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCapture(t, "cache", "import", "-rootfs", "-name", "kiln/base:1", "-platform", "linux/arm64", notTar)
	if code != 1 || !strings.Contains(stderr, "not an uncompressed tar") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}

	// SOURCE_DATE_EPOCH is the default creation time: both imports give one image.
	code, out1, stderr := runCapture(t, "cache", "import", "-rootfs", "-name", "kiln/base:1", "-platform", "linux/arm64", rootfs)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	code, out2, stderr := runCapture(t, "cache", "import", "-rootfs", "-name", "kiln/base:1", "-platform", "linux/arm64", "-created", "1700000000", rootfs)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	c, err := ocicache.Open(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Resolve("kiln/base:1")
	if err != nil {
		t.Fatal(err)
	}
	want := "kiln/base:1 " + d.Digest.String() + "\n"
	if out1 != want || out2 != want {
		t.Errorf("outputs %q and %q, want %q twice", out1, out2, want)
	}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
	img, _, err := c.Image("kiln/base:1", &arm64)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Created.Unix() != 1700000000 {
		t.Errorf("created %v, want SOURCE_DATE_EPOCH", cf.Created)
	}

	// A second platform from standard input joins the index.
	f, err := os.Open(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stdin
	os.Stdin = f
	code, _, stderr = runCapture(t, "cache", "import", "-rootfs", "-name", "kiln/base:1", "-platform", "linux/amd64", "-")
	os.Stdin = saved
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	code, ls, stderr := runCapture(t, "cache", "ls")
	if code != 0 || !strings.Contains(ls, "linux/amd64,linux/arm64") {
		t.Errorf("cache ls: exit %d, %q, %q", code, ls, stderr)
	}
}

// runCaptureAll is runCapture with what commands print on os.Stderr added to the error text.
func runCaptureAll(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stderr
	os.Stderr = f
	code, out, errText := runCapture(t, args...)
	os.Stderr = saved
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return code, out, string(b) + errText
}

// TestCacheDeletedIndex: with index.json gone, ls and clean stop with a way out instead of
// starting an empty index (after which clean deleted every blob); repair brings the image back.
func TestCacheDeletedIndex(t *testing.T) {
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs.tar")
	writeRootfsTar(t, rootfs)
	cacheDir := filepath.Join(dir, "cache")
	t.Setenv("KILN_CACHE", cacheDir)
	if code, _, stderr := runCaptureAll(t, "cache", "import", "-rootfs", "-name", "kiln/base:1", "-platform", "linux/arm64", rootfs); code != 0 {
		t.Fatalf("import: %s", stderr)
	}
	blobs, _ := os.ReadDir(filepath.Join(cacheDir, "blobs", "sha256"))
	if err := os.Remove(filepath.Join(cacheDir, "index.json")); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"cache", "ls"}, {"cache", "clean"}, {"cache", "export", "-o", filepath.Join(dir, "x.tar"), "kiln/base:1"}} {
		code, _, stderr := runCaptureAll(t, args...)
		if code != 1 || !strings.Contains(stderr, "index.json is missing") || !strings.Contains(stderr, "kiln cache repair") {
			t.Errorf("%v: exit %d, %q; want 1 and a way out", args, code, stderr)
		}
	}
	if after, _ := os.ReadDir(filepath.Join(cacheDir, "blobs", "sha256")); len(after) != len(blobs) {
		t.Fatalf("%d blobs left of %d", len(after), len(blobs))
	}
	if _, err := os.Stat(filepath.Join(cacheDir, "index.json")); err == nil {
		t.Error("an empty index.json was written")
	}
	code, _, stderr := runCaptureAll(t, "cache", "repair")
	if code != 0 || !strings.Contains(stderr, "recovered "+ocicache.RecoveredRepo+"@sha256:") || !strings.Contains(stderr, "1 entry") {
		t.Fatalf("repair: exit %d, %q", code, stderr)
	}
	code, out, stderr := runCaptureAll(t, "cache", "ls")
	if code != 0 || !strings.Contains(out, ocicache.RecoveredRepo) || !strings.Contains(out, "linux/arm64") {
		t.Errorf("ls after repair: exit %d, %q %q", code, out, stderr)
	}
	if code, _, stderr := runCaptureAll(t, "cache", "repair"); code != 0 || !strings.Contains(stderr, "intact") {
		t.Errorf("repair again: exit %d, %q", code, stderr)
	}
}

// TestCacheCleanReportsTemps: clean removes temporary files whose writer died and says so.
func TestCacheCleanReportsTemps(t *testing.T) {
	cacheDir := filepath.Join(t.TempDir(), "cache")
	t.Setenv("KILN_CACHE", cacheDir)
	if code, _, stderr := runCaptureAll(t, "cache", "ls"); code != 0 {
		t.Fatal(stderr)
	}
	for _, p := range []string{
		filepath.Join(cacheDir, ".kiln-tmp-index.json-1"),
		filepath.Join(cacheDir, "blobs", "sha256", ".kiln-tmp-blob-2"),
	} {
		if err := os.WriteFile(p, make([]byte, 1024), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr := runCaptureAll(t, "cache", "clean")
	if code != 0 || !strings.Contains(stderr, "removed 2 stale temporary files (2.0 KiB) and 0 unused blobs") {
		t.Errorf("exit %d, %q", code, stderr)
	}
}

func TestInsecureRegistryFlag(t *testing.T) {
	t.Setenv("KILN_CACHE", filepath.Join(t.TempDir(), "cache"))
	code, _, stderr := runCaptureAll(t, "cache", "pull", "-insecure-registry", "http://10.0.0.1:5000", "10.0.0.1:5000/kiln/a:1")
	if code != 2 || !strings.Contains(stderr, "give no scheme") {
		t.Errorf("bad flag: exit %d, %q", code, stderr)
	}
	t.Setenv(ocicache.EnvInsecureRegistries, "registry.lan/path")
	code, _, stderr = runCaptureAll(t, "cache", "push", "kiln/a:1")
	if code != 1 || !strings.Contains(stderr, ocicache.EnvInsecureRegistries) || !strings.Contains(stderr, "give no path") {
		t.Errorf("bad environment: exit %d, %q", code, stderr)
	}
}

// corruptLayerCache stores an image with one layer of media type mt (content as given) and
// returns the cache folder and the layer's digest.
func corruptLayerCache(t *testing.T, mt types.MediaType, content []byte) (string, v1.Hash) {
	t.Helper()
	cacheDir := filepath.Join(t.TempDir(), "cache")
	c, err := ocicache.Open(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	l := static.NewLayer(content, mt)
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), l)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteImage("kiln/broken:1", img); err != nil {
		t.Fatal(err)
	}
	h, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return cacheDir, h
}

func layerTar(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range 40 {
		body := strings.Repeat(fmt.Sprintf("file %d of the layer; ", i), 50+i)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("f%02d", i), Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCacheExportCorruptLayer: a byte flipped inside a layer used to show as "archive/tar:
// invalid tar header" with no digest; the error must name the blob, say it is corrupt, and
// say how to recover.
func TestCacheExportCorruptLayer(t *testing.T) {
	plain := layerTar(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	cases := []struct {
		name string
		mt   types.MediaType
		data []byte
		at   []int
	}{
		// The second header's checksum breaks: the tar reader stops before the blob's end.
		{"uncompressed", types.OCIUncompressedLayer, plain, []int{512 + 1100 + 3}},
		{"gzip", types.OCILayer, gz.Bytes(), []int{5, 40, len(gz.Bytes()) / 3, len(gz.Bytes()) / 2, len(gz.Bytes()) - 5}},
	}
	for _, tc := range cases {
		for _, at := range tc.at {
			t.Run(fmt.Sprintf("%s/%d", tc.name, at), func(t *testing.T) {
				cacheDir, h := corruptLayerCache(t, tc.mt, tc.data)
				t.Setenv("KILN_CACHE", cacheDir)
				out := filepath.Join(t.TempDir(), "fs.tar")
				if code, _, stderr := runCapture(t, "cache", "export", "-format", "filesystem", "-arch", "amd64", "-o", out, "kiln/broken:1"); code != 0 {
					t.Fatalf("intact layer: exit %d: %s", code, stderr)
				}
				p := filepath.Join(cacheDir, "blobs", "sha256", h.Hex)
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b[at] ^= 0x55
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				code, _, stderr := runCapture(t, "cache", "export", "-format", "filesystem", "-arch", "amd64", "-o", out, "kiln/broken:1")
				if code != 1 || !strings.Contains(stderr, h.String()) || !strings.Contains(stderr, "corrupt") || !strings.Contains(stderr, "kiln cache rm") {
					t.Errorf("exit %d, %q; want 1 and the digest %s, corrupt and kiln cache rm", code, stderr, h)
				}
			})
		}
	}
}
