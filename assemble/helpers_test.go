package assemble

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kiln-os/kiln/internal/archive"
	"github.com/kiln-os/kiln/internal/ocicache"
)

// file is one entry of a test layer.
type file struct {
	name, body, link string
	typ              byte
	mode             int64
}

func reg(name, body string) file { return file{name: name, body: body, typ: tar.TypeReg, mode: 0o644} }
func dir(name string) file       { return file{name: name, typ: tar.TypeDir, mode: 0o755} }
func sym(name, to string) file   { return file{name: name, link: to, typ: tar.TypeSymlink, mode: 0o777} }
func hard(name, to string) file  { return file{name: name, link: to, typ: tar.TypeLink, mode: 0o644} }
func whiteout(name string) file {
	return reg(filepath.Join(filepath.Dir(name), ".wh."+filepath.Base(name)), "")
}
func exe(name, body string) file { f := reg(name, body); f.mode = 0o755; return f }
func tarOf(files ...file) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Typeflag: f.typ, Mode: f.mode, Linkname: f.link}
		if f.typ == tar.TypeReg {
			h.Size = int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// testImage builds an image of the given layers for one architecture.
func testImage(t testing.TB, arch string, cfg v1.Config, layers ...[]file) v1.Image {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		data := tarOf(l...)
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			t.Fatal(err)
		}
	}
	// Keep the RootFS (the DiffIDs) that AppendLayers computed, as every real image has.
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", arch, cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// seedCache writes the images every build test uses into a new cache.
func seedCache(t testing.TB) *ocicache.Cache {
	t.Helper()
	c, err := ocicache.Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	kernelTar := string(tarOf(dir("lib/modules/6.1.0-test/"), reg("lib/modules/6.1.0-test/modules.dep", "kernel/fs/overlay.ko:\n"),
		reg("lib/modules/6.1.0-test/kernel/fs/overlay.ko", "ELF overlay")))
	write := func(ref string, img v1.Image) {
		if _, err := c.WriteImage(ref, img); err != nil {
			t.Fatal(err)
		}
	}
	write("kiln/test-kernel:v1", testImage(t, "amd64", v1.Config{},
		[]file{reg("kernel", "KERNEL-IMAGE-BYTES"), reg("kernel.tar", kernelTar), reg("config", "CONFIG_X=y\n")}))
	write("kiln/test-init:v1", testImage(t, "amd64", v1.Config{Labels: map[string]string{InitSharedRootfsLabel: "true"}},
		[]file{exe("init", "#!init"), dir("etc"), reg("etc/os-release", "ID=kiln\n"), dir("usr/bin"), exe("usr/bin/ctr", "ctr")},
		[]file{reg("etc/os-release", "ID=kiln-2\n"), whiteout("usr/bin/ctr")}))
	write("kiln/test-app:v1", testImage(t, "amd64",
		v1.Config{Entrypoint: []string{"/bin/app"}, Cmd: []string{"-v"}, Env: []string{"PATH=/bin"},
			Labels: map[string]string{labelKey: `{"capabilities":["CAP_NET_ADMIN"],"binds":["/var:/var"]}`}},
		[]file{dir("bin"), exe("bin/app", "APP"), hard("bin/app2", "bin/app"), sym("bin/sh", "app"), dir("etc"),
			reg("etc/passwd", "root:x:0:0::/root:/bin/sh\ndaemon:x:7:8::/:/bin/sh\n"), reg("etc/group", "root:x:0:\nwheel:x:10:\n")}))
	return c
}

// listCpio returns "type name size" lines and the bodies of a gzip'd initramfs (after any
// uncompressed microcode archive).
func listInitrd(t testing.TB, path string) (names []string, bodies map[string]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Skip a leading uncompressed cpio (microcode), which ends with a TRAILER and padding.
	if i := bytes.Index(data, []byte{0x1f, 0x8b}); i > 0 {
		data = data[i:]
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return readArchive(t, archive.NewCpioReader(zr))
}

type nextReader interface {
	Next() (*tar.Header, error)
	io.Reader
}

func readArchive(t testing.TB, r nextReader) ([]string, map[string]string) {
	t.Helper()
	var names []string
	bodies := map[string]string{}
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, string(h.Typeflag)+" "+h.Name)
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		bodies[h.Name] = string(b)
		if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink {
			bodies[h.Name] = "-> " + h.Linkname
		}
	}
	return names, bodies
}

func listTar(t testing.TB, path string) ([]string, map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readArchive(t, tar.NewReader(f))
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func v1Config() v1.Config { return v1.Config{} }
