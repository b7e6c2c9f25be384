package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// NewRootDir is where BindRoot mounts the new root before switching to it.
const NewRootDir = "/.kiln-root"

// BindRoot makes the initramfs root usable by container runtimes without copying a byte.
// pivot_root(2) refuses a root mount that has no parent, which the kernel's initial rootfs
// never has; a bind mount of that same tree does. So BindRoot binds "/" (not recursively) onto
// NewRootDir, moves the mounts in it along and switches to it with MS_MOVE and chroot, then
// removes the empty NewRootDir seen inside. The tree, its memory and its file system (a tmpfs
// when the command line names no root=) stay as they were. mounts is the current mount table.
func BindRoot(mounts []MountInfo) error {
	if err := os.Mkdir(NewRootDir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("make %s for the new root: %w", NewRootDir, err)
	}
	if err := unix.Mount("/", NewRootDir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind the initramfs root onto %s: %w", NewRootDir, err)
	}
	if err := SwitchRoot(NewRootDir, TopMounts(mounts)); err != nil {
		return err
	}
	// The bind shows the mount point itself as an empty folder of the new root.
	if err := os.Remove(NewRootDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s after the switch: %w", NewRootDir, err)
	}
	return nil
}

// TopMounts returns the mount points that sit directly on the visible "/" mount, except
// NewRootDir, sorted.
func TopMounts(mounts []MountInfo) []string {
	rootID := -1
	for _, m := range mounts {
		if m.Point == "/" {
			rootID = m.ID
		}
	}
	var out []string
	for _, m := range mounts {
		if m.Parent == rootID && m.Point != "/" && m.Point != NewRootDir && !slices.Contains(out, m.Point) {
			out = append(out, m.Point)
		}
	}
	slices.Sort(out)
	return out
}

// SwitchRoot makes newRoot the root directory: it moves each mount in moves under newRoot,
// moves newRoot onto "/" and changes root and working directory to it.
func SwitchRoot(newRoot string, moves []string) error {
	for _, m := range moves {
		target := filepath.Join(newRoot, m)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("switch root: make %s: %w", target, err)
		}
		if err := unix.Mount(m, target, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("switch root: move the mount %s to %s: %w", m, target, err)
		}
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("switch root: enter %s: %w", newRoot, err)
	}
	if err := unix.Mount(newRoot, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch root: move %s onto /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch root: chroot into %s: %w", newRoot, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("switch root: enter the new /: %w", err)
	}
	return nil
}

// EnsureConsole gives the process a standard input, output and error on /dev/console when
// the kernel could not open one (no /dev/console in the initramfs): it mounts devtmpfs on
// /dev if needed and opens the console there. It uses raw system calls only, so that no
// other file (such as the Go runtime's poller) can take descriptors 0 to 2 first; call it
// before anything else opens a file. It reports whether it had to do anything.
func EnsureConsole() (bool, error) {
	var missing []int
	for fd := 0; fd <= 2; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			missing = append(missing, fd)
		}
	}
	if len(missing) == 0 {
		return false, nil
	}
	_ = unix.Mkdir("/dev", 0o755)
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		if merr := unix.Mount("devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"); merr != nil && !errors.Is(merr, unix.EBUSY) {
			return true, fmt.Errorf("open /dev/console: %w; mount devtmpfs on /dev: %w", err, merr)
		}
		fd, err = unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			return true, fmt.Errorf("open /dev/console after mounting devtmpfs: %w", err)
		}
	}
	for _, want := range missing {
		if fd == want {
			continue
		}
		if err := unix.Dup3(fd, want, 0); err != nil {
			return true, fmt.Errorf("use /dev/console as descriptor %d: %w", want, err)
		}
	}
	if !slices.Contains(missing, fd) {
		_ = unix.Close(fd)
	}
	return true, nil
}
