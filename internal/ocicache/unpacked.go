package ocicache

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-os/kiln/internal/atomicfile"
)

// Unpacked layers: kiln keeps, per compressed layer blob, a copy of its uncompressed tar
// stream, written while a build decompresses the layer for the first time, so that later
// builds read plain files at disk speed instead of inflating the layer again (inflating is
// most of a large build's CPU). A copy is stored atomically under the names of the layer's
// compressed digest and of the DiffID it was checked against (an image config that names
// another DiffID for the same blob never reads it), and removed with its blob; whoever reads
// it checks it against that DiffID (the digest of exactly these bytes).
//
//	kiln/unpacked/sha256/<hex>-<diffhex> the uncompressed tar of layer blob sha256:<hex>
//	kiln/unpacked/sha256/.kiln-tmp-*     copies being written; Clean removes stale ones

// UnpackedLayerDir is the folder holding the unpacked copies of layers.
func (c *Cache) UnpackedLayerDir() string {
	return filepath.Join(c.root, "kiln", "unpacked", "sha256")
}

func (c *Cache) unpackedPath(h, diffID v1.Hash) (string, error) {
	if err := checkHash(h); err != nil {
		return "", err
	}
	if err := checkHash(diffID); err != nil {
		return "", err
	}
	return filepath.Join(c.UnpackedLayerDir(), h.Hex+"-"+diffID.Hex), nil
}

// OpenUnpackedLayer opens the unpacked copy of layer blob h whose content has digest diffID;
// an error wrapping fs.ErrNotExist when there is none. The caller checks what it reads
// against diffID.
func (c *Cache) OpenUnpackedLayer(h, diffID v1.Hash) (*os.File, error) {
	p, err := c.unpackedPath(h, diffID)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("unpacked layer %s: %w", h, err)
	}
	return f, nil
}

// RemoveUnpackedLayer removes f, an unpacked copy of layer blob h found damaged, if it is
// still the copy in the cache (another process may have replaced it with a sound one since).
func (c *Cache) RemoveUnpackedLayer(h, diffID v1.Hash, f *os.File) error {
	p, err := c.unpackedPath(h, diffID)
	if err != nil {
		return err
	}
	opened, err := f.Stat()
	if err != nil {
		return err
	}
	if now, err := os.Stat(p); err != nil || !os.SameFile(opened, now) {
		return nil
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing the unpacked copy of layer %s: %w", h, err)
	}
	return nil
}

// UnpackedWriter writes the unpacked copy of one layer: Write the whole uncompressed stream,
// then Commit (once the caller has checked it against the DiffID) or Abort. A failed write
// is remembered, not returned, so that a full disk costs the next build time only; Commit
// then stores nothing.
type UnpackedWriter struct {
	f      *atomicfile.File
	w      *bufio.Writer
	unlock func()
	err    error
}

// CreateUnpackedLayer starts the unpacked copy of layer blob h, whose content must have
// digest diffID. It fails when the blob is not in the cache (a copy outlives no layer). Until
// Commit or Abort it holds the cache's shared lock, so garbage collection waits for it.
func (c *Cache) CreateUnpackedLayer(h, diffID v1.Hash) (*UnpackedWriter, error) {
	p, err := c.unpackedPath(h, diffID)
	if err != nil {
		return nil, err
	}
	unlock, err := c.readLock()
	if err != nil {
		return nil, err
	}
	if !c.HasBlob(h) {
		unlock()
		return nil, fmt.Errorf("unpacked layer %s: blob %w", h, ErrNotFound)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		unlock()
		return nil, fmt.Errorf("unpacked layer %s: %w", h, err)
	}
	f, err := atomicfile.Create(p, 0o644)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("unpacked layer %s: %w", h, err)
	}
	return &UnpackedWriter{f: f, w: bufio.NewWriterSize(f, 1<<20), unlock: unlock}, nil
}

// Write implements io.Writer; it never fails (see UnpackedWriter).
func (u *UnpackedWriter) Write(p []byte) (int, error) {
	if u.err == nil {
		_, u.err = u.w.Write(p)
	}
	return len(p), nil
}

// Commit stores the copy under its final name, unless a write failed.
func (u *UnpackedWriter) Commit() error {
	defer u.unlock()
	if u.err == nil {
		u.err = u.w.Flush()
	}
	if u.err != nil {
		u.f.Abort()
		return fmt.Errorf("unpacked copy %s: %w", u.f.Final(), u.err)
	}
	return u.f.Commit()
}

// Abort drops the copy.
func (u *UnpackedWriter) Abort() {
	defer u.unlock()
	u.f.Abort()
}

var _ io.Writer = (*UnpackedWriter)(nil)
