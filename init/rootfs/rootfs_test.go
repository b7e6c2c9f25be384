package rootfs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const initramfsMountInfo = `1 1 0:2 / / rw - rootfs rootfs rw,size=1000k
19 1 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw,mode=755
20 1 0:20 / /proc rw,nosuid,nodev,noexec - proc proc rw
21 19 0:21 / /dev/pts rw - devpts devpts rw
22 1 0:22 / /mnt/my\040disk rw - ext4 /dev/vda1 rw
`

// boundMountInfo is the table after BindRoot: the visible "/" is a bind of the rootfs.
const boundMountInfo = `1 1 0:2 / / rw - rootfs rootfs rw
30 1 0:2 / / rw - rootfs rootfs rw
31 30 0:5 / /dev rw - devtmpfs devtmpfs rw
32 30 0:20 / /proc rw - proc proc rw
`

const switchedMountInfo = `1 1 0:2 / / rw - rootfs rootfs rw
30 1 0:30 / / rw - tmpfs tmpfs rw,mode=755
31 30 0:5 / /dev rw - devtmpfs devtmpfs rw
32 30 0:20 / /proc rw - proc proc rw
33 30 8:1 / /var/lib rw - ext4 /dev/sda1 rw
34 33 0:40 / /var/lib/docker rw - overlay overlay rw
35 30 0:41 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
`

func TestParseMountInfo(t *testing.T) {
	ms, err := ParseMountInfo(strings.NewReader(initramfsMountInfo))
	if err != nil {
		t.Fatal(err)
	}
	want := MountInfo{ID: 22, Parent: 1, Root: "/", Point: "/mnt/my disk", FSType: "ext4", Source: "/dev/vda1"}
	if len(ms) != 5 || ms[4] != want {
		t.Fatalf("got %+v", ms)
	}
	for _, bad := range []string{"1 1 0:2 / /\n", "x 1 0:2 / / rw - rootfs rootfs\n", "1 1 0:2 / / rw -\n"} {
		if _, err := ParseMountInfo(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseMountInfo(%q) succeeded", bad)
		}
	}
}

func TestRootIsInitramfsAndTopMounts(t *testing.T) {
	tests := []struct {
		name      string
		info      string
		initramfs bool
		top       []string
	}{
		{"initramfs", initramfsMountInfo, true, []string{"/dev", "/mnt/my disk", "/proc"}},
		{"after the switch", switchedMountInfo, false, []string{"/dev", "/proc", "/sys/fs/cgroup", "/var/lib"}},
		{"after BindRoot", boundMountInfo, false, []string{"/dev", "/proc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := ParseMountInfo(strings.NewReader(tt.info))
			if err != nil {
				t.Fatal(err)
			}
			if got := RootIsInitramfs(ms); got != tt.initramfs {
				t.Errorf("RootIsInitramfs = %v", got)
			}
			if got := TopMounts(ms); !reflect.DeepEqual(got, tt.top) {
				t.Errorf("TopMounts = %q, want %q", got, tt.top)
			}
		})
	}
}

func TestUnmountOrder(t *testing.T) {
	ms, err := ParseMountInfo(strings.NewReader(switchedMountInfo))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range UnmountOrder(ms) {
		got = append(got, m.Point)
	}
	// Only file systems with data, children before parents.
	if want := []string{"/var/lib/docker", "/var/lib"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("UnmountOrder = %q, want %q", got, want)
	}
}

func TestBaseActionsInATempRoot(t *testing.T) {
	root := t.TempDir()
	var acts []Action
	for _, a := range Base() {
		if _, ok := a.(Mount); !ok {
			acts = append(acts, a)
		}
	}
	for range 2 { // the second run finds everything in place
		if err := CreateAll(root, acts, func(err error) { t.Errorf("warning: %v", err) }); err != nil {
			t.Fatal(err)
		}
	}
	if l, err := os.Readlink(filepath.Join(root, "dev/fd")); err != nil || l != "/proc/self/fd" {
		t.Errorf("/dev/fd: %q, %v", l, err)
	}
	if st, err := os.Stat(filepath.Join(root, "var/lib/containerd")); err != nil || !st.IsDir() {
		t.Errorf("/var/lib/containerd: %v", err)
	}
}

func TestCreateAllOptionalMount(t *testing.T) {
	root := t.TempDir()
	bad := Mount{Source: "none", Target: "/x", FSType: "no-such-filesystem-type"}
	var warned []error
	opt := bad
	opt.Optional = true
	if err := CreateAll(root, []Action{opt, Dir{Path: "/after", Mode: 0o755}}, func(err error) { warned = append(warned, err) }); err != nil {
		t.Fatalf("optional mount failure stopped the set: %v", err)
	}
	if len(warned) != 1 {
		t.Fatalf("warnings: %v", warned)
	}
	if _, err := os.Stat(filepath.Join(root, "after")); err != nil {
		t.Fatal("the action after a failed optional mount did not run")
	}
	if err := CreateAll(root, []Action{bad}, func(error) {}); err == nil || !strings.Contains(err.Error(), "/x") {
		t.Fatalf("required mount failure: %v", err)
	}
}

func TestIsMountPoint(t *testing.T) {
	if mp, err := IsMountPoint("/"); err != nil || !mp {
		t.Errorf("IsMountPoint(/) = %v, %v", mp, err)
	}
	dir := t.TempDir()
	must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	if mp, err := IsMountPoint(filepath.Join(dir, "sub")); err != nil || mp {
		t.Errorf("IsMountPoint(plain dir) = %v, %v", mp, err)
	}
	if mp, err := IsMountPoint("/proc"); err == nil && !mp {
		t.Errorf("IsMountPoint(/proc) = false")
	}
}

// On a regular file every write appends, so the test sees each controller written separately.
func TestEnableControllers(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte("cpuset cpu io memory pids\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), nil, 0o644))
	on, err := EnableControllers(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"cpuset", "cpu", "io", "memory", "pids"}; !reflect.DeepEqual(on, want) {
		t.Errorf("enabled %q", on)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if string(data) != "+cpuset+cpu+io+memory+pids" {
		t.Errorf("wrote %q", data)
	}
	if _, err := EnableControllers(t.TempDir()); err == nil || !strings.Contains(err.Error(), "cgroup2 mounted") {
		t.Errorf("missing cgroup.controllers: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
