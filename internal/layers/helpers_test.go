package layers

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kiln-os/kiln/internal/archive"
)

// ent is one tar entry of a test layer.
type ent struct {
	h    tar.Header
	body string
}

func dir(name string) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755}}
}

func file(name, body string) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}, body: body}
}

func hardlink(name, target string) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}}
}

func symlink(name, target string) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func device(typ byte, name string, major, minor int64) ent {
	return ent{h: tar.Header{Typeflag: typ, Name: name, Mode: 0o666, Devmajor: major, Devminor: minor}}
}

func fifo(name string) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeFifo, Name: name, Mode: 0o644}}
}

// whiteout hides name (a path as in the image).
func whiteout(name string) ent {
	d, b := path.Split(name)
	return file(d+".wh."+b, "")
}

// opaque marks directory d opaque.
func opaque(d string) ent { return file(d+"/.wh..wh..opq", "") }

func (e ent) mode(m int64) ent       { e.h.Mode = m; return e }
func (e ent) owner(uid, gid int) ent { e.h.Uid, e.h.Gid = uid, gid; return e }
func (e ent) named(name string) ent  { e.h.Name = name; return e }
func (e ent) typ(t byte) ent         { e.h.Typeflag = t; return e }
func (e ent) xattr(k, v string) ent {
	if e.h.PAXRecords == nil {
		e.h.PAXRecords = map[string]string{}
	}
	e.h.PAXRecords["SCHILY.xattr."+k] = v
	return e
}

// tarBytes writes entries as a PAX tar.
func tarBytes(t testing.TB, ents []ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.h
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("write header %q: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// memLayer is a Layer over bytes that counts how often it is opened.
type memLayer struct {
	b     []byte
	opens atomic.Int32
}

func (m *memLayer) Open() (io.ReadCloser, error) {
	m.opens.Add(1)
	return io.NopCloser(bytes.NewReader(m.b)), nil
}

func mkLayers(t testing.TB, specs ...[]ent) []Layer {
	t.Helper()
	var ls []Layer
	for _, s := range specs {
		ls = append(ls, &memLayer{b: tarBytes(t, s)})
	}
	return ls
}

// recorded is one entry a recorder received.
type recorded struct {
	h     tar.Header
	links int
	body  []byte
}

// recorder is an archive.Writer that keeps what it receives (bodies only up to keep bytes;
// the rest is counted and discarded).
type recorder struct {
	keep    int64
	maxSize int64 // when > 0, larger regular files are refused (a sparse file may expand hugely)
	entries []recorded
	closed  bool
}

func (r *recorder) WriteEntry(e archive.Entry, body io.Reader) error {
	rec := recorded{h: *e.Header, links: e.Links}
	rec.h.PAXRecords = maps.Clone(e.PAXRecords)
	if r.maxSize > 0 && e.Size > r.maxSize {
		return fmt.Errorf("%s: %d bytes, more than %d", e.Name, e.Size, r.maxSize)
	}
	if e.Typeflag == tar.TypeReg {
		var buf bytes.Buffer
		n, err := io.Copy(&limitedBuffer{buf: &buf, keep: r.keep}, body)
		if err != nil {
			return err
		}
		if n != e.Size {
			return fmt.Errorf("%s: body has %d bytes, header says %d", e.Name, n, e.Size)
		}
		rec.body = buf.Bytes()
	}
	r.entries = append(r.entries, rec)
	return nil
}

func (r *recorder) Close() error { r.closed = true; return nil }

type limitedBuffer struct {
	buf  *bytes.Buffer
	keep int64
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.keep - int64(l.buf.Len()); room > 0 {
		l.buf.Write(p[:min(int64(len(p)), room)])
	}
	return len(p), nil
}

// listing renders the entries one line each, for comparison with expectations.
func (r *recorder) listing() []string {
	var out []string
	for _, e := range r.entries {
		h := e.h
		owner := fmt.Sprintf("%04o %d:%d", h.Mode, h.Uid, h.Gid)
		var s string
		switch h.Typeflag {
		case tar.TypeDir:
			s = fmt.Sprintf("d %s %s", h.Name, owner)
		case tar.TypeReg:
			s = fmt.Sprintf("f %s %s %q", h.Name, owner, e.body)
			if e.links > 0 {
				s += fmt.Sprintf(" links=%d", e.links)
			}
		case tar.TypeLink:
			s = fmt.Sprintf("h %s -> %s", h.Name, h.Linkname)
		case tar.TypeSymlink:
			s = fmt.Sprintf("l %s -> %s %s", h.Name, h.Linkname, owner)
		case tar.TypeChar, tar.TypeBlock:
			s = fmt.Sprintf("%c %s %d,%d %s", map[byte]rune{tar.TypeChar: 'c', tar.TypeBlock: 'b'}[h.Typeflag], h.Name, h.Devmajor, h.Devminor, owner)
		case tar.TypeFifo:
			s = fmt.Sprintf("p %s %s", h.Name, owner)
		default:
			s = fmt.Sprintf("? %s type %q", h.Name, h.Typeflag)
		}
		for _, k := range slices.Sorted(maps.Keys(h.PAXRecords)) {
			s += fmt.Sprintf(" %s=%s", strings.TrimPrefix(k, "SCHILY.xattr."), h.PAXRecords[k])
		}
		out = append(out, s)
	}
	return out
}

// checkInvariants verifies what every output must satisfy: cleaned relative names, no
// duplicates, no whiteouts, parents before children (except the prefix's own parents),
// hard links naming an earlier regular file, Links matching the links that follow, sizes
// and timestamps as the contract says.
func checkInvariants(entries []recorded, prefix string) error {
	seen := map[string]byte{}
	links := map[string]int{}
	announced := map[string]int{}
	for i, e := range entries {
		h := e.h
		name := h.Name
		if name == "" || name != path.Clean(name) || strings.HasPrefix(name, "/") || name == "." || strings.HasPrefix(name, "../") || name == ".." {
			return fmt.Errorf("entry %d: bad name %q", i, name)
		}
		if _, dup := seen[name]; dup {
			return fmt.Errorf("entry %d: duplicate %q", i, name)
		}
		for _, part := range strings.Split(name, "/") {
			if strings.HasPrefix(part, ".wh.") {
				return fmt.Errorf("entry %d: whiteout %q in output", i, name)
			}
		}
		if name != prefix {
			if prefix != "" && !strings.HasPrefix(name, prefix+"/") {
				return fmt.Errorf("entry %d: %q outside prefix %q", i, name, prefix)
			}
			if d := path.Dir(name); d != "." && seen[d] != tar.TypeDir && !strings.HasPrefix(prefix+"/", d+"/") {
				return fmt.Errorf("entry %d: %q before its parent directory", i, name)
			}
		}
		if !h.ModTime.IsZero() || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			return fmt.Errorf("entry %d: %q has timestamps", i, name)
		}
		if h.Typeflag != tar.TypeReg && h.Size != 0 {
			return fmt.Errorf("entry %d: %q non-regular with size", i, name)
		}
		if h.Mode&^0o7777 != 0 {
			return fmt.Errorf("entry %d: %q mode %o has type bits", i, name, h.Mode)
		}
		for k := range h.PAXRecords {
			if !strings.HasPrefix(k, "SCHILY.xattr.") {
				return fmt.Errorf("entry %d: %q keeps PAX record %q", i, name, k)
			}
		}
		switch h.Typeflag {
		case tar.TypeLink:
			if seen[h.Linkname] != tar.TypeReg {
				return fmt.Errorf("entry %d: hard link %q to %q, not an earlier regular file", i, name, h.Linkname)
			}
			links[h.Linkname]++
		case tar.TypeReg:
			announced[name] = e.links
		case tar.TypeDir, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			if e.links != 0 {
				return fmt.Errorf("entry %d: %q non-regular with Links", i, name)
			}
		default:
			return fmt.Errorf("entry %d: %q has type %q", i, name, h.Typeflag)
		}
		seen[name] = h.Typeflag
	}
	for name, n := range announced {
		if links[name] != n {
			return fmt.Errorf("%q announced %d links, got %d", name, n, links[name])
		}
	}
	return nil
}

type archiveEntry = archive.Entry
