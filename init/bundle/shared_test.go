package bundle

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-os/kiln/init/internal/testenv"
)

// sharedRuntime is the runtime.json kiln writes for a container made from a shared copy.
func sharedRuntime(lower string) string {
	return `{"cgroups": [], "mounts": [], "mkdir": [], "interfaces": [], "bindNS": {}, "namespace": "",
 "kiln.rootfs": {"lower": "` + lower + `"}}`
}

func TestRootfsPlan(t *testing.T) {
	dir := t.TempDir()
	b, err := Load(writeBundle(t, filepath.Join(dir, "000-a"), config, sharedRuntime("/containers/images/sha256-ab/rootfs")))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := RootfsPlan(b, "/run/kiln/rootfs/onboot.000-a")
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(dir, "000-a", "rootfs")
	want := []Step{
		{Kind: "mkdir", Path: "/run/kiln/rootfs/onboot.000-a/upper"},
		{Kind: "mkdir", Path: "/run/kiln/rootfs/onboot.000-a/work"},
		{Kind: "attrs", Path: "/run/kiln/rootfs/onboot.000-a/upper", Source: "/containers/images/sha256-ab/rootfs"},
		{Kind: "mkdir", Path: rootfs},
		{Kind: "mount", Path: rootfs, Source: "overlay", Type: "overlay",
			Data: "lowerdir=/containers/images/sha256-ab/rootfs,upperdir=/run/kiln/rootfs/onboot.000-a/upper,workdir=/run/kiln/rootfs/onboot.000-a/work"},
	}
	if !reflect.DeepEqual(steps, want) {
		t.Errorf("plan\n%v\nwant\n%v", steps, want)
	}
	// The rest of runtime.json is untouched: LinuxKit's keys keep their meaning.
	if len(Plan(b, "/sys/fs/cgroup")) != 0 {
		t.Errorf("Plan of an empty runtime.json: %v", Plan(b, "/sys/fs/cgroup"))
	}

	plain, err := Load(writeBundle(t, filepath.Join(dir, "001-b"), config, runtimeJSON))
	if err != nil {
		t.Fatal(err)
	}
	if steps, err := RootfsPlan(plain, "/x"); err != nil || steps != nil {
		t.Errorf("a bundle with its own rootfs: %v, %v", steps, err)
	}

	for lower, wantErr := range map[string]string{
		"":                 `has no "lower"`,
		"images/x/rootfs":  "clean absolute path",
		"/images/../x":     "clean absolute path",
		"/images/a,b":      "comma or colon",
		"/images/a:b/root": "comma or colon",
	} {
		b, err := Load(writeBundle(t, filepath.Join(t.TempDir(), "c"), config, sharedRuntime(lower)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := RootfsPlan(b, "/run/x"); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("lower %q: error %v, want %q", lower, err, wantErr)
		}
	}
}

// TestRootfsOverlay mounts real overlays (as root, in a tmpfs inside a temporary folder): two
// containers made from one copy both see its files, and what one writes, the other and the
// copy never see.
func TestRootfsOverlay(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "mounting overlays needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
		testenv.SkipOrFail(t, "cannot mount a tmpfs here: %v", err)
	}
	var mounted []string
	t.Cleanup(func() {
		for i := len(mounted) - 1; i >= 0; i-- {
			_ = unix.Unmount(mounted[i], unix.MNT_DETACH)
		}
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	})
	lower := filepath.Join(dir, "containers/images/sha256-ab/rootfs")
	if err := os.MkdirAll(filepath.Join(lower, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lower, 0o751); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "usr/bin/hello"), []byte("HELLO"), 0o755); err != nil {
		t.Fatal(err)
	}
	var roots []string
	for _, name := range []string{"000-first", "001-second"} {
		b, err := Load(writeBundle(t, filepath.Join(dir, "containers/onboot", name), config, sharedRuntime(lower)))
		if err != nil {
			t.Fatal(err)
		}
		steps, err := RootfsPlan(b, filepath.Join(dir, "scratch", "onboot."+name))
		if err != nil {
			t.Fatal(err)
		}
		err = Apply(steps)
		if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EPERM) {
			testenv.SkipOrFail(t, "no overlay file system here: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		mounted = append(mounted, b.RootfsPath())
		roots = append(roots, b.RootfsPath())
	}
	for _, r := range roots {
		if data, err := os.ReadFile(filepath.Join(r, "usr/bin/hello")); err != nil || string(data) != "HELLO" {
			t.Errorf("%s: shared file = %q, %v", r, data, err)
		}
		if st, err := os.Stat(r); err != nil || st.Mode().Perm() != 0o751 {
			t.Errorf("%s: root directory %v, %v; want the copy's mode 0751", r, st.Mode(), err)
		}
	}
	// The first container writes a new file, replaces a shared one and makes a directory
	// (as runc does for mount points); none of it reaches the second or the copy.
	if err := os.WriteFile(filepath.Join(roots[0], "new"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(roots[0], "usr/bin/hello"), []byte("CHANGED"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(roots[0], "proc"), 0o555); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{roots[1], lower} {
		for _, n := range []string{"new", "proc"} {
			if _, err := os.Lstat(filepath.Join(r, n)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s/%s is visible outside the container that made it (%v)", r, n, err)
			}
		}
		if data, _ := os.ReadFile(filepath.Join(r, "usr/bin/hello")); string(data) != "HELLO" {
			t.Errorf("%s: shared file changed to %q by another container", r, data)
		}
	}
}
