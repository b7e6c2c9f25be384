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

// Writer receives archive entries in the order they must appear.
//
// Names are relative, slash-separated and cleaned ("usr/bin/x", never "/usr/bin/x" or
// "./usr"); directories carry no trailing slash. The body must supply exactly hdr.Size bytes
// for regular files and is ignored (may be nil) for every other type. Hard links use
// tar.TypeLink with Linkname naming an entry written earlier in the same archive.
// Implementations normalise what would break reproducibility (timestamps, user and group
// names, PAX record order) and never retain hdr or body after WriteEntry returns.
type Writer interface {
	WriteEntry(hdr *tar.Header, body io.Reader) error
	// Close writes the trailer. It does not close the underlying io.Writer.
	Close() error
}
