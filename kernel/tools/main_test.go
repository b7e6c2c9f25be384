package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"kiln.example/kerneltools/internal/bzimage"
	"kiln.example/kerneltools/internal/testdeb"
	"kiln.example/kerneltools/internal/testenv"
	"kiln.example/kerneltools/internal/testko"
)

// fakePackage writes an unpacked kernel package like Debian's arm64 one (an Image that is not
// a bzImage) with four small modules, and returns its root.
func fakePackage(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	const v = "1.0-test"
	files := map[string][]byte{
		"boot/vmlinuz-" + v:                     []byte("ARM64 Image bytes"),
		"boot/config-" + v:                      []byte("CONFIG_TEST=y\n"),
		"boot/System.map-" + v:                  []byte("placeholder\n"),
		"lib/modules/" + v + "/modules.order":   []byte("kernel/net/failover.ko\nkernel/drivers/net/net_failover.ko\nkernel/drivers/net/virtio_net.ko\nkernel/fs/overlay.ko\n"),
		"lib/modules/" + v + "/modules.builtin": []byte("kernel/fs/ext4/ext4.ko\n"),
		"lib/modules/" + v + "/modules.dep.bin": []byte("stale binary index"),
		"lib/modules/" + v + "/kernel/README":   []byte("not a module"),
	}
	mods := map[string]testko.Module{
		"kernel/net/failover.ko":             {Modinfo: []string{"depends="}, Exports: []string{"failover_register"}},
		"kernel/drivers/net/net_failover.ko": {Modinfo: []string{"depends=failover"}, Exports: []string{"net_failover_create"}, Uses: []string{"failover_register"}},
		"kernel/drivers/net/virtio_net.ko":   {Modinfo: []string{"alias=virtio:d00000001v*", "depends=net_failover"}, Uses: []string{"net_failover_create"}},
		"kernel/fs/overlay.ko":               {Modinfo: []string{"alias=fs-overlay", "depends="}},
	}
	for p, m := range mods {
		files["lib/modules/"+v+"/"+p] = m.Bytes()
	}
	for p, data := range files {
		name := filepath.Join(root, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(name), 0o755)
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// readTar returns the names in a tar file, and the contents of the regular files.
func readTar(t *testing.T, name string) ([]string, map[string]string) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	bodies := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, bodies
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 1700000000 {
			t.Errorf("%s: owner %d:%d, time %d", h.Name, h.Uid, h.Gid, h.ModTime.Unix())
		}
		names = append(names, h.Name)
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			bodies[h.Name] = string(b)
		}
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func TestPack(t *testing.T) {
	root := fakePackage(t)
	const m = "lib/modules/1.0-test/"
	tests := []struct {
		name    string
		modules string
		want    []string // kernel.tar's files (not folders)
		dep     string
	}{
		{"all modules", "", []string{
			m + "kernel/drivers/net/net_failover.ko", m + "kernel/drivers/net/virtio_net.ko", m + "kernel/fs/overlay.ko",
			m + "kernel/net/failover.ko", m + "modules.alias", m + "modules.builtin", m + "modules.dep", m + "modules.order", m + "modules.softdep",
		}, "kernel/net/failover.ko:\nkernel/drivers/net/net_failover.ko: kernel/net/failover.ko\n" +
			"kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/failover.ko\nkernel/fs/overlay.ko:\n"},
		{"virtio_net with its dependencies, a built-in and an absent optional module", "virtio-net, ext4,virtio_ccw?", []string{
			m + "kernel/drivers/net/net_failover.ko", m + "kernel/drivers/net/virtio_net.ko",
			m + "kernel/net/failover.ko", m + "modules.alias", m + "modules.builtin", m + "modules.dep", m + "modules.order", m + "modules.softdep",
		}, "kernel/net/failover.ko:\nkernel/drivers/net/net_failover.ko: kernel/net/failover.ko\n" +
			"kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/failover.ko\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			var log bytes.Buffer
			if err := run([]string{"pack", "-modules", tt.modules, "-epoch", "1700000000", "-o", out, root}, &log); err != nil {
				t.Fatal(err)
			}
			// Not a bzImage: no vmlinux.
			if got, want := dirNames(t, out), []string{"config", "kernel", "kernel.tar"}; !reflect.DeepEqual(got, want) {
				t.Errorf("output files %q, want %q", got, want)
			}
			if b, _ := os.ReadFile(filepath.Join(out, "kernel")); string(b) != "ARM64 Image bytes" {
				t.Errorf("/kernel holds %q", b)
			}
			if b, _ := os.ReadFile(filepath.Join(out, "config")); string(b) != "CONFIG_TEST=y\n" {
				t.Errorf("/config holds %q", b)
			}
			names, bodies := readTar(t, filepath.Join(out, "kernel.tar"))
			var files []string
			for _, n := range names {
				if _, ok := bodies[n]; ok {
					files = append(files, n)
				}
			}
			if !reflect.DeepEqual(files, tt.want) {
				t.Errorf("kernel.tar files:\n%s\nwant:\n%s", strings.Join(files, "\n"), strings.Join(tt.want, "\n"))
			}
			if names[0] != "lib/" || names[1] != "lib/modules/" {
				t.Errorf("kernel.tar starts with %q, want its folders first", names[:2])
			}
			if got := bodies[m+"modules.dep"]; got != tt.dep {
				t.Errorf("modules.dep:\n%s\nwant:\n%s", got, tt.dep)
			}
			// The same input gives the same bytes.
			out2 := filepath.Join(t.TempDir(), "out")
			if err := run([]string{"pack", "-modules", tt.modules, "-epoch", "1700000000", "-o", out2, root}, io.Discard); err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(filepath.Join(out, "kernel.tar"))
			b, _ := os.ReadFile(filepath.Join(out2, "kernel.tar"))
			if !bytes.Equal(a, b) {
				t.Error("two runs wrote different kernel.tar files")
			}
		})
	}
}

// TestNarrowKernelTar narrows the modules of an unpacked kernel.tar further, as a package that
// starts from the full kernel image does.
func TestNarrowKernelTar(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	if err := run([]string{"pack", "-epoch", "1700000000", "-o", out, fakePackage(t)}, io.Discard); err != nil {
		t.Fatal(err)
	}
	unpacked := t.TempDir()
	names, bodies := readTar(t, filepath.Join(out, "kernel.tar"))
	for _, n := range names {
		p := filepath.Join(unpacked, filepath.FromSlash(n))
		if body, ok := bodies[n]; ok {
			os.WriteFile(p, []byte(body), 0o644)
		} else {
			os.MkdirAll(p, 0o755)
		}
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	small := filepath.Join(t.TempDir(), "kernel.tar")
	if err := run([]string{"modules", "-modules", "net_failover", "-o", small, unpacked}, io.Discard); err != nil {
		t.Fatal(err)
	}
	_, bodies = readTar(t, small)
	const m = "lib/modules/1.0-test/"
	if got, want := bodies[m+"modules.dep"], "kernel/net/failover.ko:\nkernel/drivers/net/net_failover.ko: kernel/net/failover.ko\n"; got != want {
		t.Errorf("modules.dep:\n%s\nwant:\n%s", got, want)
	}
	if got, want := bodies[m+"modules.order"], "kernel/net/failover.ko\nkernel/drivers/net/net_failover.ko\n"; got != want {
		t.Errorf("modules.order:\n%s\nwant:\n%s", got, want)
	}
}

func TestRunErrors(t *testing.T) {
	root := fakePackage(t)
	out := filepath.Join(t.TempDir(), "out")
	tests := []struct {
		name    string
		args    []string
		env     string
		wantErr string
	}{
		{"no command", nil, "", "usage"},
		{"unknown command", []string{"build"}, "", `unknown command "build"`},
		{"no -o", []string{"pack", root}, "", "want -o and one argument"},
		{"unknown flag", []string{"vmlinux", "-modules", "x", "-o", out, "f"}, "", "flag provided but not defined"},
		{"unknown module", []string{"pack", "-modules", "virtio_net,nosuch", "-o", out, root}, "", "kernel 1.0-test: no module named nosuch"},
		{"bad epoch", []string{"pack", "-epoch", "yesterday", "-o", out, root}, "", `-epoch="yesterday"`},
		{"bad SOURCE_DATE_EPOCH", []string{"pack", "-o", out, root}, "-1", `SOURCE_DATE_EPOCH="-1"`},
		{"not a package", []string{"pack", "-o", out, t.TempDir()}, "", "want exactly one boot/vmlinuz-VERSION"},
		{"not a module root", []string{"modules", "-o", out, t.TempDir()}, "", "lib/modules/VERSION"},
		{"not a bzImage", []string{"vmlinux", "-o", out, filepath.Join(root, "boot", "vmlinuz-1.0-test")}, "", "not an x86 bzImage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", tt.env)
			err := run(tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestPackDebian packs Debian's amd64 kernel as the package build does, narrowed to a few
// modules, and checks the image's files.
func TestPackDebian(t *testing.T) {
	testenv.Short(t, "unpacks a kernel package")
	root := testdeb.Unpack(t, "amd64")
	_, version := testdeb.ModuleDir(t, root)
	out := filepath.Join(t.TempDir(), "out")
	var log bytes.Buffer
	if err := run([]string{"pack", "-modules", "virtio_net,virtio_blk,overlay,virtio_ccw?", "-epoch", "1700000000", "-o", out, root}, &log); err != nil {
		t.Fatal(err)
	}
	t.Log(log.String())
	if got, want := dirNames(t, out), []string{"config", "kernel", "kernel.tar", "vmlinux"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("output files %q, want %q", got, want)
	}
	vmlinux, err := os.ReadFile(filepath.Join(out, "vmlinux"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := bzimage.PVHEntry(vmlinux); !ok || err != nil {
		t.Errorf("vmlinux has no PVH entry (%v)", err)
	}
	_, bodies := readTar(t, filepath.Join(out, "kernel.tar"))
	dep := bodies["lib/modules/"+version+"/modules.dep"]
	if !strings.Contains(dep, "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko") {
		t.Errorf("modules.dep lacks virtio_net's line:\n%s", dep)
	}
	if _, ok := bodies["lib/modules/"+version+"/kernel/fs/overlayfs/overlay.ko"]; !ok {
		t.Error("overlay.ko is missing from kernel.tar")
	}
}
