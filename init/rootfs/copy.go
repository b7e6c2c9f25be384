package rootfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// CopyOptions tunes CopyTree.
type CopyOptions struct {
	// Skip lists absolute source paths that are left out entirely (not even an empty
	// directory is made), such as the target directory when it lies inside the source.
	Skip []string
	// Move removes each source entry once it is copied, so that moving a tree between two
	// in-memory file systems never needs twice the memory.
	Move bool
}

type inode struct{ dev, ino uint64 }

type copier struct {
	opt   CopyOptions
	dev   uint64
	links map[inode]string
}

// CopyTree copies the tree at src into the existing directory dst, keeping modes, owners,
// times, hard links, symlinks, device nodes and fifos. Directories on another file system
// than src (mount points) are created empty in dst and not entered. Owners are set with
// lchown, which needs root for anyone else's files.
func CopyTree(src, dst string, opt CopyOptions) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	c := &copier{opt: opt, dev: st.Dev, links: map[inode]string{}}
	names, err := readNames(src)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := c.copy(filepath.Join(src, n), filepath.Join(dst, n)); err != nil {
			return err
		}
	}
	return nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", dir, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", dir, err)
	}
	slices.Sort(names)
	return names, nil
}

func (c *copier) copy(src, dst string) error {
	if slices.Contains(c.opt.Skip, src) {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	mode := st.Mode & unix.S_IFMT
	switch mode {
	case unix.S_IFDIR:
		return c.dir(src, dst, &st)
	case unix.S_IFREG:
		if err := c.file(src, dst, &st); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		if err := os.Symlink(target, dst); err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("copy %s: make node %s: %w", src, dst, err)
		}
	default:
		return fmt.Errorf("copy %s: unknown file type %#o", src, mode)
	}
	if err := c.meta(dst, &st); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if c.opt.Move {
		if err := unix.Unlink(src); err != nil {
			return fmt.Errorf("copy %s: remove the original: %w", src, err)
		}
	}
	return nil
}

func (c *copier) dir(src, dst string, st *unix.Stat_t) error {
	// Writable for us while its entries are copied; the real mode comes at the end.
	if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if st.Dev == c.dev {
		names, err := readNames(src)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := c.copy(filepath.Join(src, n), filepath.Join(dst, n)); err != nil {
				return err
			}
		}
	}
	if err := c.meta(dst, st); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if c.opt.Move && st.Dev == c.dev {
		// A directory that still holds a mount point (or a skipped entry) stays behind.
		_ = unix.Rmdir(src)
	}
	return nil
}

func (c *copier) file(src, dst string, st *unix.Stat_t) error {
	key := inode{dev: st.Dev, ino: st.Ino}
	// Looked up whatever the link count: when moving, the earlier links are gone already.
	if first, ok := c.links[key]; ok {
		if err := os.Link(first, dst); err != nil {
			return fmt.Errorf("copy %s: hard link to %s: %w", src, first, err)
		}
		return nil
	}
	if st.Nlink > 1 {
		c.links[key] = dst
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

// meta sets owner, then mode (chown clears set-id bits), then times.
func (c *copier) meta(dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("set owner of %s: %w", dst, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return fmt.Errorf("set mode of %s: %w", dst, err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", dst, err)
	}
	return nil
}
