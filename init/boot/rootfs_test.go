package boot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-os/kiln/init/console"
	"github.com/kiln-os/kiln/init/internal/testenv"
)

func TestHasFilesystem(t *testing.T) {
	list := filepath.Join(t.TempDir(), "filesystems")
	if err := os.WriteFile(list, []byte("nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for fs, want := range map[string]bool{"overlay": true, "ext4": true, "nodev": false, "squashfs": false} {
		if got, err := hasFilesystem(list, fs); err != nil || got != want {
			t.Errorf("hasFilesystem(%s) = %v, %v; want %v", fs, got, err, want)
		}
	}
	if _, err := hasFilesystem(filepath.Join(t.TempDir(), "none"), "overlay"); err == nil {
		t.Error("a missing list must be an error")
	}
}

// TestMountSharedRootfs runs the rootfs step on a system laid out as kiln builds one (in a
// tmpfs in a temporary folder, as root): every container of the shared image, in every
// section, gets an overlay; a container with its own rootfs/ and an unreadable bundle are
// left alone.
func TestMountSharedRootfs(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "the rootfs step mounts file systems: needs root")
	}
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "mode=0755"); err != nil {
		testenv.SkipOrFail(t, "cannot mount a tmpfs here: %v", err)
	}
	var mounts []string
	t.Cleanup(func() {
		for i := len(mounts) - 1; i >= 0; i-- {
			_ = unix.Unmount(mounts[i], unix.MNT_DETACH)
		}
		_ = unix.Unmount(root, unix.MNT_DETACH)
	})
	p := DefaultPaths()
	for _, f := range []*string{&p.Onboot, &p.Onshutdown, &p.Services, &p.SharedScratch} {
		*f = filepath.Join(root, *f)
	}
	p.Filesystems = filepath.Join(root, "filesystems")
	write := func(name, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("filesystems", "nodev\ttmpfs\nnodev\toverlay\n")
	lower := filepath.Join(root, "containers/images/sha256-ab/rootfs")
	write("containers/images/sha256-ab/rootfs/usr/bin/hello", "HELLO")
	cfg := `{"ociVersion": "1.3.0", "root": {"path": "rootfs", "readonly": true}}`
	shared := `{"mounts": [], "kiln.rootfs": {"lower": "` + lower + `"}}`
	sharing := []string{"containers/onboot/000-hello-onboot", "containers/onshutdown/000-bye", "containers/services/hello", "containers/services/crasher"}
	for _, b := range sharing {
		write(b+"/config.json", cfg)
		write(b+"/runtime.json", shared)
	}
	write("containers/services/own/config.json", cfg)
	write("containers/services/own/rootfs/mine", "x")
	write("containers/services/broken/config.json", "{not json")

	var out bytes.Buffer
	s := &State{Console: console.New(&out), Paths: p}
	err := mountSharedRootfs(context.Background(), s)
	for _, b := range sharing {
		mounts = append(mounts, filepath.Join(root, b, "rootfs"))
	}
	mounts = append([]string{p.SharedScratch}, mounts...)
	if errors.Is(err, unix.ENODEV) {
		testenv.SkipOrFail(t, "no overlay file system here: %v", err)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, b := range sharing {
		if data, err := os.ReadFile(filepath.Join(root, b, "rootfs/usr/bin/hello")); err != nil || string(data) != "HELLO" {
			t.Errorf("%s: %q, %v", b, data, err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "containers/services/hello/rootfs/written"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{"containers/services/crasher/rootfs", "containers/images/sha256-ab/rootfs"} {
		if _, err := os.Stat(filepath.Join(root, other, "written")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a write by one container shows in %s (%v)", other, err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "containers/services/own/rootfs")); len(ents) != 1 {
		t.Errorf("a container with its own rootfs/ was changed: %v", ents)
	}
	if ents, _ := os.ReadDir(p.SharedScratch); len(ents) != len(sharing) {
		t.Errorf("scratch holds %d folders, want one per sharing container", len(ents))
	}
}

// TestMountSharedRootfsFailure: a copy that is missing is a failure naming the container and
// the path, and the other containers still get theirs.
func TestMountSharedRootfsFailure(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "the rootfs step mounts file systems: needs root")
	}
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "mode=0755"); err != nil {
		testenv.SkipOrFail(t, "cannot mount a tmpfs here: %v", err)
	}
	good := filepath.Join(root, "containers/services/good/rootfs")
	scratch := filepath.Join(root, "scratch")
	t.Cleanup(func() {
		_ = unix.Unmount(good, unix.MNT_DETACH)
		_ = unix.Unmount(scratch, unix.MNT_DETACH)
		_ = unix.Unmount(root, unix.MNT_DETACH)
	})
	p := Paths{Services: filepath.Join(root, "containers/services"), SharedScratch: scratch, Filesystems: filepath.Join(root, "fs")}
	if err := os.WriteFile(p.Filesystems, []byte("nodev\toverlay\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lower := filepath.Join(root, "images/x/rootfs")
	if err := os.MkdirAll(lower, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]string{"good": lower, "lost": filepath.Join(root, "images/missing/rootfs")} {
		dir := filepath.Join(p.Services, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"ociVersion": "1.3.0"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "runtime.json"), []byte(`{"kiln.rootfs": {"lower": "`+l+`"}}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	err := mountSharedRootfs(context.Background(), &State{Console: console.New(&out), Paths: p})
	if errors.Is(err, unix.ENODEV) {
		testenv.SkipOrFail(t, "no overlay file system here: %v", err)
	}
	if err == nil || !strings.Contains(err.Error(), "services lost: root file system from "+filepath.Join(root, "images/missing/rootfs")) {
		t.Fatalf("error %v; want one naming the container and its missing copy", err)
	}
	if strings.Contains(err.Error(), "services good") {
		t.Errorf("the good container failed too: %v", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(good, &st); err != nil || st.Type != unix.OVERLAYFS_SUPER_MAGIC {
		t.Errorf("the good container has no overlay (%v, type %#x)", err, st.Type)
	}
}
