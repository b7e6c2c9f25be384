package ocicache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-os/kiln/internal/atomicfile"
)

// Layer header indexes: kiln keeps, per layer blob, the index of its tar headers that the
// flattener (internal/layers) builds in its first pass, so that a later build of an image
// whose layers are cached reads each layer once instead of twice. The cache only stores the
// files (atomically, under the name of the layer's compressed digest) and removes them with
// their layer; their format, version and checksum are the flattener's business.
//
//	kiln/index/sha256/<hex>              the index of layer blob sha256:<hex>
//	kiln/index/sha256/.kiln-tmp-*        indexes being written; Clean removes stale ones

// LayerIndexDir is the folder holding the layer header indexes.
func (c *Cache) LayerIndexDir() string { return filepath.Join(c.root, "kiln", "index", "sha256") }

func (c *Cache) layerIndexPath(h v1.Hash) (string, error) {
	if err := checkHash(h); err != nil {
		return "", err
	}
	return filepath.Join(c.LayerIndexDir(), h.Hex), nil
}

// OpenLayerIndex opens the stored header index of layer blob h; an error wrapping
// fs.ErrNotExist when there is none.
func (c *Cache) OpenLayerIndex(h v1.Hash) (*os.File, error) {
	p, err := c.layerIndexPath(h)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("layer index %s: %w", h, err)
	}
	return f, nil
}

// WriteLayerIndex stores the header index of layer blob h, as write produces it, completely or
// not at all. It stores nothing when the blob is not in the cache (an index outlives no layer).
func (c *Cache) WriteLayerIndex(h v1.Hash, write func(io.Writer) error) error {
	p, err := c.layerIndexPath(h)
	if err != nil {
		return err
	}
	// Under the shared lock garbage collection cannot run, so the blob checked here stays, or
	// Clean (which runs after) removes the index with it.
	unlock, err := c.readLock()
	if err != nil {
		return err
	}
	defer unlock()
	if !c.HasBlob(h) {
		return fmt.Errorf("layer index %s: blob %w", h, ErrNotFound)
	}
	return atomicfile.WriteFile(p, 0o644, write)
}

// pruneLayerIndexes removes the stale temporary files of the index and unpacked-copy folders
// and every index or copy whose blob is gone. Caller holds gcLock.
func (c *Cache) pruneLayerIndexes(rep *CleanReport) error {
	if err := c.pruneDerived(c.LayerIndexDir(), "layer indexes", rep, nil); err != nil {
		return err
	}
	var copies *int64
	if rep != nil {
		copies = &rep.CopyBytes
	}
	return c.pruneDerived(c.UnpackedLayerDir(), "unpacked layers", rep, copies)
}

// pruneDerived removes the stale temporary files of dir, a folder of files named after layer
// blobs, and every file whose blob is gone, adding the bytes of those to removed.
func (c *Cache) pruneDerived(dir, what string, rep *CleanReport, removed *int64) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	files, n, err := atomicfile.CleanStale(dir)
	if rep != nil {
		rep.TempFiles = append(rep.TempFiles, files...)
		rep.TempBytes += n
	}
	if err != nil {
		return fmt.Errorf("cleaning %s: %w", what, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("cleaning %s: %w", what, err)
	}
	for _, e := range ents {
		// Named after the blob: HEX (indexes) or HEX-DIFFHEX (unpacked copies).
		blob, _, _ := strings.Cut(e.Name(), "-")
		h := v1.Hash{Algorithm: "sha256", Hex: blob}
		if checkHash(h) != nil || c.HasBlob(h) {
			continue
		}
		if removed != nil {
			if fi, err := e.Info(); err == nil {
				*removed += fi.Size()
			}
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cleaning %s: %w", what, err)
		}
	}
	return nil
}

// cachedImage is an image read from the cache: it remembers the cache, so that CacheOf can
// give its layers' indexes a home.
type cachedImage struct {
	v1.Image
	c *Cache
}

// CacheOf returns the cache img was read from (by Image, Index or Pull), or nil.
func CacheOf(img v1.Image) *Cache {
	if ci, ok := img.(*cachedImage); ok {
		return ci.c
	}
	return nil
}

// Unverified returns the plain file under r, a reader of a cache blob (OpenBlob, or a cached
// layer's Compressed) that nothing has been read from, so that reading it costs no hashing.
// Use it only for a blob this process has already read whole and found matching its digest.
// Any other reader is returned as it is.
func Unverified(r io.ReadCloser) io.ReadCloser {
	if v, ok := r.(*verifyingReader); ok && v.n == 0 && v.err == nil {
		return v.f
	}
	return r
}
