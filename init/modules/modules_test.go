package modules

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// A modules.dep in depmod's format, as a Debian kernel would have it (trimmed).
const dep = `kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/fs/overlayfs/overlay.ko:
# a comment

kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/drivers/block/virtio-blk.ko.xz:
kernel/x/needs_missing.ko: kernel/x/missing.ko
kernel/x/a.ko: kernel/x/b.ko
kernel/x/b.ko: kernel/x/a.ko
`

func index(t *testing.T) *Index {
	t.Helper()
	mods, err := ParseDep(strings.NewReader(dep))
	if err != nil {
		t.Fatal(err)
	}
	return &Index{Dir: "/lib/modules/6.1.0-test", Modules: mods, Builtin: map[string]bool{"unix": true}, SysModule: t.TempDir()}
}

func names(ms []Module) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func TestName(t *testing.T) {
	for in, want := range map[string]string{
		"virtio-net":                      "virtio_net",
		"virtio_net.ko":                   "virtio_net",
		"kernel/drivers/virtio-blk.ko.xz": "virtio_blk",
		"ext4.ko.zst":                     "ext4",
		"overlay":                         "overlay",
	} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDep(t *testing.T) {
	ix := index(t)
	if got := ix.Modules["virtio_net"]; got.Path != "kernel/drivers/net/virtio_net.ko" || !reflect.DeepEqual(got.Deps, []string{"net_failover", "failover"}) {
		t.Errorf("virtio_net: %+v", got)
	}
	if got := ix.Modules["virtio_blk"]; got.Path != "kernel/drivers/block/virtio-blk.ko.xz" || len(got.Deps) != 0 {
		t.Errorf("virtio_blk: %+v", got)
	}
	bad := []struct{ name, text, want string }{
		{"no colon", "kernel/a.ko kernel/b.ko\n", "line 1"},
		{"empty path", ": kernel/b.ko\n", "line 1"},
		{"twice", "a.ko:\nx/a.ko:\n", "line 2: module a listed twice"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDep(strings.NewReader(tt.text))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestOrder(t *testing.T) {
	tests := []struct {
		name    string
		ask     []string
		want    []string
		wantErr string
	}{
		{"dependencies first", []string{"virtio_net"}, []string{"failover", "net_failover", "virtio_net"}, ""},
		{"shared dependency once", []string{"net_failover", "virtio-net"}, []string{"failover", "net_failover", "virtio_net"}, ""},
		{"asked twice", []string{"overlay", "overlay.ko"}, []string{"overlay"}, ""},
		{"several", []string{"ext4", "overlay"}, []string{"crc16", "mbcache", "jbd2", "ext4", "overlay"}, ""},
		{"built in is skipped", []string{"unix", "overlay"}, []string{"overlay"}, ""},
		{"unknown name, others still ordered", []string{"nope", "overlay"}, []string{"overlay"},
			`unknown module "nope": not in /lib/modules/6.1.0-test/modules.dep`},
		{"optional and missing is left out", []string{"qemu_fw_cfg?", "overlay"}, []string{"overlay"}, ""},
		{"optional and present is loaded", []string{"overlay?", "unix?"}, []string{"overlay"}, ""},
		{"optional with a missing dependency", []string{"needs_missing?"}, nil, `module "missing" (needed by needs_missing) is not in`},
		{"missing dependency", []string{"needs_missing"}, nil, `module "missing" (needed by needs_missing) is not in`},
		{"cycle", []string{"a"}, nil, "depend on each other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := index(t).Order(tt.ask...)
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if !reflect.DeepEqual(names(got), tt.want) {
				t.Errorf("order %q, want %q", names(got), tt.want)
			}
		})
	}
	_, err := index(t).Order("nope")
	var unk *UnknownError
	if !errors.As(err, &unk) || unk.Name != "nope" {
		t.Errorf("unknown module error is not an *UnknownError: %v", err)
	}
}

// The loader is replaced by a recorder (Fake) so that no module reaches the host kernel.
func TestLoadAllFakeLoader(t *testing.T) {
	ix := index(t)
	// crc16 is loaded already: it has an initstate.
	if err := os.MkdirAll(filepath.Join(ix.SysModule, "crc16"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ix.SysModule, "crc16", "initstate"), []byte("live\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var loaded []string
	var gotParams []string
	fakeLoad := func(path, params string) error {
		if strings.Contains(path, "jbd2") {
			return errors.New("exec format error")
		}
		loaded = append(loaded, path)
		gotParams = append(gotParams, params)
		return nil
	}
	var done []string
	err := ix.LoadAll([]string{"virtio_net", "ext4", "nope"}, map[string]string{"virtio_net": "napi_tx=1"}, fakeLoad, func(n string) { done = append(done, n) })
	if err == nil || !strings.Contains(err.Error(), "jbd2: exec format error") || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("err = %v, want the jbd2 failure and the unknown name", err)
	}
	want := []string{
		"/lib/modules/6.1.0-test/kernel/net/core/failover.ko",
		"/lib/modules/6.1.0-test/kernel/drivers/net/net_failover.ko",
		"/lib/modules/6.1.0-test/kernel/drivers/net/virtio_net.ko",
		"/lib/modules/6.1.0-test/kernel/fs/mbcache.ko",
		"/lib/modules/6.1.0-test/kernel/fs/ext4/ext4.ko",
	}
	if !reflect.DeepEqual(loaded, want) {
		t.Errorf("loaded %q\nwant %q", loaded, want)
	}
	if gotParams[2] != "napi_tx=1" || gotParams[0] != "" {
		t.Errorf("params %q", gotParams)
	}
	if len(done) != 5 {
		t.Errorf("done called for %q", done)
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "modules.dep")) {
		t.Fatalf("missing modules.dep: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/net/unix/unix.ko\nkernel/fs/ext2/ext2.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ix.Builtin["ext2"] || len(ix.Modules) != 12 {
		t.Errorf("builtin %v, %d modules", ix.Builtin, len(ix.Modules))
	}
	if _, err := ix.Order("ext2"); err != nil {
		t.Errorf("built-in ext2: %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gone.ko")
	if err := Load(p, ""); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v, want one naming %s", err, p)
	}
}

func TestReadList(t *testing.T) {
	p := filepath.Join(t.TempDir(), "modules")
	if got, err := ReadList(p); err != nil || got != nil {
		t.Fatalf("missing list: %q, %v", got, err)
	}
	if err := os.WriteFile(p, []byte("# storage\nvirtio_blk\n  ext4   # for /var\n\noverlay\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadList(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"virtio_blk", "ext4", "overlay"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
