// Package ktar writes the deterministic tar archives the kernel package ships (kernel.tar):
// entries sorted by name, every parent directory written before what it holds, all owned by
// 0:0 with no user or group names, one modification time for all, fixed modes. The same files
// give the same bytes on any machine.
//
// It does not read archives, and it keeps no file contents in memory: bodies stream from
// disk.
package ktar

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// File is one regular file of the archive.
type File struct {
	// Name is the path inside the archive: relative, slash separated, clean
	// ("lib/modules/6.1.0-56-amd64/modules.dep").
	Name string
	// Src is a file on disk to copy; when empty, Data is the body.
	Src  string
	Data []byte
}

// Write writes files, and a 0755 directory entry for every folder above them, to w as a tar
// stream sorted by name. Files are 0644. Every time is mtime (truncated to the second).
func Write(w io.Writer, files []File, mtime time.Time) error {
	mtime = mtime.UTC().Truncate(time.Second)
	byName := map[string]*File{}
	dirs := map[string]bool{}
	for i := range files {
		f := &files[i]
		if err := checkName(f.Name); err != nil {
			return err
		}
		if byName[f.Name] != nil {
			return fmt.Errorf("tar entry %s given twice", f.Name)
		}
		byName[f.Name] = f
		for d := path.Dir(f.Name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	names := make([]string, 0, len(byName)+len(dirs))
	for n := range byName {
		if dirs[n] {
			return fmt.Errorf("tar entry %s is both a file and a folder above other files", n)
		}
		names = append(names, n)
	}
	for d := range dirs {
		names = append(names, d)
	}
	// A folder's name is a prefix of everything in it, so sorting puts it first.
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, n := range names {
		hdr := &tar.Header{Name: n, Uid: 0, Gid: 0, ModTime: mtime}
		f := byName[n]
		if f == nil {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, n+"/", 0o755
			if err := tw.WriteHeader(hdr); err != nil {
				return fmt.Errorf("tar entry %s: %w", n, err)
			}
			continue
		}
		hdr.Typeflag, hdr.Mode = tar.TypeReg, 0o644
		if err := writeFile(tw, hdr, f); err != nil {
			return fmt.Errorf("tar entry %s: %w", n, err)
		}
	}
	return tw.Close()
}

// writeFile writes one regular file's header and body.
func writeFile(tw *tar.Writer, hdr *tar.Header, f *File) error {
	if f.Src == "" {
		hdr.Size = int64(len(f.Data))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(f.Data)
		return err
	}
	src, err := os.Open(f.Src)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", f.Src)
	}
	hdr.Size = fi.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(tw, src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", f.Src, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("%s changed while it was copied (%d bytes, then %d)", f.Src, hdr.Size, n)
	}
	return nil
}

// checkName refuses names that are not relative, clean and inside the archive.
func checkName(n string) error {
	if n == "" || n != path.Clean(n) || strings.HasPrefix(n, "/") || n == ".." || strings.HasPrefix(n, "../") {
		return fmt.Errorf("tar entry name %q: want a clean relative path such as lib/modules/VERSION/modules.dep", n)
	}
	return nil
}
