package assemble

import (
	"archive/tar"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/kiln-os/kiln/internal/archive"
)

// tree is the archive.Writer every part of the system is written through. It keeps the
// stream well formed for the kernel's initramfs unpacker and for tar: every entry's parent
// directories come first (synthesised as 0755 root:root when no image supplied them), and a
// directory appears once (the first image to supply it sets its metadata; LinuxKit's images
// rely on sharing /etc, /usr and so on).
//
// Its memory is one string per directory, never file content.
type tree struct {
	w    archive.Writer
	dirs map[string]bool
	// files counts non-directory names already written, so that a later image overwriting a
	// file is reported rather than silently producing two members.
	files map[string]string
	// owner names what is being written now ("onboot image dhcpcd"), for messages.
	owner string
	warn  func(format string, args ...any)
}

func newTree(w archive.Writer, warn func(string, ...any)) *tree {
	return &tree{w: w, dirs: map[string]bool{}, files: map[string]string{}, warn: warn}
}

// mkdirAll writes name and any missing parents as plain directories.
func (t *tree) mkdirAll(name string) error {
	name = strings.Trim(path.Clean("/"+name), "/")
	if name == "" || t.dirs[name] {
		return nil
	}
	if err := t.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	t.dirs[name] = true
	return t.w.WriteEntry(archive.Entry{Header: &tar.Header{
		Typeflag: tar.TypeDir, Name: name, Mode: 0o755,
	}}, nil)
}

// WriteEntry implements archive.Writer.
func (t *tree) WriteEntry(e archive.Entry, body io.Reader) error {
	name := strings.Trim(path.Clean("/"+e.Name), "/")
	if name == "" {
		return nil // the root itself is never an entry
	}
	if e.Typeflag == tar.TypeDir {
		if t.dirs[name] {
			return nil
		}
		if err := t.mkdirAll(path.Dir(name)); err != nil {
			return err
		}
		t.dirs[name] = true
	} else {
		if t.dirs[name] {
			return fmt.Errorf("%s: %s is a directory in an earlier part of the system and a %s here", t.owner, name, typeName(e.Typeflag))
		}
		if err := t.mkdirAll(path.Dir(name)); err != nil {
			return err
		}
		if prev, ok := t.files[name]; ok && t.warn != nil {
			t.warn("%s overwrites /%s from %s", t.owner, name, prev)
		}
		t.files[name] = t.owner
	}
	h := *e.Header
	h.Name = name
	return t.w.WriteEntry(archive.Entry{Header: &h, Links: e.Links}, body)
}

// Close implements archive.Writer.
func (t *tree) Close() error { return t.w.Close() }

func typeName(flag byte) string {
	switch flag {
	case tar.TypeReg:
		return "file"
	case tar.TypeDir:
		return "directory"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("entry of type %q", flag)
}
