package bundle

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// writeBundle writes a bundle as kiln's assembler does: config.json, runtime.json, rootfs/.
func writeBundle(t *testing.T, dir, config, runtime string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if runtime != "" {
		if err := os.WriteFile(filepath.Join(dir, "runtime.json"), []byte(runtime), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const config = `{"ociVersion": "1.3.0", "process": {"args": ["/bin/true"], "cwd": "/"}, "root": {"path": "rootfs"},
 "annotations": {"kiln.optional": "true", "kiln.restart": "on-failure"}}`

// The runtime.json that kiln's assemble/spec writes: every key present.
const runtimeJSON = `{
    "cgroups": ["kiln/dhcp"],
    "mounts": [
        {"destination": "/var/lib/app", "type": "bind", "source": "/var/lib", "options": ["rbind", "rshared", "ro"]},
        {"destination": "tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=10m"]},
        {"destination": "/merged", "type": "overlay", "source": "overlay", "options": ["lowerdir=/lower", "upperdir=/run/up", "workdir=/run/work"]}
    ],
    "mkdir": ["/var/lib/app/data", "etc/app"],
    "interfaces": [],
    "bindNS": {"cgroup": "", "ipc": "", "mnt": "", "net": "/run/netns/x", "pid": "", "user": "", "uts": ""},
    "namespace": ""
}`

func TestLoadAndList(t *testing.T) {
	dir := t.TempDir()
	writeBundle(t, filepath.Join(dir, "001-format"), config, runtimeJSON)
	writeBundle(t, filepath.Join(dir, "000-sysctl"), `{"ociVersion": "1.3.0"}`, "")
	if err := os.WriteFile(filepath.Join(dir, "stray-file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bs, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].Name != "sysctl" || bs[0].ID != "000-sysctl" || bs[1].Name != "format" {
		t.Fatalf("bundles %+v", bs)
	}
	b := bs[1]
	if !b.Optional() || bs[0].Optional() {
		t.Error("Optional wrong")
	}
	if r, err := b.Restart(); err != nil || r != "on-failure" {
		t.Errorf("Restart = %q, %v", r, err)
	}
	if r, err := bs[0].Restart(); err != nil || r != "always" {
		t.Errorf("default Restart = %q, %v", r, err)
	}
	if got := b.RootfsPath(); got != filepath.Join(dir, "001-format", "rootfs") {
		t.Errorf("RootfsPath = %s", got)
	}
	if got := b.Runtime.Unsupported(); !reflect.DeepEqual(got, []string{"bindNS.net"}) {
		t.Errorf("Unsupported = %q", got)
	}
	if bs, err := List(filepath.Join(dir, "none")); err != nil || bs != nil {
		t.Errorf("missing folder: %v, %v", bs, err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	writeBundle(t, filepath.Join(dir, "bad"), `{"process": `, "")
	writeBundle(t, filepath.Join(dir, "badrt"), `{}`, `{"mounts": 3}`)
	for name, want := range map[string]string{"bad": "not a valid OCI runtime spec", "badrt": "runtime.json", "missing": "read the runtime spec"} {
		if _, err := Load(filepath.Join(dir, name)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%s) = %v, want %q", name, err, want)
		}
	}
	b := &Bundle{Name: "x", Spec: &specs.Spec{Annotations: map[string]string{AnnotationRestart: "sometimes"}}}
	if _, err := b.Restart(); err == nil || !strings.Contains(err.Error(), "always, on-failure or never") {
		t.Errorf("bad restart: %v", err)
	}
}

func TestPlan(t *testing.T) {
	dir := writeBundle(t, filepath.Join(t.TempDir(), "svc"), config, runtimeJSON)
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	got := Plan(b, "/sys/fs/cgroup")
	want := []Step{
		{Kind: "mkdir", Path: "/var/lib/app"},
		// A bind with ro and rshared is three calls: the bind, a read-only remount, the propagation.
		{Kind: "mount", Path: "/var/lib/app", Source: "/var/lib", Type: "bind", Flags: unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY},
		{Kind: "mount", Path: "/var/lib/app", Flags: unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY},
		{Kind: "mount", Path: "/var/lib/app", Flags: unix.MS_SHARED | unix.MS_REC},
		// Relative paths are inside the container's root file system.
		{Kind: "mkdir", Path: filepath.Join(rootfs, "tmp")},
		{Kind: "mount", Path: filepath.Join(rootfs, "tmp"), Source: "tmpfs", Type: "tmpfs", Flags: unix.MS_NOSUID, Data: "size=10m"},
		// An overlay's upper and work directories are made first.
		{Kind: "mkdir", Path: "/merged"},
		{Kind: "mkdir", Path: "/run/up"},
		{Kind: "mkdir", Path: "/run/work"},
		{Kind: "mount", Path: "/merged", Source: "overlay", Type: "overlay", Data: "lowerdir=/lower,upperdir=/run/up,workdir=/run/work"},
		{Kind: "mkdir", Path: "/var/lib/app/data"},
		{Kind: "mkdir", Path: filepath.Join(rootfs, "etc/app")},
		{Kind: "mkdir", Path: "/sys/fs/cgroup/kiln/dhcp"},
	}
	if !reflect.DeepEqual(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w Step
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("step %d:\n got %s\nwant %s", i, g, w)
			}
		}
	}
}

func TestMountOptions(t *testing.T) {
	tests := []struct {
		opts  []string
		flags uintptr
		data  string
	}{
		{nil, 0, ""},
		{[]string{"ro", "nosuid", "nodev", "noexec"}, unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{[]string{"ro", "rw"}, 0, ""},
		{[]string{"defaults", "mode=0755", "size=1g"}, 0, "mode=0755,size=1g"},
		{[]string{"rbind", "rslave"}, unix.MS_BIND | unix.MS_REC | unix.MS_SLAVE, ""},
		{[]string{"noatime", "atime"}, 0, ""},
	}
	for _, tt := range tests {
		flags, data := MountOptions(tt.opts)
		if flags != tt.flags || data != tt.data {
			t.Errorf("MountOptions(%q) = %#x, %q; want %#x, %q", tt.opts, flags, data, tt.flags, tt.data)
		}
	}
}

// Apply with mkdir steps only: no privileges needed. A failing step names itself.
func TestApplyMkdir(t *testing.T) {
	dir := t.TempDir()
	steps := []Step{{Kind: "mkdir", Path: filepath.Join(dir, "a/b/c")}, {Kind: "mkdir", Path: filepath.Join(dir, "d")}}
	if err := Apply(steps); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a/b/c", "d"} {
		if st, err := os.Stat(filepath.Join(dir, p)); err != nil || !st.IsDir() {
			t.Errorf("%s not made: %v", p, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Apply([]Step{{Kind: "mkdir", Path: filepath.Join(dir, "file/sub")}})
	if err == nil || !strings.Contains(err.Error(), "mkdir "+filepath.Join(dir, "file/sub")) {
		t.Fatalf("err = %v", err)
	}
}
