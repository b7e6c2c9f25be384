package archive

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// newc layout, as the kernel's init/initramfs.c reads it: a 110-byte header of a 6-byte magic
// and thirteen 8-digit hexadecimal fields, the NUL-terminated name padded so that header plus
// name end on a 4-byte boundary, then the data padded to 4 bytes.
const (
	cpioMagic      = "070701"
	cpioHeaderLen  = 110
	cpioTrailer    = "TRAILER!!!"
	cpioPathMax    = 4096 // the kernel's PATH_MAX: longest name including its NUL
	cpioBlock      = 512  // Close pads the archive to this, like GNU cpio
	cpioMaxDevMaj  = 1<<12 - 1
	cpioMaxDevMin  = 1<<20 - 1
	cpioMaxField   = math.MaxUint32
	cpioMaxEntries = math.MaxUint32
)

// File type bits of st_mode (Linux values; newc stores st_mode as is).
const (
	modeFifo    = 0o010000
	modeChar    = 0o020000
	modeDir     = 0o040000
	modeBlock   = 0o060000
	modeReg     = 0o100000
	modeSymlink = 0o120000
	modeSocket  = 0o140000
	modeType    = 0o170000
	modePerm    = 0o7777
)

// cpioHeader holds the numeric fields of one newc header, in file order after the magic.
type cpioHeader struct {
	ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check uint32
}

// cpioNode remembers a written entry that announced hard links.
type cpioNode struct {
	name    string     // name of the first entry
	hdr     cpioHeader // header of the first entry; links copy ino, mode, ids, nlink, rdev
	links   int        // links announced
	written int        // links written so far
}

// CpioWriter writes a newc cpio archive as the Linux kernel unpacks an initramfs. It is the
// concrete type behind NewCpioWriter.
type CpioWriter struct {
	opts     options
	out      *bufio.Writer
	off      int64 // bytes written so far
	nextIno  uint32
	targets  map[string]*cpioNode // every file written that announced hard links, and the links to it
	pending  int                  // announced hard links not written yet
	dropped  int
	err      error
	done     bool
	hdrBuf   [cpioHeaderLen]byte
	padBytes [cpioBlock]byte
}

// NewCpioWriter returns a Writer that writes a reproducible newc ("070701") cpio archive to w,
// in the form the Linux kernel's initramfs unpacker reads. The result is a *CpioWriter.
//
// Inode numbers count up from 1 in write order; device numbers (c_maj, c_min) are 0; every
// entry gets the WithModTime time, which must lie between 1970 and 2106. The mode is the file
// type bits plus the permission bits including setuid, setgid and sticky; uid and gid are
// kept. Directories get nlink 2; regular files 1 + e.Links; symlinks store their target as
// data. A tar.TypeLink entry becomes an entry with the inode, mode, ids and nlink of its
// target and no data; the kernel turns it into a hard link because the target was written
// earlier in the same archive with nlink >= 2. Its target must have announced the link in
// Entry.Links; regular files, device nodes and FIFOs can be hard-linked. Names are limited to
// 4095 bytes (the kernel skips longer ones), file sizes to 4 GiB - 1, device numbers to
// major 4095 and minor 1048575 (the kernel's encoding).
//
// newc has no place for extended attributes: they are dropped and counted (DroppedXattrs).
//
// Close fails when an entry announced more links than were written, writes the "TRAILER!!!"
// entry and pads the archive with zeros to a multiple of 512 bytes. It does not close w.
func NewCpioWriter(w io.Writer, opts ...Option) Writer {
	return &CpioWriter{
		opts:    newOptions(opts),
		out:     bufio.NewWriterSize(w, 64<<10),
		nextIno: 1,
		targets: make(map[string]*cpioNode),
	}
}

// DroppedXattrs returns how many extended attributes were dropped so far because newc cannot
// store them (callers should warn when it is not 0).
func (c *CpioWriter) DroppedXattrs() int { return c.dropped }

// WriteEntry writes one entry; see NewCpioWriter for how entries are mapped.
func (c *CpioWriter) WriteEntry(e Entry, body io.Reader) error {
	if err := c.usable(); err != nil {
		return err
	}
	if e.Header == nil {
		return fmt.Errorf("cpio: entry without header")
	}
	if err := c.writeEntry(e, body); err != nil {
		return fmt.Errorf("cpio: entry %q: %w", e.Name, err)
	}
	return nil
}

func (c *CpioWriter) usable() error {
	if c.done {
		return fmt.Errorf("cpio: writer already closed")
	}
	if c.err != nil {
		return fmt.Errorf("cpio: archive already failed: %w", c.err)
	}
	return nil
}

func (c *CpioWriter) writeEntry(e Entry, body io.Reader) error {
	if err := checkName(e.Name); err != nil {
		return err
	}
	if len(e.Name)+1 > cpioPathMax {
		return fmt.Errorf("name is %d bytes long; the kernel reads at most %d", len(e.Name), cpioPathMax-1)
	}
	mtime := c.opts.modTime.Unix()
	if mtime < 0 || mtime > cpioMaxField {
		return fmt.Errorf("modification time %s does not fit newc (1970 to 2106)", c.opts.modTime.UTC())
	}
	if e.Links < 0 {
		return fmt.Errorf("negative Links %d", e.Links)
	}
	if e.Typeflag == tar.TypeLink {
		return c.writeLink(e)
	}
	if e.Uid < 0 || e.Uid > cpioMaxField || e.Gid < 0 || e.Gid > cpioMaxField {
		return fmt.Errorf("uid %d or gid %d does not fit newc", e.Uid, e.Gid)
	}
	if c.nextIno == cpioMaxEntries {
		return fmt.Errorf("more than %d entries", cpioMaxEntries-1)
	}
	h := cpioHeader{
		ino:   c.nextIno,
		mode:  uint32(e.Mode & modePerm),
		uid:   uint32(e.Uid),
		gid:   uint32(e.Gid),
		nlink: 1,
		mtime: uint32(mtime),
	}
	var data string // symlink target
	linkable := false
	switch e.Typeflag {
	case tar.TypeReg, tar.TypeRegA: // TypeRegA: old layers still use it
		if e.Size < 0 || e.Size > cpioMaxField {
			return fmt.Errorf("size %d does not fit newc (at most 4 GiB - 1)", e.Size)
		}
		h.mode |= modeReg
		h.filesize = uint32(e.Size)
		linkable = true
	case tar.TypeDir:
		h.mode |= modeDir
		h.nlink = 2
	case tar.TypeSymlink:
		if err := checkLinkTarget(e.Linkname); err != nil {
			return err
		}
		if len(e.Linkname) >= cpioPathMax {
			return fmt.Errorf("symlink target is %d bytes long; at most %d fit", len(e.Linkname), cpioPathMax-1)
		}
		h.mode |= modeSymlink
		h.filesize = uint32(len(e.Linkname))
		data = e.Linkname
	case tar.TypeChar, tar.TypeBlock:
		if e.Devmajor < 0 || e.Devmajor > cpioMaxDevMaj || e.Devminor < 0 || e.Devminor > cpioMaxDevMin {
			return fmt.Errorf("device %d:%d does not fit the kernel's encoding (major <= %d, minor <= %d)",
				e.Devmajor, e.Devminor, cpioMaxDevMaj, cpioMaxDevMin)
		}
		if e.Typeflag == tar.TypeChar {
			h.mode |= modeChar
		} else {
			h.mode |= modeBlock
		}
		h.rdevmajor, h.rdevminor = uint32(e.Devmajor), uint32(e.Devminor)
		linkable = true
	case tar.TypeFifo:
		h.mode |= modeFifo
		linkable = true
	default:
		return fmt.Errorf("unsupported type flag %q", e.Typeflag)
	}
	if e.Links > 0 {
		if !linkable {
			return fmt.Errorf("announces %d hard links, but only regular files, devices and FIFOs can be hard-linked", e.Links)
		}
		if e.Links >= cpioMaxField {
			return fmt.Errorf("announces %d hard links; too many for newc", e.Links)
		}
		h.nlink = uint32(1 + e.Links)
	}
	x := xattrs(e.Header)

	if err := c.writeHeader(&h, e.Name); err != nil {
		return err
	}
	switch {
	case data != "":
		if _, err := c.out.WriteString(data); err != nil {
			c.err = err
			return err
		}
		c.off += int64(len(data))
	case h.mode&modeType == modeReg:
		if err := copyBody(countWriter{c}, body, e.Size); err != nil {
			c.err = err
			return err
		}
	}
	if err := c.pad(4); err != nil {
		return err
	}

	c.nextIno++
	c.dropped += len(x)
	switch {
	case h.mode&modeType == modeDir:
	case e.Links > 0:
		c.targets[e.Name] = &cpioNode{name: e.Name, hdr: h, links: e.Links}
		c.pending += e.Links
	default:
		// A name written again without links: a later hard link must not reach the old inode.
		delete(c.targets, e.Name)
	}
	return nil
}

// writeLink writes a hard link to an earlier entry.
func (c *CpioWriter) writeLink(e Entry) error {
	if e.Links != 0 {
		return fmt.Errorf("a hard link cannot announce Links (%d); count links on the target", e.Links)
	}
	if err := checkName(e.Linkname); err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	node, ok := c.targets[e.Linkname]
	switch {
	case !ok:
		return fmt.Errorf("hard link target %q was not written earlier in this archive as a file that announced hard links "+
			"(it is missing, a directory, or its Entry.Links was 0, and the kernel would not link them)", e.Linkname)
	case node.written >= node.links:
		return fmt.Errorf("hard link target %q announced %d hard links; this is one more", e.Linkname, node.links)
	}
	h := node.hdr
	h.filesize = 0
	if err := c.writeHeader(&h, e.Name); err != nil {
		return err
	}
	if err := c.pad(4); err != nil {
		return err
	}
	node.written++
	c.pending--
	c.dropped += len(xattrs(e.Header))
	if _, ok := c.targets[e.Name]; !ok {
		c.targets[e.Name] = node // a later link may name this one
	}
	return nil
}

// writeHeader writes the header and the name with its NUL and padding.
func (c *CpioWriter) writeHeader(h *cpioHeader, name string) error {
	h.namesize = uint32(len(name) + 1)
	b := c.hdrBuf[:0]
	b = append(b, cpioMagic...)
	for _, v := range [...]uint32{h.ino, h.mode, h.uid, h.gid, h.nlink, h.mtime, h.filesize,
		h.devmajor, h.devminor, h.rdevmajor, h.rdevminor, h.namesize, h.check} {
		b = appendHex8(b, v)
	}
	if _, err := c.out.Write(b); err != nil {
		c.err = err
		return err
	}
	if _, err := c.out.WriteString(name); err != nil {
		c.err = err
		return err
	}
	if err := c.out.WriteByte(0); err != nil {
		c.err = err
		return err
	}
	c.off += int64(len(b) + len(name) + 1)
	return c.pad(4)
}

const hexDigits = "0123456789ABCDEF"

// appendHex8 appends v as 8 upper-case hexadecimal digits (as the kernel's gen_init_cpio does).
func appendHex8(b []byte, v uint32) []byte {
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, hexDigits[v>>uint(shift)&0xf])
	}
	return b
}

// pad writes zeros up to the next multiple of n (a power of two up to cpioBlock).
func (c *CpioWriter) pad(n int64) error {
	k := (n - c.off%n) % n
	if k == 0 {
		return nil
	}
	if _, err := c.out.Write(c.padBytes[:k]); err != nil {
		c.err = err
		return err
	}
	c.off += k
	return nil
}

// Close checks that every announced hard link was written, writes the trailer, pads the
// archive to a multiple of 512 bytes and flushes. It does not close the underlying writer.
func (c *CpioWriter) Close() error {
	if err := c.usable(); err != nil {
		return err
	}
	c.done = true
	var missing error
	if c.pending > 0 {
		var names []string
		for name, node := range c.targets {
			if node != nil && node.name == name && node.written < node.links {
				names = append(names, fmt.Sprintf("%q (%d of %d)", name, node.written, node.links))
			}
		}
		slices.Sort(names)
		missing = fmt.Errorf("cpio: %d announced hard links were not written: %s", c.pending, strings.Join(names, ", "))
	}
	trailer := cpioHeader{nlink: 1}
	if err := c.writeHeader(&trailer, cpioTrailer); err != nil {
		return fmt.Errorf("cpio: writing trailer: %w", err)
	}
	if err := c.pad(cpioBlock); err != nil {
		return fmt.Errorf("cpio: writing trailer: %w", err)
	}
	if err := c.out.Flush(); err != nil {
		return fmt.Errorf("cpio: %w", err)
	}
	return missing
}

// countWriter counts body bytes written through the CpioWriter's buffer.
type countWriter struct{ c *CpioWriter }

func (w countWriter) Write(p []byte) (int, error) {
	n, err := w.c.out.Write(p)
	w.c.off += int64(n)
	return n, err
}

func (w countWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := w.c.out.ReadFrom(r)
	w.c.off += n
	return n, err
}
