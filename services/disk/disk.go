package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Config is what Run needs; main fills it from the flags.
type Config struct {
	Sys, Dev   string // sysfs and the device nodes
	Target     string // the mount point
	Label      string // the state disk's file system label
	Mkfs, Fsck string // mke2fs and e2fsck
	Cmdline    string // the kernel command line's file
	MountNS    string // the mount namespace to mount in (/proc/1/ns/mnt); "" for the caller's
	// Settle is how long the disk list must stay the same, when no disk is labelled, before a
	// blank one is formatted (see scanSettled); 0 scans once.
	Settle time.Duration
	// Devices, when set, are the only candidates (device paths), in order, instead of the
	// disks and partitions listed in Sys.
	Devices []string
	Log     func(format string, args ...any)
}

// Candidate is a block device that may be the state disk.
type Candidate struct {
	Path  string // the device node, /dev/vdb
	Size  int64  // bytes; 0 when unknown
	Whole bool   // a whole disk with no partitions (only those are formatted)
}

// inMemory is said whenever /var/lib stays in memory.
const inMemory = "/var/lib is in memory; BuildKit's cache, containerd's images and the SSH host key are lost at power off"

// Run finds, formats when blank, checks and mounts the state disk. Problems with a disk are
// said with c.Log and leave /var/lib in memory; Run returns an error only when the command
// line cannot be read.
func Run(c Config) error {
	off, err := stateOff(c.Cmdline)
	if err != nil {
		return err
	}
	if off {
		c.Log("WARNING: kiln.state=off on the kernel command line: no state disk; %s", inMemory)
		return nil
	}
	cands := make([]Candidate, 0, len(c.Devices))
	if len(c.Devices) > 0 {
		for _, d := range c.Devices {
			cands = append(cands, Candidate{Path: d, Size: deviceSize(d), Whole: true})
		}
	} else {
		cands, err = scanSettled(c)
		if err != nil {
			c.Log("WARNING: listing the disks: %v; %s", err, inMemory)
			return nil
		}
	}
	dev, fresh := choose(c, cands)
	if dev == nil {
		return nil
	}
	if !fresh && !check(c, dev.Path) {
		return nil
	}
	free, total, err := mountIn(c.MountNS, dev.Path, c.Target)
	if err != nil {
		c.Log("WARNING: mount %s on %s: %v; %s", dev.Path, c.Target, err, inMemory)
		return nil
	}
	c.Log("%s (label %s) mounted on %s: %s free of %s", dev.Path, c.Label, c.Target, human(free), human(total))
	return nil
}

// mountIn mounts dev (ext4) on target, creating target, in the mount namespace ns (a file such
// as /proc/1/ns/mnt, the node's), or in the caller's own when ns is "". It returns the free and
// total bytes of the mounted file system.
//
// A container's mounts do not reach the node by themselves: runc makes the container's root a
// slave of the node's, and a bind made shared inside the container starts a peer group of its
// own. So the mount is made from a thread that has joined the node's mount namespace. setns
// into a mount namespace needs a thread that shares no file system attributes (CLONE_FS) with
// the others, hence the unshare; the thread goes back to its own namespace when done, stays
// locked and ends with its goroutine, so no other goroutine ever runs in the node's.
func mountIn(ns, dev, target string) (free, total int64, err error) {
	type result struct {
		free, total int64
		err         error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread exits with the goroutine, or, when it is the process's
		// main thread (which Go cannot end), stays parked. Either way no other goroutine runs
		// on it. It goes back to its own namespace first all the same, because the main
		// thread's namespace is what /proc/self shows.
		runtime.LockOSThread()
		var r result
		r.free, r.total, r.err = func() (int64, int64, error) {
			if ns != "" {
				if err := unix.Unshare(unix.CLONE_FS); err != nil {
					return 0, 0, fmt.Errorf("unshare the file system attributes: %w", err)
				}
				own, err := unix.Open("/proc/thread-self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					return 0, 0, fmt.Errorf("open this thread's mount namespace: %w", err)
				}
				defer func() {
					_ = unix.Setns(own, unix.CLONE_NEWNS)
					_ = unix.Close(own)
				}()
				fd, err := unix.Open(ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					return 0, 0, fmt.Errorf("open the node's mount namespace %s: %w", ns, err)
				}
				defer func() { _ = unix.Close(fd) }()
				if err := unix.Setns(fd, unix.CLONE_NEWNS); err != nil {
					return 0, 0, fmt.Errorf("join the node's mount namespace %s: %w", ns, err)
				}
			}
			if err := os.MkdirAll(target, 0o755); err != nil {
				return 0, 0, err
			}
			if err := unix.Mount(dev, target, "ext4", unix.MS_NOATIME, ""); err != nil {
				return 0, 0, fmt.Errorf("%w (is the ext4 module loaded, with crc32c? dmesg says more)", err)
			}
			var st unix.Statfs_t
			if err := unix.Statfs(target, &st); err != nil {
				return 0, 0, nil // mounted; the sizes are only for the console line
			}
			bs := int64(st.Bsize)                                    //nolint:unconvert // int64 on amd64 and arm64, uint32 on s390x
			return int64(st.Bavail) * bs, int64(st.Blocks) * bs, nil //nolint:gosec // sizes of a disk fit
		}()
		done <- r
	}()
	r := <-done
	return r.free, r.total, r.err
}

// scanSettled scans the disks; when none is labelled, it waits for the list to settle before
// a blank disk is formatted or the node goes without: disks behind slower drivers (NVMe, USB,
// SCSI's asynchronous scan) appear some time after their modules load, and formatting another
// disk meanwhile would leave two labelled ones. It waits c.Settle, then as long as the list
// still changes, up to 5 × c.Settle in all.
func scanSettled(c Config) ([]Candidate, error) {
	cands, err := Scan(c.Sys, c.Dev)
	if err != nil || c.Settle <= 0 || slices.ContainsFunc(cands, func(d Candidate) bool {
		label, _ := ExtLabel(d.Path)
		return label == c.Label
	}) {
		return cands, err
	}
	for waited := time.Duration(0); waited < 5*c.Settle; {
		time.Sleep(c.Settle)
		waited += c.Settle
		again, err := Scan(c.Sys, c.Dev)
		if err != nil {
			return nil, err
		}
		if slices.Equal(again, cands) {
			return again, nil
		}
		cands = again
	}
	return cands, nil
}

// choose returns the labelled candidate, or formats the first blank one (fresh is then
// true). It returns nil, after a warning, when there is neither.
func choose(c Config, cands []Candidate) (dev *Candidate, fresh bool) {
	var labelled []Candidate
	for _, d := range cands {
		label, err := ExtLabel(d.Path)
		if err != nil {
			c.Log("%s: %v; not a candidate", d.Path, err)
			continue
		}
		if label == c.Label {
			labelled = append(labelled, d)
		}
	}
	if len(labelled) > 1 {
		names := make([]string, len(labelled))
		for i, d := range labelled {
			names[i] = d.Path
		}
		c.Log("WARNING: %d file systems are labelled %s (%s); using the first", len(labelled), c.Label, strings.Join(names, ", "))
	}
	if len(labelled) > 0 {
		return &labelled[0], false
	}
	for i := range cands {
		d := cands[i]
		if !d.Whole {
			continue
		}
		blank, err := Blank(d.Path)
		if err != nil {
			c.Log("%s: %v; not a candidate", d.Path, err)
			continue
		}
		if !blank {
			continue
		}
		c.Log("formatting %s (%s, blank) as ext4, label %s", d.Path, human(d.Size), c.Label)
		start := time.Now()
		// -F: mke2fs asks before formatting a whole disk otherwise. -m 0: buildkitd's own GC
		// keeps space free, reserved blocks would only hide it.
		out, err := exec.Command(c.Mkfs, "-q", "-F", "-t", "ext4", "-L", c.Label, "-m", "0", d.Path).CombinedOutput()
		if err != nil {
			c.Log("WARNING: formatting %s: %v: %s; %s", d.Path, err, strings.TrimSpace(string(out)), inMemory)
			return nil, false
		}
		c.Log("formatted %s in %.1fs", d.Path, time.Since(start).Seconds())
		return &d, true
	}
	c.Log("WARNING: no state disk (no disk labelled %s, and no blank disk): %s", c.Label, inMemory)
	return nil, false
}

// check runs e2fsck -p, which replays the journal and fixes what is safe to fix. When that
// leaves errors it runs e2fsck -y, which fixes all it can: the disk holds state (caches, a
// host key), which is better repaired than lost. It reports whether the file system may be
// mounted: not when errors remain, so that a damaged file system is never written to.
func check(c Config, dev string) bool {
	status := func(err error) int {
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &exit):
			return exit.ExitCode()
		default:
			return 8 // did not run: e2fsck's "operational error"
		}
	}
	out, err := exec.Command(c.Fsck, "-p", dev).CombinedOutput()
	switch st := status(err); {
	case st == 0:
		return true
	case st < 4: // 1 and 2: errors corrected
		c.Log("e2fsck corrected %s: %s", dev, strings.TrimSpace(string(out)))
		return true
	default:
		c.Log("e2fsck -p %s left errors (%v): %s; repairing with e2fsck -y", dev, err, strings.TrimSpace(string(out)))
	}
	out, err = exec.Command(c.Fsck, "-y", dev).CombinedOutput()
	if st := status(err); st >= 4 {
		c.Log("WARNING: e2fsck -y %s could not repair it (%v): %s; not mounting it: %s", dev, err, lastLines(string(out), 5), inMemory)
		return false
	}
	c.Log("e2fsck -y repaired %s", dev)
	return true
}

// lastLines returns the last n lines of s, trimmed.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " / ")
}

// stateOff reports whether the command line says kiln.state=off. A missing file is no switch.
func stateOff(file string) (bool, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the kernel command line: %w", err)
	}
	return slices.Contains(strings.Fields(string(data)), "kiln.state=off"), nil
}

// skipped are the kinds of block device that are never a state disk, by name prefix.
var skipped = []string{"loop", "ram", "zram", "sr", "fd", "dm-", "md", "nbd"}

// Scan lists the candidates in sys/block: every writable disk of a non-zero size and its
// partitions, disks in their natural order (vda, vdb, ..., vdz, vdaa), each followed by its
// partitions.
func Scan(sys, dev string) ([]Candidate, error) {
	entries, err := os.ReadDir(filepath.Join(sys, "block"))
	if err != nil {
		return nil, fmt.Errorf("list the block devices: %w", err)
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if !slices.ContainsFunc(skipped, func(p string) bool { return strings.HasPrefix(n, p) }) {
			names = append(names, n)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	var out []Candidate
	for _, n := range names {
		dir := filepath.Join(sys, "block", n)
		if readInt(filepath.Join(dir, "ro")) != 0 {
			continue
		}
		size := readInt(filepath.Join(dir, "size")) * 512
		if size == 0 {
			continue
		}
		parts, err := partitions(dir)
		if err != nil {
			return nil, err
		}
		out = append(out, Candidate{Path: filepath.Join(dev, n), Size: size, Whole: len(parts) == 0})
		for _, p := range parts {
			out = append(out, Candidate{Path: filepath.Join(dev, p), Size: readInt(filepath.Join(dir, p, "size")) * 512})
		}
	}
	return out, nil
}

// partitions lists the partitions of the disk whose sysfs folder is dir, in order.
func partitions(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var parts []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "partition")); err == nil {
			parts = append(parts, e.Name())
		}
	}
	slices.SortFunc(parts, func(a, b string) int {
		return int(readInt(filepath.Join(dir, a, "partition")) - readInt(filepath.Join(dir, b, "partition")))
	})
	return parts, nil
}

// readInt reads a sysfs file holding one number; anything else reads as 0.
func readInt(file string) int64 {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// deviceSize is the size of a device or file in bytes, 0 when unknown.
func deviceSize(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0
	}
	return n
}

// The ext2/3/4 superblock: 1024 bytes into the device; the magic number at 56 and the volume
// name at 120 (16 bytes, NUL-padded), both within it.
const (
	superblockOffset = 1024
	magicOffset      = 56
	labelOffset      = 120
	labelSize        = 16
	extMagic         = 0xEF53
)

// ExtLabel returns the label of the ext2/3/4 file system on path, or "" when it has none.
func ExtLabel(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, superblockOffset); errors.Is(err, io.EOF) {
		return "", nil // too small to hold a file system
	} else if err != nil {
		return "", fmt.Errorf("read the superblock: %w", err)
	}
	if binary.LittleEndian.Uint16(sb[magicOffset:]) != extMagic {
		return "", nil
	}
	label, _, _ := bytes.Cut(sb[labelOffset:labelOffset+labelSize], []byte{0})
	return string(label), nil
}

// blankSize is how much of a disk's start and of its end must be zeros for it to count as
// blank. At the start lie partition tables (MBR, GPT) and the file systems' superblocks (ext,
// FAT, ISO9660's at 32 KiB, XFS, btrfs's at 64 KiB); at the end GPT's backup header, md RAID's
// 0.90 and 1.0 superblocks and ZFS's last labels.
const blankSize = 1 << 20

// Blank reports whether the first and the last MiB of path (all of it, when smaller) are
// zeros. A disk that was only partly wiped (its first sectors) is not blank.
func Blank(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return false, fmt.Errorf("size: %w", err)
	}
	if size == 0 {
		return false, nil
	}
	zeros := func(from, to int64) (bool, error) {
		buf := make([]byte, 64<<10)
		for off := from; off < to; {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), to-off)], off)
			if slices.ContainsFunc(buf[:n], func(b byte) bool { return b != 0 }) {
				return false, nil
			}
			if errors.Is(err, io.EOF) {
				return true, nil
			}
			if err != nil {
				return false, fmt.Errorf("read: %w", err)
			}
			off += int64(n)
		}
		return true, nil
	}
	head, err := zeros(0, min(size, blankSize))
	if err != nil || !head {
		return false, err
	}
	return zeros(max(size-blankSize, blankSize), size)
}

// human writes a size in bytes the way the console lines show it: 8.0 GiB, 512 MiB.
func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	default:
		return fmt.Sprintf("%d KiB", n>>10)
	}
}
