package pkgbuild

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// buildContext returns the folder to send as the build context: the package folder itself,
// or, when build.yml has extra-sources, a temporary folder holding a copy of the package with
// each extra source copied to its destination (LinuxKit's SRC:DST). cleanup removes the copy.
func buildContext(p *Package) (dir string, cleanup func(), err error) {
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
	for _, e := range p.Spec.ExtraSources {
		src := e.Src
		if !filepath.IsAbs(src) {
			src = filepath.Join(p.Dir, src)
		}
		dst := filepath.Join(tmp, filepath.FromSlash(e.Dst))
		if !strings.HasPrefix(dst, tmp+string(filepath.Separator)) {
			cleanup()
			return "", nil, fmt.Errorf("%s: extra-sources %s:%s: the destination leaves the build context", p.Spec.File, e.Src, e.Dst)
		}
		if err := copyTree(src, dst); err != nil {
			cleanup()
			return "", nil, fmt.Errorf("%s: extra-sources %s:%s: %w", p.Spec.File, e.Src, e.Dst, err)
		}
	}
	return tmp, cleanup, nil
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
