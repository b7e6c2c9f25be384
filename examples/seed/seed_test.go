package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/kiln-os/kiln/internal/ocicache"
	"github.com/kiln-os/kiln/internal/testenv"
)

func TestParseDepends(t *testing.T) {
	tests := []struct {
		name, out, want string
		wantErr         bool
	}{
		{"native", "linux-image-amd64\n  Depends: linux-image-6.1.0-48-amd64\n", "6.1.0-48-amd64", false},
		{"foreign", "linux-image-arm64:arm64\n  Depends: linux-image-6.1.0-48-arm64:arm64\n", "6.1.0-48-arm64", false},
		{"skips non-kernel deps", "x\n  Depends: linux-image-amd64-signed-template\n  Depends: linux-image-6.1.0-9-amd64\n", "6.1.0-9-amd64", false},
		{"no dependency", "linux-image-amd64\n", "", true},
		{"apt found nothing", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDepends([]byte(tt.out))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseDepends = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseShow(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	tests := []struct {
		name, out string
		want      debInfo
		wantErr   bool
	}{
		{"fields", "Package: p\nVersion: 6.1.172-1\nSHA256: " + sum + "\n\n", debInfo{"6.1.172-1", sum}, false},
		{"first stanza only", "Version: 1\nSHA256: " + sum + "\n\nVersion: 2\n", debInfo{"1", sum}, false},
		{"no checksum", "Version: 1\n", debInfo{}, true},
		{"short checksum", "Version: 1\nSHA256: abcd\n", debInfo{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseShow([]byte(tt.out))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseShow = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestDebFileName(t *testing.T) {
	if got, want := debFileName("linux-image-6.1.0-48-amd64", "1:6.1.172-1", "amd64"),
		"linux-image-6.1.0-48-amd64_1%3a6.1.172-1_amd64.deb"; got != want {
		t.Errorf("debFileName = %q, want %q", got, want)
	}
}

func TestDemoModule(t *testing.T) {
	tests := []struct {
		rel  string
		want bool
	}{
		{"modules.order", true},
		{"modules.builtin.modinfo", true},
		{"kernel/drivers/virtio/virtio_pci.ko", true},
		{"kernel/drivers/block/virtio_blk.ko", true},
		{"kernel/drivers/block/loop.ko", false},
		{"kernel/fs/overlayfs/overlay.ko", true},
		{"kernel/fs/9p/9p.ko", true},
		{"kernel/net/9p/9pnet_virtio.ko", true},
		{"kernel/sound/core/snd.ko", false},
		{"kernel/drivers/virtio", false}, // a folder name alone is not a file of the set
		{"build", false},
	}
	for _, tt := range tests {
		if got := demoModule(tt.rel); got != tt.want {
			t.Errorf("demoModule(%q) = %v, want %v", tt.rel, got, tt.want)
		}
	}
}

// tarEntry is what the tests read back from a tar.
type tarEntry struct {
	name     string
	typ      byte
	mode     int64
	body     string
	linkname string
}

func readTar(t *testing.T, r io.Reader) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" || !hdr.ModTime.Equal(time.Unix(42, 0)) {
			t.Errorf("%s: owner %d:%d (%q:%q), mtime %v; want 0:0, no names, mtime 42", hdr.Name, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname, hdr.ModTime)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr.Name, hdr.Typeflag, hdr.Mode, string(body), hdr.Linkname})
	}
}

func TestWriteTar(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, []byte("from disk"), 0o600); err != nil {
		t.Fatal(err)
	}
	entries := []entry{
		{name: "b/file", typ: tar.TypeReg, mode: 0o644, src: src},
		{name: "a-c", typ: tar.TypeSymlink, mode: 0o777, linkname: "b/file"},
		{name: "b", typ: tar.TypeDir, mode: 0o755},
		{name: "a", typ: tar.TypeReg, mode: 0o755, data: []byte("inline")},
	}
	var first, second bytes.Buffer
	mtime := time.Unix(42, 0)
	if err := writeTar(&first, entries, mtime); err != nil {
		t.Fatal(err)
	}
	reversed := []entry{entries[3], entries[2], entries[1], entries[0]}
	if err := writeTar(&second, reversed, mtime); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Error("the same entries in another order gave other bytes")
	}
	want := []tarEntry{
		{"a", tar.TypeReg, 0o755, "inline", ""},
		{"a-c", tar.TypeSymlink, 0o777, "", "b/file"},
		{"b/", tar.TypeDir, 0o755, "", ""},
		{"b/file", tar.TypeReg, 0o644, "from disk", ""},
	}
	if got := readTar(t, &first); !reflect.DeepEqual(got, want) {
		t.Errorf("entries:\n got %+v\nwant %+v", got, want)
	}

	bad := []struct {
		name    string
		entries []entry
	}{
		{"duplicate", []entry{{name: "x", typ: tar.TypeDir}, {name: "x", typ: tar.TypeDir}}},
		{"absolute", []entry{{name: "/x", typ: tar.TypeDir}}},
		{"trailing slash", []entry{{name: "x/", typ: tar.TypeDir}}},
		{"missing source", []entry{{name: "x", typ: tar.TypeReg, src: filepath.Join(t.TempDir(), "nope")}}},
	}
	for _, tt := range bad {
		if err := writeTar(io.Discard, tt.entries, mtime); err == nil {
			t.Errorf("%s: writeTar succeeded, want an error", tt.name)
		}
	}
}

func TestModuleEntries(t *testing.T) {
	root := t.TempDir()
	files := map[string]os.FileMode{
		"lib/modules/9.9/modules.order":                   0o644,
		"lib/modules/9.9/kernel/drivers/virtio/virtio.ko": 0o644,
		"lib/modules/9.9/kernel/sound/snd.ko":             0o644,
		"lib/modules/9.9/kernel/fs/overlayfs/overlay.ko":  0o755,
		"boot/vmlinuz-9.9":                                0o644,
	}
	for name, mode := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(name), mode); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := moduleEntries(root, "9.9", demoModule)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeTar(&buf, entries, time.Unix(42, 0)); err != nil {
		t.Fatal(err)
	}
	m := "lib/modules/9.9/"
	want := []tarEntry{
		{"lib/", tar.TypeDir, 0o755, "", ""},
		{"lib/modules/", tar.TypeDir, 0o755, "", ""},
		{m, tar.TypeDir, 0o755, "", ""},
		{m + "kernel/", tar.TypeDir, 0o755, "", ""},
		{m + "kernel/drivers/", tar.TypeDir, 0o755, "", ""},
		{m + "kernel/drivers/virtio/", tar.TypeDir, 0o755, "", ""},
		{m + "kernel/drivers/virtio/virtio.ko", tar.TypeReg, 0o644, m + "kernel/drivers/virtio/virtio.ko", ""},
		{m + "kernel/fs/", tar.TypeDir, 0o755, "", ""},
		{m + "kernel/fs/overlayfs/", tar.TypeDir, 0o755, "", ""},
		{m + "kernel/fs/overlayfs/overlay.ko", tar.TypeReg, 0o755, m + "kernel/fs/overlayfs/overlay.ko", ""},
		{m + "modules.order", tar.TypeReg, 0o644, m + "modules.order", ""},
	}
	if got := readTar(t, &buf); !reflect.DeepEqual(got, want) {
		t.Errorf("kernel.tar:\n got %+v\nwant %+v", got, want)
	}
	if _, err := moduleEntries(root, "0.0", demoModule); err == nil {
		t.Error("moduleEntries of a missing version succeeded")
	}
}

// seedInto seeds a fresh cache and returns it with the log.
func seedInto(t *testing.T, dir string, kernel bool) (*ocicache.Cache, string) {
	t.Helper()
	var log bytes.Buffer
	debs, err := defaultDebDir()
	if err != nil {
		debs = filepath.Join(t.TempDir(), "debs")
	}
	o := options{cache: dir, arch: "amd64", helloDir: "../hello", debDir: debs, kernel: kernel,
		epoch: time.Unix(42, 0).UTC(), log: &log}
	if err := seed(context.Background(), o); err != nil {
		t.Fatalf("seed: %v\n%s", err, log.String())
	}
	c, err := ocicache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c, log.String()
}

// imageFiles returns an image's flattened files.
func imageFiles(t *testing.T, c *ocicache.Cache, ref string) (v1.Image, map[string]tarEntry) {
	t.Helper()
	img, _, err := c.Image(ref, &v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]tarEntry{}
	for _, e := range readTar(t, rc) {
		files[e.name] = e
	}
	return img, files
}

func digest(t *testing.T, c *ocicache.Cache, ref string) v1.Hash {
	t.Helper()
	d, err := c.Resolve(ref)
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest
}

// checkReproducible seeds two caches and a second time into the first, and wants the same
// digests every time.
func checkReproducible(t *testing.T, kernel bool, refs ...string) *ocicache.Cache {
	a, _ := seedInto(t, t.TempDir(), kernel)
	b, _ := seedInto(t, t.TempDir(), kernel)
	_, again := seedInto(t, a.Root(), kernel)
	for _, ref := range refs {
		if da, db := digest(t, a, ref), digest(t, b, ref); da != db {
			t.Errorf("%s: %s in one cache, %s in the other", ref, da, db)
		}
		want := "seed: " + ref + " " + digest(t, a, ref).String() + " (already in the cache)\n"
		if !strings.Contains(again, want) {
			t.Errorf("seeding again did not skip %s:\n%s", ref, again)
		}
	}
	return a
}

func TestSeedHelloAndInit(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		testenv.SkipOrFail(t, "no go command on PATH: %v", err)
	}
	c := checkReproducible(t, false, helloRef, initRef)

	img, files := imageFiles(t, c, helloRef)
	hello, ok := files["bin/hello"]
	if !ok || hello.mode != 0o755 || !strings.HasPrefix(hello.body, "\x7fELF") {
		t.Errorf("bin/hello: %v, mode %o, not an executable ELF file", ok, hello.mode)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cf.Config.Entrypoint, []string{"/bin/hello"}) || cf.Config.Labels[mobyConfigLabel] != helloLabel {
		t.Errorf("hello config: entrypoint %q, labels %v", cf.Config.Entrypoint, cf.Config.Labels)
	}
	if cf.Architecture != "amd64" || cf.OS != "linux" || !cf.Created.Equal(time.Unix(42, 0)) {
		t.Errorf("hello config: %s/%s created %v", cf.OS, cf.Architecture, cf.Created.Time)
	}
	if host := os.Getenv("HOME"); host != "" && strings.Contains(hello.body, host) {
		t.Errorf("bin/hello holds the host path %s", host)
	}

	_, files = imageFiles(t, c, initRef)
	if init, ok := files["init"]; !ok || init.body != hello.body || len(files) != 1 {
		t.Errorf("demo-init holds %d files, /init present %v, same program as /bin/hello %v", len(files), ok, init.body == hello.body)
	}
}

func TestSeedKernel(t *testing.T) {
	testenv.Short(t, "downloads and unpacks Debian's kernel package")
	for _, tool := range []string{"go", "apt-get", "apt-cache", "dpkg", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.SkipOrFail(t, "no %s on PATH (a Debian host with apt, dpkg and go is needed): %v", tool, err)
		}
	}
	c := checkReproducible(t, true, helloRef, initRef, kernelRepo+":"+kernelAliasTag)
	entries, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var versioned int
	for _, e := range entries {
		if strings.Contains(e.Familiar, kernelRepo+":") {
			versioned++
		}
	}
	if versioned != 2 {
		t.Errorf("want the kernel under 2 names (version and %s), got %d: %+v", kernelAliasTag, versioned, entries)
	}

	_, files := imageFiles(t, c, kernelRepo+":"+kernelAliasTag)
	if len(files) != 3 || !strings.HasPrefix(files["config"].body, "#") || len(files["kernel"].body) < 1<<20 {
		t.Fatalf("kernel image: want config, kernel and kernel.tar, got %d files", len(files))
	}
	mods := map[string]bool{}
	for _, e := range readTar(t, strings.NewReader(files["kernel.tar"].body)) {
		if e.typ == tar.TypeLink {
			t.Errorf("kernel.tar: hard link %s", e.name)
		}
		mods[filepath.Base(e.name)] = true
	}
	for _, want := range []string{"modules.order", "virtio_pci.ko", "virtio_blk.ko", "overlay.ko", "9pnet_virtio.ko"} {
		if !mods[want] {
			t.Errorf("kernel.tar has no %s", want)
		}
	}
	if mods["snd.ko"] {
		t.Error("kernel.tar holds sound modules; want the demo set only")
	}
}
