package archive

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"maps"
	"strings"
)

// paxXattrPrefix is the PAX record prefix for extended attributes (as GNU tar, bsdtar and
// the Go tar package write them).
const paxXattrPrefix = "SCHILY.xattr."

// tarWriter is the deterministic tar Writer returned by NewTarWriter.
type tarWriter struct {
	opts  options
	buf   *bufio.Writer
	tw    *tar.Writer
	files map[string]byte // names written so far (non-directories) and their type, for hard links
	err   error           // first failure; the archive is unusable afterwards
	done  bool            // Close was called
}

// NewTarWriter returns a Writer that writes a reproducible tar archive to w.
//
// Every entry gets the WithModTime time (default: the Unix epoch), no access or change time,
// and no user or group name (numeric ids are kept). Permission bits, including setuid, setgid
// and sticky, are kept; file type bits in Mode are dropped (the type flag says the type).
// Directories are named with a trailing "/". A header uses the USTAR format when it fits and
// PAX otherwise (long names, large ids or sizes, extended attributes). Extended attributes
// (PAXRecords "SCHILY.xattr.*", or the deprecated Header.Xattrs) are kept and written in
// sorted order; every other PAX record of the input is dropped. Supported types: regular
// files, hard links (to an earlier non-directory entry), symlinks, directories, character
// and block devices, and FIFOs.
//
// Close writes the end-of-archive blocks and flushes; it does not close w.
func NewTarWriter(w io.Writer, opts ...Option) Writer {
	buf := bufio.NewWriterSize(w, 64<<10)
	return &tarWriter{
		opts:  newOptions(opts),
		buf:   buf,
		tw:    tar.NewWriter(buf),
		files: make(map[string]byte),
	}
}

func (t *tarWriter) WriteEntry(e Entry, body io.Reader) error {
	if err := t.usable(); err != nil {
		return err
	}
	if e.Header == nil {
		return fmt.Errorf("tar: entry without header")
	}
	hdr, err := t.header(e)
	if err != nil {
		return fmt.Errorf("tar: entry %q: %w", e.Name, err)
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		t.err = err
		return fmt.Errorf("tar: entry %q: %w", e.Name, err)
	}
	if hdr.Typeflag == tar.TypeReg {
		if err := copyBody(t.tw, body, hdr.Size); err != nil {
			t.err = err
			return fmt.Errorf("tar: entry %q: %w", e.Name, err)
		}
	}
	if hdr.Typeflag != tar.TypeDir {
		t.files[e.Name] = hdr.Typeflag
	}
	return nil
}

// header builds the normalised header for e, validating it on the way.
func (t *tarWriter) header(e Entry) (*tar.Header, error) {
	if err := checkName(e.Name); err != nil {
		return nil, err
	}
	if e.Links < 0 {
		return nil, fmt.Errorf("negative Links %d", e.Links)
	}
	if e.Uid < 0 || e.Gid < 0 {
		return nil, fmt.Errorf("negative uid %d or gid %d", e.Uid, e.Gid)
	}
	hdr := &tar.Header{
		Name:     e.Name,
		Mode:     e.Mode & 0o7777,
		Uid:      e.Uid,
		Gid:      e.Gid,
		ModTime:  t.opts.modTime,
		Typeflag: e.Typeflag,
		Format:   tar.FormatPAX, // USTAR when the header fits, PAX otherwise; never GNU
	}
	switch e.Typeflag {
	case tar.TypeReg, tar.TypeRegA: // TypeRegA: old layers still use it
		hdr.Typeflag = tar.TypeReg
		if e.Size < 0 {
			return nil, fmt.Errorf("negative size %d", e.Size)
		}
		hdr.Size = e.Size
	case tar.TypeDir:
		hdr.Name += "/"
	case tar.TypeSymlink:
		if err := checkLinkTarget(e.Linkname); err != nil {
			return nil, err
		}
		hdr.Linkname = e.Linkname
	case tar.TypeLink:
		if err := checkName(e.Linkname); err != nil {
			return nil, fmt.Errorf("hard link target: %w", err)
		}
		if _, ok := t.files[e.Linkname]; !ok {
			return nil, fmt.Errorf("hard link target %q was not written earlier (or is a directory)", e.Linkname)
		}
		hdr.Linkname = e.Linkname
	case tar.TypeChar, tar.TypeBlock:
		if e.Devmajor < 0 || e.Devminor < 0 {
			return nil, fmt.Errorf("negative device number %d:%d", e.Devmajor, e.Devminor)
		}
		hdr.Devmajor, hdr.Devminor = e.Devmajor, e.Devminor
	case tar.TypeFifo:
	default:
		return nil, fmt.Errorf("unsupported type flag %q", e.Typeflag)
	}
	if x := xattrs(e.Header); len(x) > 0 {
		hdr.PAXRecords = make(map[string]string, len(x))
		for k, v := range x {
			if k == "" {
				return nil, fmt.Errorf("extended attribute with an empty name")
			}
			hdr.PAXRecords[paxXattrPrefix+k] = v
		}
	}
	return hdr, nil
}

// xattrs returns the extended attributes of h, keyed by attribute name, from both PAXRecords
// and the deprecated Xattrs field (PAXRecords win).
func xattrs(h *tar.Header) map[string]string {
	var out map[string]string
	if len(h.Xattrs) > 0 { //nolint:staticcheck // deprecated, but producers may still fill it
		out = maps.Clone(h.Xattrs) //nolint:staticcheck // as above
	}
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, paxXattrPrefix); ok {
			if out == nil {
				out = make(map[string]string)
			}
			out[name] = v
		}
	}
	return out
}

// checkLinkTarget validates a symlink target: any path, but not empty and without NUL.
func checkLinkTarget(target string) error {
	switch {
	case target == "":
		return fmt.Errorf("symlink without a target")
	case strings.IndexByte(target, 0) >= 0:
		return fmt.Errorf("symlink target %q contains a NUL byte", target)
	}
	return nil
}

func (t *tarWriter) usable() error {
	if t.done {
		return fmt.Errorf("tar: writer already closed")
	}
	if t.err != nil {
		return fmt.Errorf("tar: archive already failed: %w", t.err)
	}
	return nil
}

func (t *tarWriter) Close() error {
	if err := t.usable(); err != nil {
		return err
	}
	t.done = true
	if err := t.tw.Close(); err != nil {
		return fmt.Errorf("tar: writing trailer: %w", err)
	}
	if err := t.buf.Flush(); err != nil {
		return fmt.Errorf("tar: %w", err)
	}
	return nil
}
