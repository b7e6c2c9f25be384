package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-os/kiln/services/disk/internal/testenv"
	"golang.org/x/sys/unix"
)

// logger collects the console lines of a run.
type logger struct {
	mu    sync.Mutex
	lines []string
}

func (l *logger) Log(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// tool finds an e2fsprogs program of the build machine (Debian has them in every install).
func tool(t *testing.T, name string) string {
	t.Helper()
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); isExec(p) {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	testenv.SkipOrFail(t, "%s is missing (apt-get install e2fsprogs)", name)
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

// image writes a file of size bytes with data at offset at.
func image(t *testing.T, size int64, at int64, data []byte) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "disk-*.img")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 {
		if _, err := f.WriteAt(data, at); err != nil {
			t.Fatal(err)
		}
	}
	return f.Name()
}

func mkfs(t *testing.T, path, label string) {
	t.Helper()
	if out, err := exec.Command(tool(t, "mke2fs"), "-q", "-F", "-t", "ext4", "-L", label, path).CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v: %s", err, out)
	}
}

func TestExtLabelAndBlank(t *testing.T) {
	labelled := image(t, 16<<20, 0, nil)
	mkfs(t, labelled, "kiln-state")
	other := image(t, 16<<20, 0, nil)
	mkfs(t, other, "data")
	cases := []struct {
		name, path, label string
		blank             bool
	}{
		{"zeros", image(t, 4<<20, 0, nil), "", true},
		{"smaller than a MiB", image(t, 100, 0, nil), "", true},
		{"empty", image(t, 0, 0, nil), "", false},
		{"a byte late in the first MiB", image(t, 4<<20, blankSize-1, []byte{1}), "", false},
		{"a byte after the first MiB", image(t, 4<<20, blankSize, []byte{1}), "", true},
		{"a byte in the last MiB", image(t, 4<<20, 4<<20-1, []byte{1}), "", false},
		{"a byte in the second of two MiB", image(t, 2<<20-512, 2<<20-513, []byte{1}), "", false},
		{"an MBR signature", image(t, 4<<20, 510, []byte{0x55, 0xaa}), "", false},
		{"ext4 labelled kiln-state", labelled, "kiln-state", false},
		{"ext4 labelled data", other, "data", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			label, err := ExtLabel(c.path)
			if err != nil || label != c.label {
				t.Errorf("ExtLabel = %q, %v; want %q", label, err, c.label)
			}
			blank, err := Blank(c.path)
			if err != nil || blank != c.blank {
				t.Errorf("Blank = %v, %v; want %v", blank, err, c.blank)
			}
		})
	}
	if _, err := ExtLabel(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("ExtLabel of a missing device: no error")
	}
}

// TestScan reads a sysfs fixture laid out as the kernel lays out /sys/block.
func TestScan(t *testing.T) {
	sys := t.TempDir()
	put := func(rel, content string) {
		t.Helper()
		p := filepath.Join(sys, "block", rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	disk := func(name, size, ro string) {
		put(name+"/size", size)
		put(name+"/ro", ro)
	}
	disk("vdaa", "2048", "0")
	disk("vdb", "4096", "0")
	disk("vda", "8192", "0")
	put("vda/vda2/partition", "2")
	put("vda/vda2/size", "100")
	put("vda/vda1/partition", "1")
	put("vda/vda1/size", "200")
	put("vda/queue/rotational", "0") // a folder of the disk that is not a partition
	disk("vdc", "4096", "1")         // read-only
	disk("vdd", "0", "0")            // no medium
	disk("loop0", "4096", "0")
	disk("sr0", "4096", "0")
	disk("dm-0", "4096", "0")
	got, err := Scan(sys, "/dev")
	if err != nil {
		t.Fatal(err)
	}
	want := []Candidate{
		{Path: "/dev/vda", Size: 8192 * 512},
		{Path: "/dev/vda1", Size: 200 * 512},
		{Path: "/dev/vda2", Size: 100 * 512},
		{Path: "/dev/vdb", Size: 4096 * 512, Whole: true},
		{Path: "/dev/vdaa", Size: 2048 * 512, Whole: true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Scan =\n%+v\nwant\n%+v", got, want)
	}
	if _, err := Scan(filepath.Join(sys, "missing"), "/dev"); err == nil {
		t.Error("Scan of a missing sysfs: no error")
	}
}

// TestChoose formats only a blank whole disk, never one holding another file system or a
// partitioned one, and finds the labelled one afterwards. Files stand in for the disks.
func TestChoose(t *testing.T) {
	other := image(t, 16<<20, 0, nil)
	mkfs(t, other, "data")
	before, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	partitioned := image(t, 16<<20, 0, nil) // zeros, but sysfs said it has partitions
	blank := image(t, 16<<20, 0, nil)
	var l logger
	c := Config{Label: "kiln-state", Mkfs: tool(t, "mke2fs"), Log: l.Log}
	cands := []Candidate{{Path: other, Whole: true}, {Path: partitioned}, {Path: blank, Size: 16 << 20, Whole: true}}

	dev, fresh := choose(c, cands)
	if dev == nil || dev.Path != blank || !fresh {
		t.Fatalf("first choose = %+v, %v; want the blank disk, formatted\n%s", dev, fresh, &l)
	}
	if label, _ := ExtLabel(blank); label != "kiln-state" {
		t.Errorf("the blank disk's label after formatting = %q", label)
	}
	if !strings.Contains(l.String(), "formatting "+blank+" (16 MiB, blank) as ext4, label kiln-state") {
		t.Errorf("no formatting line:\n%s", &l)
	}
	if after, _ := os.ReadFile(other); !bytes.Equal(before, after) {
		t.Error("the disk with another file system was written to")
	}
	if b, _ := Blank(partitioned); !b {
		t.Error("the partitioned disk was written to")
	}

	l = logger{}
	c.Log = l.Log
	c.Mkfs = "/nonexistent/mke2fs" // a second format would fail loudly
	dev, fresh = choose(c, cands)
	if dev == nil || dev.Path != blank || fresh {
		t.Fatalf("second choose = %+v, %v; want the labelled disk, not formatted\n%s", dev, fresh, &l)
	}

	l = logger{}
	c.Log = l.Log
	if dev, _ := choose(c, cands[:2]); dev != nil {
		t.Errorf("choose without a blank or labelled disk = %+v", dev)
	}
	if !strings.Contains(l.String(), "WARNING: no state disk (no disk labelled kiln-state, and no blank disk)") {
		t.Errorf("no warning:\n%s", &l)
	}
}

func TestFormatFailureIsAWarning(t *testing.T) {
	var l logger
	c := Config{Label: "kiln-state", Mkfs: "/bin/false", Log: l.Log}
	if dev, _ := choose(c, []Candidate{{Path: image(t, 4<<20, 0, nil), Whole: true}}); dev != nil {
		t.Fatalf("choose = %+v after a failed format", dev)
	}
	if !strings.Contains(l.String(), "WARNING: formatting") || !strings.Contains(l.String(), inMemory) {
		t.Errorf("no warning:\n%s", &l)
	}
}

func TestStateOff(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "cmdline")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var l logger
	blank := image(t, 4<<20, 0, nil)
	c := Config{Label: "kiln-state", Mkfs: "/bin/false", Cmdline: write("panic=1 kiln.state=off\n"), Devices: []string{blank}, Log: l.Log}
	if err := Run(c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(l.String(), "kiln.state=off") || strings.Contains(l.String(), "formatting") {
		t.Errorf("kiln.state=off:\n%s", &l)
	}
	for _, s := range []string{"panic=1 kiln.state=offish", ""} {
		if off, err := stateOff(write(s)); off || err != nil {
			t.Errorf("stateOff(%q) = %v, %v", s, off, err)
		}
	}
	if off, err := stateOff(filepath.Join(dir, "missing")); off || err != nil {
		t.Errorf("stateOff(missing) = %v, %v", off, err)
	}
}

// TestRunOnALoopDevice formats a blank loop device, mounts it, and on a second run (a reboot)
// mounts the same file system again without formatting it: what was written is still there.
func TestRunOnALoopDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "loop devices and mounts need root (run the tests as root)")
	}
	loop := loopDevice(t, image(t, 64<<20, 0, nil))
	target := filepath.Join(t.TempDir(), "var", "lib")
	boot := func() string {
		t.Helper()
		var l logger
		c := Config{Target: target, Label: "kiln-state", Mkfs: tool(t, "mke2fs"), Fsck: tool(t, "e2fsck"),
			Cmdline: filepath.Join(t.TempDir(), "no-cmdline"), Devices: []string{loop}, Log: l.Log}
		if err := Run(c); err != nil {
			t.Fatal(err)
		}
		return l.String()
	}
	unmount := func() {
		t.Helper()
		if err := unix.Unmount(target, 0); err != nil {
			t.Fatalf("unmount: %v", err)
		}
	}
	first := boot()
	if !strings.Contains(first, "formatting "+loop+" (64 MiB, blank)") || !strings.Contains(first, loop+" (label kiln-state) mounted on "+target+": ") {
		t.Fatalf("first boot:\n%s", first)
	}
	t.Cleanup(func() { _ = unix.Unmount(target, unix.MNT_DETACH) })
	if err := os.MkdirAll(filepath.Join(target, "buildkit"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "buildkit", "state"), []byte("cache\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unmount()
	second := boot()
	if strings.Contains(second, "formatting") || !strings.Contains(second, "mounted on "+target) {
		t.Fatalf("second boot:\n%s", second)
	}
	if data, err := os.ReadFile(filepath.Join(target, "buildkit", "state")); err != nil || string(data) != "cache\n" {
		t.Errorf("after the second boot the state is %q, %v", data, err)
	}
	unmount()
}

// TestMountInAnotherNamespace mounts the disk in another process's mount namespace, as the
// container mounts it in the node's: the mount is there, and not in the test's own.
func TestMountInAnotherNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "mount namespaces, loop devices and mounts need root (run the tests as root)")
	}
	loop := loopDevice(t, image(t, 32<<20, 0, nil))
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		testenv.SkipOrFail(t, "unshare is missing (apt-get install util-linux)")
	}
	node := exec.Command(unshare, "--mount", "--propagation", "private", "sleep", "600")
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Process.Kill(); _ = node.Wait() })
	ns := fmt.Sprintf("/proc/%d/ns/mnt", node.Process.Pid)
	own, _ := os.Readlink("/proc/self/ns/mnt")
	for i := 0; ; i++ {
		if theirs, _ := os.Readlink(ns); theirs != "" && theirs != own {
			break
		}
		if i == 500 {
			t.Fatal("unshare did not make a mount namespace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	target := filepath.Join(t.TempDir(), "var", "lib")
	var l logger
	c := Config{Target: target, Label: "kiln-state", Mkfs: tool(t, "mke2fs"), Fsck: tool(t, "e2fsck"), MountNS: ns,
		Cmdline: filepath.Join(t.TempDir(), "no-cmdline"), Devices: []string{loop}, Log: l.Log}
	if err := Run(c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(l.String(), "mounted on "+target) {
		t.Fatalf("no mount:\n%s", &l)
	}
	theirs, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", node.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	ours, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(theirs, []byte(" "+target+" ")) {
		t.Errorf("the other namespace has no mount on %s:\n%s", target, theirs)
	}
	if bytes.Contains(ours, []byte(" "+target+" ")) {
		t.Errorf("the test's own namespace has the mount on %s", target)
	}
	// No thread of this process is left in the other namespace.
	tasks, err := filepath.Glob("/proc/self/task/*/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	theirNS, _ := os.Readlink(ns)
	for _, task := range tasks {
		if l, _ := os.Readlink(task); l == theirNS {
			t.Errorf("thread %s is still in the other mount namespace", task)
		}
	}
	// The other namespace ends (and its mount with it); a mount in our own lands here.
	_ = node.Process.Kill()
	_ = node.Wait()
	c.MountNS, c.Target = "", filepath.Join(t.TempDir(), "own")
	l = logger{}
	c.Log = l.Log
	if err := Run(c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(c.Target, unix.MNT_DETACH) })
	if ours, _ := os.ReadFile("/proc/self/mountinfo"); !bytes.Contains(ours, []byte(" "+c.Target+" ")) {
		t.Errorf("no mount on %s in the test's own namespace:\n%s", c.Target, &l)
	}
}

// loopDevice attaches file to a free loop device for the test.
func loopDevice(t *testing.T, file string) string {
	t.Helper()
	losetup, err := exec.LookPath("losetup")
	if err != nil {
		testenv.SkipOrFail(t, "losetup is missing (apt-get install mount)")
	}
	out, err := exec.Command(losetup, "--find", "--show", file).Output()
	if err != nil {
		testenv.SkipOrFail(t, "losetup: %v (the kernel needs loop devices)", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command(losetup, "-d", loop).Run() })
	return loop
}

func TestHuman(t *testing.T) {
	for n, want := range map[int64]string{8 << 30: "8.0 GiB", 1536 << 20: "1.5 GiB", 512 << 20: "512 MiB", 4096: "4 KiB"} {
		if got := human(n); got != want {
			t.Errorf("human(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestCheckWithFakeFsck drives check with scripts standing in for e2fsck, for the exit
// statuses a real file system cannot be made to give on demand: -p leaves errors that -y
// repairs (mounted), and errors -y cannot repair (not mounted, and said).
func TestCheckWithFakeFsck(t *testing.T) {
	fake := func(p, y int) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "e2fsck")
		script := fmt.Sprintf("#!/bin/sh\necho \"e2fsck $1 $2\"\ncase $1 in -p) exit %d;; -y) exit %d;; esac\nexit 8\n", p, y)
		if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, c := range []struct {
		name  string
		p, y  int
		mount bool
		said  string
	}{
		{"clean", 0, 8, true, ""},
		{"corrected by -p", 1, 8, true, "e2fsck corrected /dev/x"},
		{"repaired by -y", 4, 1, true, "e2fsck -y repaired /dev/x"},
		{"beyond repair", 4, 4, false, "WARNING: e2fsck -y /dev/x could not repair it (exit status 4): e2fsck -y /dev/x; not mounting it"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l logger
			if got := check(Config{Fsck: fake(c.p, c.y), Log: l.Log}, "/dev/x"); got != c.mount {
				t.Errorf("check = %v, want %v\n%s", got, c.mount, &l)
			}
			if c.said != "" && !strings.Contains(l.String(), c.said) {
				t.Errorf("console:\n%s\nwant a line with %q", &l, c.said)
			}
		})
	}
	var l logger
	if check(Config{Fsck: filepath.Join(t.TempDir(), "missing"), Log: l.Log}, "/dev/x") {
		t.Errorf("check mounted with no e2fsck at all:\n%s", &l)
	}
}
