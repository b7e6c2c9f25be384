package assemble

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/kiln-os/kiln/internal/archive"
	"github.com/kiln-os/kiln/internal/layers"
)

// tree is the archive.Writer every part of the system is written through. It keeps the
// stream well formed for the kernel's initramfs unpacker and for tar: every entry's parent
// directories come first (synthesised as 0755 root:root when no image supplied them), and a
// directory appears once (the first image to supply it sets its metadata; LinuxKit's images
// rely on sharing /etc, /usr and so on).
//
// It also keeps the stream safe to unpack: no entry ever lies below a symlink or any other
// non-directory written before it, so `cpio -idm`, tar or Python's tarfile cannot be led
// outside the folder they unpack into. A path is either a directory in every part of the
// system or a non-directory in every part; when two parts disagree the build fails, whichever
// comes first (a stream cannot take back what it has written, so replacing is not an option).
// A non-directory may replace another non-directory (a later file wins when unpacked, with a
// warning).
//
// Every body is read through the build's context, so a cancelled build stops in the middle
// of a large file.
//
// Its memory is one string per path, never file content.
type tree struct {
	ctx context.Context
	w   archive.Writer
	// dirs maps every directory written (or synthesised as a parent) to the part that wrote
	// it (an index into owners).
	dirs map[string]uint32
	// others records every non-directory written, so that a later image overwriting a file is
	// reported rather than silently producing two members, and that nothing is ever written
	// below it.
	others map[string]nonDir
	// owner names what is being written now ("onboot image dhcpcd"), for messages; owners
	// holds every owner so far, the last being owner. The maps keep indexes into it: a
	// system of 100,000 files costs one string per path and a few bytes more.
	owner  string
	owners []string
	warn   func(format string, args ...any)
}

type nonDir struct {
	typ   byte
	owner uint32
}

func newTree(ctx context.Context, w archive.Writer, warn func(string, ...any)) *tree {
	return &tree{ctx: ctx, w: w, dirs: map[string]uint32{}, others: map[string]nonDir{}, warn: warn,
		owners: []string{""}}
}

// setOwner names the part of the system written from now on.
func (t *tree) setOwner(name string) {
	t.owner = name
	t.owners = append(t.owners, name)
}

// cur is the index of the current owner.
func (t *tree) cur() uint32 { return uint32(len(t.owners) - 1) }

// mkdirAll writes name and any missing parents as plain directories.
func (t *tree) mkdirAll(name string) error {
	name = strings.Trim(path.Clean("/"+name), "/")
	if name == "" {
		return nil
	}
	if err := t.checkParents(name, true); err != nil {
		return err
	}
	return t.mkdirs(name)
}

// mkdirs writes name and its missing parents, once checkParents has passed.
func (t *tree) mkdirs(name string) error {
	if name == "." || name == "" {
		return nil
	}
	if _, ok := t.dirs[name]; ok {
		return nil
	}
	if err := t.mkdirs(path.Dir(name)); err != nil {
		return err
	}
	t.dirs[name] = t.cur()
	return t.w.WriteEntry(archive.Entry{Header: &tar.Header{
		Typeflag: tar.TypeDir, Name: name, Mode: 0o755,
	}}, nil)
}

// checkParents fails when a parent of name (or name itself, with self) is a non-directory
// already in the stream.
func (t *tree) checkParents(name string, self bool) error {
	p := name
	if !self {
		p = path.Dir(name)
	}
	for ; p != "." && p != "/" && p != ""; p = path.Dir(p) {
		nd, ok := t.others[p]
		if !ok {
			continue
		}
		if p == name {
			return fmt.Errorf("%s: /%s is a directory here but a %s in %s; a path must be a directory in every part or in none",
				t.owner, name, typeName(nd.typ), t.owners[nd.owner])
		}
		return fmt.Errorf("%s: /%s lies below /%s, which is a %s in %s; kiln never writes a path below a %s "+
			"(unpacking it could write outside the target folder): make /%s a directory in both, or drop one",
			t.owner, name, p, typeName(nd.typ), t.owners[nd.owner], typeName(nd.typ), p)
	}
	return nil
}

// WriteEntry implements archive.Writer.
func (t *tree) WriteEntry(e archive.Entry, body io.Reader) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	name := strings.Trim(path.Clean("/"+e.Name), "/")
	if name == "" {
		return nil // the root itself is never an entry
	}
	if e.Typeflag == tar.TypeDir {
		if _, ok := t.dirs[name]; ok {
			return nil
		}
		if err := t.checkParents(name, true); err != nil {
			return err
		}
		if err := t.mkdirs(path.Dir(name)); err != nil {
			return err
		}
		t.dirs[name] = t.cur()
	} else {
		if prev, ok := t.dirs[name]; ok {
			return fmt.Errorf("%s: /%s is a %s here but a directory in %s; a path must be a directory in every part or in none",
				t.owner, name, typeName(e.Typeflag), t.owners[prev])
		}
		if err := t.checkParents(name, false); err != nil {
			return err
		}
		if e.Typeflag == tar.TypeLink {
			target := strings.Trim(path.Clean("/"+e.Linkname), "/")
			if nd, ok := t.others[target]; !ok || nd.typ != tar.TypeReg {
				return fmt.Errorf("%s: hard link /%s names /%s, which is not a regular file written before it", t.owner, name, target)
			}
		}
		if err := t.mkdirs(path.Dir(name)); err != nil {
			return err
		}
		if prev, ok := t.others[name]; ok && t.warn != nil {
			t.warn("%s overwrites /%s from %s", t.owner, name, t.owners[prev.owner])
		}
		t.others[name] = nonDir{typ: e.Typeflag, owner: t.cur()}
	}
	h := *e.Header
	h.Name = name
	if body != nil {
		body = layers.ContextReader(t.ctx, body)
	}
	return t.w.WriteEntry(archive.Entry{Header: &h, Links: e.Links}, body)
}

// Close implements archive.Writer.
func (t *tree) Close() error { return t.w.Close() }

func typeName(flag byte) string {
	switch flag {
	case tar.TypeReg, tar.TypeRegA:
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
