package kmod

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"kiln.example/kerneltools/internal/testdeb"
	"kiln.example/kerneltools/internal/testenv"
	"kiln.example/kerneltools/internal/testko"
)

func TestParseModinfo(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []Field
	}{
		{"empty", "", nil},
		{"fields", "license=GPL\x00depends=a,b\x00name=x\x00", []Field{{"license", "GPL"}, {"depends", "a,b"}, {"name", "x"}}},
		{"padding and an empty value", "alias=x\x00\x00\x00\x00depends=\x00", []Field{{"alias", "x"}, {"depends", ""}}},
		{"value with =", "parm=debug:level=1\x00", []Field{{"parm", "debug:level=1"}}},
		{"junk without =", "junk\x00=novalue\x00k=v", []Field{{"k", "v"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseModinfo([]byte(tt.data)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadModinfo(t *testing.T) {
	info := []string{"license=GPL", "depends=virtio,virtio_ring", "name=virtio_net"}
	want := []Field{{"license", "GPL"}, {"depends", "virtio,virtio_ring"}, {"name", "virtio_net"}}
	tests := []struct {
		name  string
		class elf.Class
		order binary.ByteOrder
	}{
		{"64-bit little endian (amd64, arm64)", elf.ELFCLASS64, binary.LittleEndian},
		{"64-bit big endian (s390x)", elf.ELFCLASS64, binary.BigEndian},
		{"32-bit little endian", elf.ELFCLASS32, binary.LittleEndian},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := testko.Module{Modinfo: info, Class: tt.class, Order: tt.order}.Bytes()
			got, err := ReadModinfo(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
	if _, err := ReadModinfo(strings.NewReader("not an ELF file at all")); err == nil || !strings.Contains(err.Error(), "not an ELF file") {
		t.Errorf("a text file: err = %v", err)
	}
}

// smallTree writes a module tree for tests into root/lib/modules/1.0-test and returns that
// folder. alpha's depends= names beta first, but it uses gamma-x's symbol first, so depmod
// works with gamma-x first; epsilon is missing from modules.order.
func smallTree(t *testing.T, root string) string {
	t.Helper()
	dir := filepath.Join(root, "lib", "modules", "1.0-test")
	mods := map[string]testko.Module{
		"kernel/lib/delta.ko": {Modinfo: []string{"license=GPL", "depends=", "name=delta"}, Exports: []string{"delta_fn"}},
		"kernel/drivers/beta.ko": {Modinfo: []string{"softdep=pre: delta", "depends=delta", "name=beta"},
			Exports: []string{"beta_fn"}, Uses: []string{"printk", "delta_fn"}},
		"kernel/drivers/gamma-x.ko": {Modinfo: []string{"depends=delta", "name=gamma_x"},
			Exports: []string{"gamma_fn"}, Uses: []string{"delta_fn"}, Order: binary.BigEndian},
		"kernel/fs/a/alpha.ko": {Modinfo: []string{"alias=fs-alpha", "alias=pci:v00001AF4d*", "depends=beta,gamma-x", "name=alpha"},
			Exports: []string{"alpha_fn"}, Uses: []string{"kmalloc", "gamma_fn", "beta_fn", "gamma_fn"}},
		"kernel/lib/zeta.ko": {Modinfo: []string{"depends=alpha", "softdep=pre: epsilon-dev post: nothing-provides-this", "name=zeta"},
			Uses: []string{"alpha_fn"}},
		"kernel/extra/epsilon.ko": {Modinfo: []string{"alias=epsilon-d*", "depends=", "name=epsilon"}},
	}
	for p, m := range mods {
		if err := m.WriteFile(filepath.Join(dir, filepath.FromSlash(p))); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"modules.order":           "kernel/lib/delta.ko\nkernel/drivers/beta.ko\nkernel/drivers/gamma-x.ko\nkernel/fs/a/alpha.ko\nkernel/lib/zeta.ko\nkernel/gone/removed.ko\n",
		"modules.builtin":         "kernel/fs/ext4/ext4.ko\nkernel/drivers/virtio/virtio-pci.ko\n",
		"modules.builtin.modinfo": "ext4.license=GPL\x00virtio_ccw.parm=no_auto:list\x00",
	}
	for n, s := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const smallDep = `kernel/lib/delta.ko:
kernel/drivers/beta.ko: kernel/lib/delta.ko
kernel/drivers/gamma-x.ko: kernel/lib/delta.ko
kernel/fs/a/alpha.ko: kernel/drivers/beta.ko kernel/drivers/gamma-x.ko kernel/lib/delta.ko
kernel/lib/zeta.ko: kernel/fs/a/alpha.ko kernel/drivers/beta.ko kernel/drivers/gamma-x.ko kernel/lib/delta.ko
kernel/extra/epsilon.ko:
`

func write(t *testing.T, f func(*bytes.Buffer) error) string {
	t.Helper()
	var b bytes.Buffer
	if err := f(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestSmallTree(t *testing.T) {
	dir := smallTree(t, t.TempDir())
	tree, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := tree.Module("gamma_x").Depends; !reflect.DeepEqual(got, []string{"delta"}) {
		t.Errorf("gamma_x depends on %q", got)
	}
	if got := tree.Module("alpha").Depends; !reflect.DeepEqual(got, []string{"gamma_x", "beta"}) {
		t.Errorf("alpha's dependencies in symbol order: %q, want gamma_x, beta", got)
	}
	if got := write(t, func(b *bytes.Buffer) error { return tree.WriteDep(b) }); got != smallDep {
		t.Errorf("modules.dep:\n%s\nwant:\n%s", got, smallDep)
	}
	wantAlias := "# Aliases extracted from modules themselves.\nalias fs-alpha alpha\nalias pci:v00001AF4d* alpha\nalias epsilon-d* epsilon\n"
	if got := write(t, func(b *bytes.Buffer) error { return tree.WriteAlias(b) }); got != wantAlias {
		t.Errorf("modules.alias:\n%s\nwant:\n%s", got, wantAlias)
	}
	wantSoft := "# Soft dependencies extracted from modules themselves.\nsoftdep beta pre: delta\nsoftdep zeta pre: epsilon-dev post: nothing-provides-this\n"
	if got := write(t, func(b *bytes.Buffer) error { return tree.WriteSoftdep(b) }); got != wantSoft {
		t.Errorf("modules.softdep:\n%s\nwant:\n%s", got, wantSoft)
	}
	wantOrder := "kernel/lib/delta.ko\nkernel/drivers/beta.ko\nkernel/drivers/gamma-x.ko\nkernel/fs/a/alpha.ko\nkernel/lib/zeta.ko\nkernel/extra/epsilon.ko\n"
	if got := write(t, func(b *bytes.Buffer) error { return tree.WriteOrder(b) }); got != wantOrder {
		t.Errorf("modules.order:\n%s\nwant:\n%s", got, wantOrder)
	}
	// depmod itself agrees (it resolves the same symbols).
	if depmod := findDepmod(t); depmod != "" {
		root := filepath.Dir(filepath.Dir(filepath.Dir(dir)))
		if out, err := exec.Command(depmod, "-b", root, "1.0-test").CombinedOutput(); err != nil {
			t.Fatalf("depmod: %v\n%s", err, out)
		}
		for name, want := range map[string]string{"modules.dep": smallDep, "modules.alias": wantAlias, "modules.softdep": wantSoft} {
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want {
				t.Errorf("depmod's %s:\n%s\nours:\n%s", name, got, want)
			}
		}
	}
}

func TestSelect(t *testing.T) {
	tree, err := Load(smallTree(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		names   []string
		want    []string // kept module names, in tree order
		wantErr string
	}{
		{"none keeps all", nil, []string{"delta", "beta", "gamma_x", "alpha", "zeta", "epsilon"}, ""},
		{"a leaf", []string{"delta"}, []string{"delta"}, ""},
		{"with dependencies", []string{"alpha"}, []string{"delta", "beta", "gamma_x", "alpha"}, ""},
		{"dash or underscore", []string{"gamma-x", "epsilon"}, []string{"delta", "gamma_x", "epsilon"}, ""},
		{"built in: nothing to keep", []string{"ext4", "virtio_pci", "virtio_ccw", "beta"}, []string{"delta", "beta"}, ""},
		{"optional and absent; soft dependencies", []string{"virtio_scsi?", " zeta ", ""}, []string{"delta", "beta", "gamma_x", "alpha", "zeta", "epsilon"}, ""},
		{"optional and present", []string{"beta?"}, []string{"delta", "beta"}, ""},
		{"unknown", []string{"alpha", "nosuch", "nope"}, nil, "no module named nosuch, nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tree.Select(tt.names)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range s.Modules {
				got = append(got, m.Name)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("kept %q, want %q", got, tt.want)
			}
		})
	}
	s, err := tree.Select([]string{"alpha"})
	if err != nil {
		t.Fatal(err)
	}
	want := "kernel/lib/delta.ko:\nkernel/drivers/beta.ko: kernel/lib/delta.ko\nkernel/drivers/gamma-x.ko: kernel/lib/delta.ko\n" +
		"kernel/fs/a/alpha.ko: kernel/drivers/beta.ko kernel/drivers/gamma-x.ko kernel/lib/delta.ko\n"
	if got := write(t, func(b *bytes.Buffer) error { return s.WriteDep(b) }); got != want {
		t.Errorf("modules.dep of the selection:\n%s\nwant:\n%s", got, want)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string][]byte
		wantErr string
	}{
		{"missing dependency", map[string][]byte{"kernel/a.ko": testko.Module{Modinfo: []string{"depends=b"}}.Bytes()},
			"module a (kernel/a.ko) depends on b, which is not in the tree"},
		{"compressed module", map[string][]byte{"kernel/a.ko.xz": []byte("xz")}, "compressed modules are not supported"},
		{"not ELF", map[string][]byte{"kernel/a.ko": []byte("text")}, "not an ELF file"},
		{"no .modinfo", map[string][]byte{"kernel/a.ko": testko.Module{}.Bytes()}, ""},
		{"same name twice", map[string][]byte{"kernel/x/a-b.ko": testko.Module{Modinfo: []string{"depends="}}.Bytes(),
			"kernel/y/a_b.ko": testko.Module{Modinfo: []string{"depends="}}.Bytes()}, "module a_b is in the tree twice"},
		{"cycle", map[string][]byte{"kernel/a.ko": testko.Module{Modinfo: []string{"depends=b"}}.Bytes(),
			"kernel/b.ko": testko.Module{Modinfo: []string{"depends=a"}}.Bytes()}, "cycle: a, b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, data := range tt.files {
				p := filepath.Join(dir, filepath.FromSlash(n))
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, data, 0o644)
			}
			tree, err := Load(dir)
			if err == nil {
				err = tree.WriteDep(&bytes.Buffer{})
			}
			if tt.wantErr == "" { // a module without .modinfo: "not a kernel module"
				tt.wantErr = "not a kernel module"
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// findDepmod returns the path of depmod, "" to skip a comparison with it outside CI.
func findDepmod(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"depmod", "/usr/sbin/depmod", "/sbin/depmod"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if testenv.InCI() {
		t.Fatal("depmod is missing, so modules.dep cannot be compared with it (apt-get install kmod)")
	}
	t.Log("depmod is missing: not comparing with it")
	return ""
}

// TestDebianKernels compares the indexes written for Debian's kernels, whole and narrowed to
// a few modules, with depmod's, byte for byte.
func TestDebianKernels(t *testing.T) {
	testenv.Short(t, "unpacks kernel packages")
	for _, arch := range []string{"amd64", "arm64", "s390x"} {
		t.Run(arch, func(t *testing.T) {
			root := testdeb.Unpack(t, arch)
			dir, version := testdeb.ModuleDir(t, root)
			tree, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			sel, err := tree.Select([]string{"virtio_net", "virtio_blk", "virtio_pci?", "virtio_ccw?", "overlay", "squashfs", "vfat", "ext4", "9p?"})
			if err != nil {
				t.Fatal(err)
			}
			line := write(t, func(b *bytes.Buffer) error { return sel.WriteDep(b) })
			if !strings.Contains(line, "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko") {
				t.Errorf("virtio_net's line is not as expected in:\n%s", line)
			}
			t.Logf("%s: %d modules, %d kept", version, len(tree.Modules), len(sel.Modules))
			depmod := findDepmod(t)
			if depmod == "" {
				return
			}
			compareWithDepmod(t, depmod, tree, root, version)
			// The narrowed tree, as kernel.tar would hold it.
			small := filepath.Join(t.TempDir(), "small")
			smallDir := filepath.Join(small, "lib", "modules", version)
			for _, m := range sel.Modules {
				dst := filepath.Join(smallDir, filepath.FromSlash(m.Path))
				os.MkdirAll(filepath.Dir(dst), 0o755)
				if err := os.Link(filepath.Join(dir, filepath.FromSlash(m.Path)), dst); err != nil {
					t.Fatal(err)
				}
			}
			order := write(t, func(b *bytes.Buffer) error { return sel.WriteOrder(b) })
			if err := os.WriteFile(filepath.Join(smallDir, "modules.order"), []byte(order), 0o644); err != nil {
				t.Fatal(err)
			}
			compareWithDepmod(t, depmod, sel, small, version)
		})
	}
}

// compareWithDepmod runs depmod on root and compares its text indexes with tree's.
func compareWithDepmod(t *testing.T, depmod string, tree *Tree, root, version string) {
	t.Helper()
	if out, err := exec.Command(depmod, "-b", root, version).CombinedOutput(); err != nil {
		t.Fatalf("depmod -b %s %s: %v\n%s", root, version, err, out)
	}
	for _, c := range []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"modules.dep", func(b *bytes.Buffer) error { return tree.WriteDep(b) }},
		{"modules.alias", func(b *bytes.Buffer) error { return tree.WriteAlias(b) }},
		{"modules.softdep", func(b *bytes.Buffer) error { return tree.WriteSoftdep(b) }},
	} {
		want, err := os.ReadFile(filepath.Join(root, "lib", "modules", version, c.name))
		if err != nil {
			t.Fatal(err)
		}
		got := write(t, c.write)
		if got != string(want) {
			gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
			for i := 0; i < len(gl) && i < len(wl); i++ {
				if gl[i] != wl[i] {
					t.Errorf("%s differs from depmod's at line %d:\n ours:   %s\n depmod: %s", c.name, i+1, gl[i], wl[i])
					break
				}
			}
			if len(gl) != len(wl) {
				t.Errorf("%s: %d lines, depmod's %d", c.name, len(gl), len(wl))
			}
		}
	}
}
