package ocicache

import (
	"bytes"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// WriteImage stores an image (layers streamed one by one, then config, then manifest) and names
// it ref. Nothing is named unless every blob was written and verified.
func (c *Cache) WriteImage(ref string, img v1.Image) (v1.Descriptor, error) {
	r, err := parseRef(ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	unlock, err := c.readLock()
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer unlock()
	d, err := c.writeImage(img)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("writing %s: %w", Familiar(r.Name()), err)
	}
	if err := c.tag(r, d); err != nil {
		return v1.Descriptor{}, err
	}
	return d, nil
}

// WriteIndex stores an index with every child image and index, and names it ref.
func (c *Cache) WriteIndex(ref string, idx v1.ImageIndex) (v1.Descriptor, error) {
	r, err := parseRef(ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	unlock, err := c.readLock()
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer unlock()
	d, err := c.writeIndex(idx, nil)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("writing %s: %w", Familiar(r.Name()), err)
	}
	if err := c.tag(r, d); err != nil {
		return v1.Descriptor{}, err
	}
	return d, nil
}

// hasBlob reports whether an intact-looking (right size) copy of d is present.
func (c *Cache) hasBlob(d v1.Descriptor) bool {
	p, err := c.blobPath(d.Digest)
	if err != nil {
		return false
	}
	fi, err := os.Stat(p)
	return err == nil && fi.Size() == d.Size
}

// writeImage stores an image's blobs and returns its manifest descriptor. Caller holds readLock.
func (c *Cache) writeImage(img v1.Image) (v1.Descriptor, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if mt == "" {
		mt = m.MediaType
	}
	if mt == "" {
		mt = types.OCIManifestSchema1
	}
	for _, l := range m.Layers {
		if !l.MediaType.IsDistributable() || c.hasBlob(l) {
			continue
		}
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		rc, err := layer.Compressed()
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		_, _, err = c.writeBlob(rc, l.Digest, l.Size)
		rc.Close()
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
	}
	if !c.hasBlob(m.Config) {
		cfg, err := img.RawConfigFile()
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("config %s: %w", m.Config.Digest, err)
		}
		if _, _, err := c.writeBlob(bytes.NewReader(cfg), m.Config.Digest, m.Config.Size); err != nil {
			return v1.Descriptor{}, fmt.Errorf("config: %w", err)
		}
	}
	h, n, err := c.writeBlob(bytes.NewReader(raw), v1.Hash{}, int64(len(raw)))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest: %w", err)
	}
	return v1.Descriptor{MediaType: mt, Size: n, Digest: h}, nil
}

// writeIndex stores an index, its child images and indexes that keep(child) accepts (all when
// keep is nil), and returns its descriptor. Children of other media types are skipped. The
// index manifest is stored unchanged, so its digest is the source's even when children are
// left out. Caller holds readLock.
func (c *Cache) writeIndex(idx v1.ImageIndex, keep func(v1.Descriptor) bool) (v1.Descriptor, error) {
	raw, err := idx.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := idx.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	if mt == "" {
		mt = im.MediaType
	}
	if mt == "" {
		mt = types.OCIImageIndex
	}
	for _, child := range im.Manifests {
		if keep != nil && !keep(child) {
			continue
		}
		var got v1.Descriptor
		switch {
		case child.MediaType.IsIndex():
			sub, err := idx.ImageIndex(child.Digest)
			if err != nil {
				return v1.Descriptor{}, fmt.Errorf("index %s: %w", child.Digest, err)
			}
			if got, err = c.writeIndex(sub, keep); err != nil {
				return v1.Descriptor{}, fmt.Errorf("index %s: %w", child.Digest, err)
			}
		case child.MediaType.IsImage():
			img, err := idx.Image(child.Digest)
			if err != nil {
				return v1.Descriptor{}, fmt.Errorf("image %s: %w", child.Digest, err)
			}
			if got, err = c.writeImage(img); err != nil {
				return v1.Descriptor{}, fmt.Errorf("image %s (%s): %w", child.Digest, platformString(child.Platform), err)
			}
		default:
			continue
		}
		if got.Digest != child.Digest {
			return v1.Descriptor{}, fmt.Errorf("%w: child %s of the index was stored as %s", ErrCorrupt, child.Digest, got.Digest)
		}
	}
	h, n, err := c.writeBlob(bytes.NewReader(raw), v1.Hash{}, int64(len(raw)))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("index manifest: %w", err)
	}
	return v1.Descriptor{MediaType: mt, Size: n, Digest: h}, nil
}
