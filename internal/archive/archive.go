// Package archive writes and reads the deterministic archives kiln produces: tar (PAX) and
// newc cpio (the initramfs format). Every writer takes entries as *tar.Header plus a body
// stream, so producers (the layer flattener, the files section, the kernel) need not know the
// output format.
//
// It does not flatten image layers (see internal/layers) and never touches the host
// filesystem: entries in, bytes out.
package archive

import (
	"archive/tar"
	"io"
)

// Entry is one archive member: a tar header plus what the newc format needs to know up front.
type Entry struct {
	*tar.Header
	// Links counts the tar.TypeLink entries that will name this regular file later in the same
	// archive (0 when none). The cpio writer needs it when the file is written: the kernel only
	// turns a later entry into a hard link when the first one announced nlink >= 2.
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
type Writer interface {
	WriteEntry(e Entry, body io.Reader) error
	// Close writes the trailer. It does not close the underlying io.Writer.
	Close() error
}
