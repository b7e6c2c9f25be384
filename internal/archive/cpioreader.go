package archive

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrFormat marks errors about malformed cpio input (as opposed to errors of the underlying
// reader). Test with errors.Is.
var ErrFormat = errors.New("malformed cpio archive")

// cpioFieldNames names the thirteen numeric header fields, for error messages.
var cpioFieldNames = [13]string{"c_ino", "c_mode", "c_uid", "c_gid", "c_nlink", "c_mtime",
	"c_filesize", "c_devmajor", "c_devminor", "c_rdevmajor", "c_rdevminor", "c_namesize", "c_check"}

// cpioLinkKey identifies an inode the way the kernel's find_link does.
type cpioLinkKey struct {
	devmajor, devminor, ino, fileType uint32
}

// CpioReader reads newc ("070701") cpio archives, including several archives concatenated
// with zero padding between them, as the kernel accepts for an initramfs. It is strict: bad
// magic, non-hex fields, names longer than 4096 bytes, missing NULs, non-zero padding, data on
// entries that cannot have any, unsupported file types (sockets), truncated input and a
// missing final trailer are errors that give the byte offset and wrap ErrFormat.
//
// It does not decompress: wrap a gzip reader around compressed input first.
type CpioReader struct {
	br          *bufio.Reader
	off         int64 // bytes consumed from br
	remain      int64 // body bytes of the current entry not read yet
	pendingBody bool  // the current entry is a regular file whose data and padding follow
	inArchive   bool  // an entry was read after the last trailer (or the start)
	links       map[cpioLinkKey]string
	err         error // sticky error
	hdr         [cpioHeaderLen]byte
}

// NewCpioReader returns a reader for the newc cpio archive(s) in r.
func NewCpioReader(r io.Reader) *CpioReader {
	return &CpioReader{br: bufio.NewReaderSize(r, 64<<10), links: make(map[cpioLinkKey]string)}
}

func (r *CpioReader) formatErr(off int64, format string, args ...any) error {
	return fmt.Errorf("cpio: offset %d: %s: %w", off, fmt.Sprintf(format, args...), ErrFormat)
}

func (r *CpioReader) truncated(off int64, what string) error {
	return fmt.Errorf("cpio: offset %d: truncated %s: %w: %w", off, what, ErrFormat, io.ErrUnexpectedEOF)
}

// Next advances to the next entry, skipping what is left of the current one, and returns its
// header. Names are returned as stored. Hard links (an inode seen before in the same archive,
// with nlink >= 2 and no data) come back as tar.TypeLink naming the first entry of the inode;
// symlinks as tar.TypeSymlink with the target in Linkname. At the end of the input Next
// returns io.EOF.
func (r *CpioReader) Next() (*tar.Header, error) {
	if r.err != nil {
		return nil, r.err
	}
	h, err := r.next()
	if err != nil {
		r.err = err
		return nil, err
	}
	return h, nil
}

func (r *CpioReader) next() (*tar.Header, error) {
	if r.pendingBody {
		if err := r.skip(r.remain, "file data"); err != nil {
			return nil, err
		}
		r.remain, r.pendingBody = 0, false
		if err := r.readPad("file data"); err != nil {
			return nil, err
		}
	}
	for {
		h, trailer, err := r.readEntry()
		if err != nil {
			return nil, err
		}
		if !trailer {
			return h, nil
		}
	}
}

// skip consumes n bytes of data or padding.
func (r *CpioReader) skip(n int64, what string) error {
	for n > 0 {
		k, err := r.br.Discard(int(min(n, 1<<30)))
		r.off += int64(k)
		n -= int64(k)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return r.truncated(r.off, what)
			}
			return fmt.Errorf("cpio: offset %d: %w", r.off, err)
		}
	}
	return nil
}

// readFull reads len(b) bytes or fails with an offset.
func (r *CpioReader) readFull(b []byte, what string) error {
	n, err := io.ReadFull(r.br, b)
	r.off += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return r.truncated(r.off, what)
		}
		return fmt.Errorf("cpio: offset %d: %w", r.off, err)
	}
	return nil
}

// readPad consumes the zero padding up to the next multiple of 4.
func (r *CpioReader) readPad(what string) error {
	n := (4 - r.off%4) % 4
	var b [4]byte
	start := r.off
	if err := r.readFull(b[:n], what+" padding"); err != nil {
		return err
	}
	for i := range n {
		if b[i] != 0 {
			return r.formatErr(start+i, "non-zero padding after %s", what)
		}
	}
	return nil
}

// skipZeros consumes zero bytes between entries and archives. It reports false at the end of
// the input.
func (r *CpioReader) skipZeros() (bool, error) {
	for {
		b, err := r.br.Peek(1)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			return false, fmt.Errorf("cpio: offset %d: %w", r.off, err)
		}
		if b[0] != 0 {
			return true, nil
		}
		// Discard a run of zeros at once.
		buf, _ := r.br.Peek(r.br.Buffered())
		n := 0
		for n < len(buf) && buf[n] == 0 {
			n++
		}
		k, _ := r.br.Discard(n)
		r.off += int64(k)
	}
}

// readEntry reads one header, its name and (for symlinks) its data. trailer reports a
// TRAILER!!! entry, which ends one archive of a concatenation.
func (r *CpioReader) readEntry() (h *tar.Header, trailer bool, err error) {
	more, err := r.skipZeros()
	if err != nil {
		return nil, false, err
	}
	if !more {
		if r.inArchive {
			return nil, false, r.truncated(r.off, "archive (no TRAILER!!!)")
		}
		return nil, false, io.EOF
	}
	start := r.off
	if start%4 != 0 {
		return nil, false, r.formatErr(start, "entry header is not 4-byte aligned")
	}
	if err := r.readFull(r.hdr[:], "header"); err != nil {
		return nil, false, err
	}
	switch m := string(r.hdr[:6]); m {
	case cpioMagic:
	case "070702":
		return nil, false, r.formatErr(start, "newc-with-checksum (070702) archives are not supported")
	case "070707":
		return nil, false, r.formatErr(start, "old portable (odc, 070707) cpio format; want newc (070701)")
	default:
		return nil, false, r.formatErr(start, "bad magic %q, want %q", m, cpioMagic)
	}
	var f [13]uint32
	for i := range f {
		pos := 6 + 8*i
		v, ok := parseHex8(r.hdr[pos : pos+8])
		if !ok {
			return nil, false, r.formatErr(start+int64(pos), "field %s is not hexadecimal: %q", cpioFieldNames[i], r.hdr[pos:pos+8])
		}
		f[i] = v
	}
	ch := cpioHeader{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12]}
	if ch.namesize == 0 || ch.namesize > cpioPathMax {
		return nil, false, r.formatErr(start+6+8*11, "name size %d out of range 1..%d", ch.namesize, cpioPathMax)
	}
	nameOff := r.off
	name := make([]byte, ch.namesize)
	if err := r.readFull(name, "name"); err != nil {
		return nil, false, err
	}
	if name[len(name)-1] != 0 {
		return nil, false, r.formatErr(nameOff, "name is not NUL-terminated")
	}
	name = name[:len(name)-1]
	for i, b := range name {
		if b == 0 {
			return nil, false, r.formatErr(nameOff+int64(i), "NUL byte inside name %q", name)
		}
	}
	if err := r.readPad("name"); err != nil {
		return nil, false, err
	}

	if string(name) == cpioTrailer {
		if ch.filesize != 0 {
			return nil, false, r.formatErr(start, "trailer with %d bytes of data", ch.filesize)
		}
		r.inArchive = false
		clear(r.links) // the kernel forgets inodes at every trailer
		return nil, true, nil
	}
	r.inArchive = true
	if len(name) == 0 {
		return nil, false, r.formatErr(nameOff, "empty name")
	}

	h = &tar.Header{
		Name:    string(name),
		Mode:    int64(ch.mode & modePerm),
		Uid:     int(ch.uid),
		Gid:     int(ch.gid),
		ModTime: time.Unix(int64(ch.mtime), 0),
	}
	fileType := ch.mode & modeType
	switch fileType {
	case modeReg:
		h.Typeflag = tar.TypeReg
	case modeDir:
		h.Typeflag = tar.TypeDir
	case modeSymlink:
		h.Typeflag = tar.TypeSymlink
	case modeChar:
		h.Typeflag = tar.TypeChar
	case modeBlock:
		h.Typeflag = tar.TypeBlock
	case modeFifo:
		h.Typeflag = tar.TypeFifo
	case modeSocket:
		return nil, false, r.formatErr(start, "entry %q is a socket, which tar cannot represent", name)
	default:
		return nil, false, r.formatErr(start+6+8, "entry %q has unknown file type %#o", name, fileType)
	}
	if ch.filesize != 0 && fileType != modeReg && fileType != modeSymlink {
		return nil, false, r.formatErr(start+6+8*6, "entry %q of type %q has %d bytes of data", name, h.Typeflag, ch.filesize)
	}
	switch fileType {
	case modeChar, modeBlock:
		h.Devmajor, h.Devminor = int64(ch.rdevmajor), int64(ch.rdevminor)
	case modeSymlink:
		if ch.filesize == 0 || ch.filesize >= cpioPathMax {
			return nil, false, r.formatErr(start+6+8*6, "symlink %q target length %d out of range 1..%d", name, ch.filesize, cpioPathMax-1)
		}
		target := make([]byte, ch.filesize)
		if err := r.readFull(target, "symlink target"); err != nil {
			return nil, false, err
		}
		if err := r.readPad("symlink target"); err != nil {
			return nil, false, err
		}
		h.Linkname = string(target)
		return h, false, nil
	}

	if fileType != modeDir && ch.nlink >= 2 {
		key := cpioLinkKey{ch.devmajor, ch.devminor, ch.ino, fileType}
		if first, ok := r.links[key]; ok && ch.filesize == 0 {
			h.Typeflag = tar.TypeLink
			h.Linkname = first
		} else if !ok {
			r.links[key] = h.Name
		}
	}
	if h.Typeflag == tar.TypeReg {
		h.Size = int64(ch.filesize)
		r.remain = h.Size
		r.pendingBody = true
	}
	return h, false, nil
}

// parseHex8 parses 8 hexadecimal digits (either case).
func parseHex8(b []byte) (uint32, bool) {
	var v uint32
	for _, c := range b {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

// Read reads the data of the current regular-file entry; it returns io.EOF at its end (at
// once for other types).
func (r *CpioReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	n, err := r.br.Read(p)
	r.off += int64(n)
	r.remain -= int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			if r.remain > 0 {
				r.err = r.truncated(r.off, "file data")
				return n, r.err
			}
			return n, nil
		}
		r.err = fmt.Errorf("cpio: offset %d: %w", r.off, err)
		return n, r.err
	}
	return n, nil
}
