package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// NewRootDir is where MoveToTmpfs builds the new root before switching to it.
const NewRootDir = "/.kiln-root"

// MoveToTmpfs moves the initramfs root into a fresh tmpfs and makes that the root, so that
// container runtimes can use pivot_root (which the kernel refuses on the initial rootfs).
// Files are moved one by one (copied, then removed), so the move needs little extra memory.
// mounts is the current mount table; mounts directly under "/" are moved along.
func MoveToTmpfs(mounts []MountInfo) error {
	if err := os.Mkdir(NewRootDir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("make %s for the new root: %w", NewRootDir, err)
	}
	if err := unix.Mount("tmpfs", NewRootDir, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mount a tmpfs on %s for the new root: %w", NewRootDir, err)
	}
	if err := CopyTree("/", NewRootDir, CopyOptions{Skip: []string{NewRootDir}, Move: true}); err != nil {
		return fmt.Errorf("move the initramfs into the new root: %w", err)
	}
	return SwitchRoot(NewRootDir, TopMounts(mounts))
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
