// Package layers flattens the layers of an OCI image into one filesystem view and streams it
// into an archive.Writer, with the semantics of an OCI layer applier (and of overlayfs):
// whiteouts and opaque directories hide lower layers, an upper entry replaces a lower one,
// directories merge, hard links keep their content even when their target is hidden.
//
// The flattener works in two passes and never holds file contents in memory:
//
//   - Pass 1 reads only the headers of every layer (bodies are skipped) into a compact
//     encoded header index per layer (spilled to an unlinked temporary file when large), then
//     applies those to an index of the final tree: per path, the layer entry that wins, plus
//     the hard-link groups. A Layer with an IndexStore (IndexedLayer; kiln keeps them in its
//     cache, keyed by the layer digest) has its encoded index kept, checked by version and
//     checksum, so a later flattening skips reading its headers and reads it once. The
//     memory of the index is a node per path of the image (about 150 bytes), not content.
//   - Pass 2 opens again, bottom first, only the layers that still contribute something and
//     streams each visible entry once, straight from the layer into the writer: a
//     directory at its first occurrence (with the metadata of its last occurrence), any other
//     entry at the position of the entry that wins. The rest of a layer is not read once
//     its last needed entry has been written.
//
// A regular file that is hidden by an upper layer but still named by a visible hard link is
// copied to a temporary file during pass 2 (see WithTempDir) and the first visible link is
// written as a regular file in its place.
//
// Choices worth knowing:
//   - Paths are taken literally, as overlayfs does: a symbolic link in a parent path is not
//     followed (containerd's applier would follow it). A non-directory that an upper entry
//     needs as a parent directory is replaced by a synthesised directory (0755, 0:0).
//   - Whiteouts hide only lower layers, wherever they appear in their own layer; they never
//     create anything. Other ".wh..wh.*" names (aufs metadata) are dropped.
//   - A hard link resolves its target in the view as it stands when the link is read, so it
//     may name a file of a lower layer. A link to a symlink, device or fifo is written as a
//     copy of that entry, never as a tar hard link.
//   - A sparse file is written expanded, as a plain regular file of its full size.
//   - Extended attributes (PAX SCHILY.xattr.*) are all kept, including ones a runtime may
//     ignore; every other PAX record is dropped because the header fields carry it. Modes
//     keep the permission, setuid, setgid and sticky bits. Timestamps are zeroed: the writer
//     fixes them.
//
// It does not decompress or verify layers (a Layer does that), does not write any archive
// format (internal/archive does) and never touches the host filesystem apart from the
// spool file.
package layers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/kiln-os/kiln/internal/archive"
)

// Layer is one uncompressed layer tar stream. Open may be called more than once and must
// return the same bytes every time; Flatten calls Open on different layers concurrently.
type Layer interface {
	Open() (io.ReadCloser, error)
}

// LayerFunc adapts a function to Layer.
type LayerFunc func() (io.ReadCloser, error)

// Open calls f.
func (f LayerFunc) Open() (io.ReadCloser, error) { return f() }

// ErrInvalidLayer classifies errors caused by the content of a layer (bad names, dangling
// hard links, unsupported entry types, corrupt tar); the message names the layer index and
// the entry.
var ErrInvalidLayer = errors.New("invalid layer")

// ErrLayerChanged is returned when a layer reopened for pass 2 differs from what pass 1 read.
var ErrLayerChanged = errors.New("layer changed between reads")

// Stats describes what Flatten wrote.
type Stats struct {
	Entries int   // entries written, of every type
	Files   int   // regular files written with content
	Bytes   int64 // content bytes written
	Spooled int64 // bytes copied to the spool file for hidden hard-link targets
}

// Option configures Flatten.
type Option func(*options)

type options struct {
	prefix  string
	tempDir string
	err     error
}

// WithPrefix places the flattened tree under p (for example
// "containers/onboot/000-dhcpcd/rootfs"): p is prepended to every name and to hard-link
// targets, not to symlink targets. The directory p itself is written first (with the
// metadata of the image's root entry "." when a layer has one, else 0755 0:0); its parents
// are not written, that is the caller's job. Without a prefix the root is not written.
func WithPrefix(p string) Option {
	return func(o *options) {
		clean, err := cleanName(p)
		if err != nil {
			o.err = fmt.Errorf("prefix %q: %w", p, err)
			return
		}
		if clean == "." {
			clean = ""
		}
		o.prefix = clean
	}
}

// WithTempDir sets the directory for the spool file holding hidden hard-link targets
// (default os.TempDir()). The file is removed before Flatten returns.
func WithTempDir(dir string) Option {
	return func(o *options) { o.tempDir = dir }
}

// Flatten writes the union of layers (bottom first) into w, in a deterministic order where
// every directory comes before its contents. It does not call w.Close.
func Flatten(ctx context.Context, layers []Layer, w archive.Writer, opts ...Option) (Stats, error) {
	o := options{tempDir: os.TempDir()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.err != nil {
		return Stats{}, o.err
	}
	idx, err := buildIndex(ctx, layers, o.tempDir)
	if err != nil {
		return Stats{}, err
	}
	e := &emitter{idx: idx, w: w, prefix: o.prefix, tempDir: o.tempDir}
	defer func() { _ = e.closeSpool() }() // on error paths; the success path reports its error below
	if err := e.run(ctx, layers); err != nil {
		return e.stats, err
	}
	if err := e.closeSpool(); err != nil {
		return e.stats, err
	}
	return e.stats, nil
}

// ReadFile returns the content of the regular file at name in the flattened view of layers
// (whiteouts and hard links are followed, symbolic links are not). It fails when the file is
// larger than max bytes. A missing file gives an error wrapping fs.ErrNotExist.
func ReadFile(ctx context.Context, layers []Layer, name string, max int64) ([]byte, error) {
	clean, err := cleanName(name)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", name, err)
	}
	idx, err := buildIndex(ctx, layers, os.TempDir())
	if err != nil {
		return nil, err
	}
	n := idx.lookup(clean)
	if n == nil {
		return nil, fmt.Errorf("read %q: %w", name, os.ErrNotExist)
	}
	src := n
	if n.group != nil {
		src = n.group.src
	}
	if n.isDir() || !isRegular(src.typ) {
		return nil, fmt.Errorf("read %q: not a regular file", name)
	}
	return readEntry(ctx, layers, src, max)
}

// cleanName turns a tar name into the form used everywhere: relative, slash-separated,
// cleaned, "." for the root. A name that leaves the root or contains NUL is an error.
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("name contains NUL")
	}
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", errors.New("name escapes the root")
	}
	return p, nil
}
