package pkgbuild

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-os/kiln/pkg/tag"
)

// buildContext returns the folder to send as the build context: the package folder itself,
// or, when build.yml has extra-sources, a temporary folder holding a copy of the package with
// each extra source copied to its destination (LinuxKit's SRC:DST). cleanup removes the copy.
//
// Of an extra source, only the files its tag covers are copied (tag.Files: what git would
// record, so nothing .gitignore names, and nothing extra-sources-exclude names): the tag then
// names everything the build can see, and an extra source may be a whole repository whose
// work tree holds gigabytes of generated, ignored state.
func buildContext(ctx context.Context, p *Package) (dir string, cleanup func(), err error) {
	if len(p.Spec.ExtraSources) == 0 {
		return p.Dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "kiln-context-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	if err := copyTree(p.Dir, tmp); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("%s: copying the build context: %w", p.Spec.File, err)
	}
	srcs := p.sourceDirs()[1:]
	sources := p.Spec.Sources()
	for i, e := range p.Spec.ExtraSources {
		src := srcs[i]
		dst := filepath.Join(tmp, filepath.FromSlash(e.Dst))
		if !strings.HasPrefix(dst, tmp+string(filepath.Separator)) {
			cleanup()
			return "", nil, fmt.Errorf("%s: extra-sources %s:%s: the destination leaves the build context", p.Spec.File, e.Src, e.Dst)
		}
		if err := copyFiles(ctx, src, dst, sources[i].Exclude...); err != nil {
			cleanup()
			return "", nil, fmt.Errorf("%s: extra-sources %s:%s: %w", p.Spec.File, e.Src, e.Dst, err)
		}
	}
	return tmp, cleanup, nil
}

// copyFiles copies into dst the files of src that src's tag covers (see tag.Files), less the
// paths of exclude (relative to src): symbolic links as they are, regular files with the mode
// git records (0755 when executable, else 0644), so that the host's umask does not reach the
// build.
func copyFiles(ctx context.Context, src, dst string, exclude ...string) error {
	names, err := tag.Files(ctx, src, exclude...)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, name := range names {
		from := filepath.Join(src, filepath.FromSlash(name))
		to := filepath.Join(dst, filepath.FromSlash(name))
		info, err := os.Lstat(from)
		if err != nil {
			return err
		}
		switch {
		case info.Mode().IsRegular():
			mode := os.FileMode(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			if err = copyFile(from, to, mode); err == nil {
				err = os.Chmod(to, mode)
			}
		case info.Mode()&fs.ModeSymlink != 0:
			var l string
			if l, err = os.Readlink(from); err == nil {
				if err = os.MkdirAll(filepath.Dir(to), 0o755); err == nil {
					err = os.Symlink(l, to)
				}
			}
		case info.IsDir():
			// git records a nested repository by its commit only, so its files are not in
			// the tag.
			err = fmt.Errorf("%s: a git submodule or nested repository: its files are not covered by the tag", from)
		default:
			err = fmt.Errorf("%s: not a file or symbolic link", from)
		}
		if err != nil {
			return err
		}
	}
	// Folders made above took their mode from the umask; the build sees 0755, as git has it.
	return filepath.WalkDir(dst, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return os.Chmod(path, 0o755)
	})
}

// copyTree copies regular files, folders and symbolic links from src into dst, keeping modes
// (times are irrelevant: BuildKit rewrites them to the epoch). A .git folder is skipped.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case d.Type().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		default:
			return fmt.Errorf("%s: not a file, folder or symbolic link", path)
		}
	})
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
