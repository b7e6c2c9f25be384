// Package archive writes and reads the deterministic archives kiln produces: tar (USTAR, or
// PAX where USTAR cannot hold a header) and newc cpio (the initramfs format), plus the gzip
// stream the initrd is compressed with. Every writer takes entries as *tar.Header plus a body
// stream, so producers (the layer flattener, the files section, the kernel) need not know the
// output format.
//
// Output depends only on the entries and the options: timestamps come from WithModTime (pass
// SOURCE_DATE_EPOCH), user and group names are dropped, cpio inode numbers are assigned in
// order, and gzip output does not depend on the number of cores.
//
// # Concatenated initramfs archives
//
// The Linux kernel unpacks an initrd made of several cpio archives laid end to end, each with
// its own TRAILER!!!, compressed or not, with zero bytes allowed between them. Callers can
// therefore write the kernel modules or CPU microcode as separate archives (each its own
// NewCpioWriter, optionally its own gzip member) and concatenate the files. Hard links never
// cross an archive boundary: the kernel forgets inode numbers at each trailer, so a link and
// its target must be written to the same Writer. CpioWriter.Close pads every archive to a
// multiple of 512 bytes, so archives stay 4-byte aligned when concatenated uncompressed.
// CpioReader reads such concatenations, continuing after each trailer.
//
// It does not flatten image layers (see internal/layers), does not sort entries (callers
// write them in the order they must appear) and never touches the host filesystem: entries
// in, bytes out.
package archive

import (
	"archive/tar"
	"io"
)

// Entry is one archive member: a tar header plus what the newc format needs to know up front.
type Entry struct {
	*tar.Header
	// Links counts the tar.TypeLink entries that will name this regular file (or device node
	// or FIFO) later in the same archive (0 when none). The cpio writer needs it when the file
	// is written: the kernel only turns a later entry into a hard link when the first one
	// announced nlink >= 2. The cpio writer rejects links beyond the count, and Close fails
	// when fewer arrived. The tar writer ignores it.
	Links int
}

// Writer receives archive entries in the order they must appear.
//
// Names (e.Name) are relative, slash-separated and cleaned ("usr/bin/x", never "/usr/bin/x" or
// "./usr"); directories carry no trailing slash. The body must supply exactly e.Size bytes
// for regular files and is ignored (may be nil) for every other type. Hard links use
// tar.TypeLink with Linkname naming an entry written earlier in the same archive.
// Implementations normalise what would break reproducibility (timestamps, user and group
// names, PAX record order) and never retain e or body after WriteEntry returns.
//
// A Writer is not safe for concurrent use. After an error from WriteEntry the archive is
// incomplete; callers should stop and report the error.
type Writer interface {
	WriteEntry(e Entry, body io.Reader) error
	// Close writes the trailer. It does not close the underlying io.Writer.
	Close() error
}
