package ocicache

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// readManifest reads and parses an image manifest blob (verified).
func (c *Cache) readManifest(d v1.Descriptor) (*v1.Manifest, []byte, error) {
	b, err := c.readBlob(d.Digest, d.Size)
	if err != nil {
		return nil, nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(b))
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	return m, b, nil
}

// readIndexManifest reads and parses an index blob (verified).
func (c *Cache) readIndexManifest(d v1.Descriptor) (*v1.IndexManifest, []byte, error) {
	b, err := c.readBlob(d.Digest, d.Size)
	if err != nil {
		return nil, nil, err
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, nil, fmt.Errorf("index %s: %w", d.Digest, err)
	}
	return im, b, nil
}

// Image returns the image a reference names. When it names an index, platform picks the child
// (os, architecture and, when given, variant); a nil platform is accepted only when the index
// holds a single platform. When it names an image and platform is given, the image's config
// must match. The returned descriptor is the image manifest's. Layers are read lazily through
// the verifying reader: a damaged layer fails with ErrCorrupt when it is read to the end.
func (c *Cache) Image(ref string, platform *v1.Platform) (v1.Image, v1.Descriptor, error) {
	unlock, err := c.readLock()
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	defer unlock()
	d, err := c.resolve(ref)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	if d.MediaType.IsIndex() {
		im, _, err := c.readIndexManifest(d)
		if err != nil {
			return nil, v1.Descriptor{}, fmt.Errorf("image %s: %w", Familiar(ref), err)
		}
		child, err := pickPlatform(im, platform)
		if err != nil {
			return nil, v1.Descriptor{}, fmt.Errorf("image %s: %w", Familiar(ref), err)
		}
		if !child.MediaType.IsImage() {
			return nil, v1.Descriptor{}, fmt.Errorf("image %s: platform %s is a %s, not an image",
				Familiar(ref), platformString(child.Platform), child.MediaType)
		}
		img, err := c.image(child)
		if err != nil {
			return nil, v1.Descriptor{}, fmt.Errorf("image %s (%s): %w", Familiar(ref), platformString(child.Platform), err)
		}
		return img, child, nil
	}
	if !d.MediaType.IsImage() {
		return nil, v1.Descriptor{}, fmt.Errorf("image %s: unsupported media type %s", Familiar(ref), d.MediaType)
	}
	img, err := c.image(d)
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("image %s: %w", Familiar(ref), err)
	}
	if platform != nil {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, v1.Descriptor{}, fmt.Errorf("image %s: %w", Familiar(ref), err)
		}
		if got := cf.Platform(); got != nil && !platformMatches(*platform, got) {
			return nil, v1.Descriptor{}, fmt.Errorf("image %s is for %s, not %s", Familiar(ref), got, platform)
		}
	}
	return img, d, nil
}

// Index returns the index a reference names.
func (c *Cache) Index(ref string) (v1.ImageIndex, error) {
	unlock, err := c.readLock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	d, err := c.resolve(ref)
	if err != nil {
		return nil, err
	}
	if !d.MediaType.IsIndex() {
		return nil, fmt.Errorf("image %s is a %s, not an index", Familiar(ref), d.MediaType)
	}
	idx, err := c.index(d)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", Familiar(ref), err)
	}
	return idx, nil
}

func platformString(p *v1.Platform) string {
	if p == nil {
		return "unknown platform"
	}
	return p.String()
}

// realPlatform leaves out entries that are not runnable images (BuildKit attestations).
func realPlatform(p *v1.Platform) bool {
	return p != nil && p.OS != "unknown" && p.Architecture != "unknown" && p.OS != "" && p.Architecture != ""
}

// availablePlatforms lists the distinct platforms of an index in index order.
func availablePlatforms(im *v1.IndexManifest) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range im.Manifests {
		if !realPlatform(d.Platform) {
			continue
		}
		s := d.Platform.String()
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// normVariant treats arm64's default variant "v8" as no variant.
func normVariant(p v1.Platform) string {
	if p.Architecture == "arm64" && p.Variant == "v8" {
		return ""
	}
	return p.Variant
}

// platformMatches reports whether got satisfies want (an empty variant matches any).
func platformMatches(want v1.Platform, got *v1.Platform) bool {
	if got == nil || got.OS != want.OS || got.Architecture != want.Architecture {
		return false
	}
	if want.Variant != "" && normVariant(want) != normVariant(*got) {
		return false
	}
	return want.OSVersion == "" || want.OSVersion == got.OSVersion
}

// pickPlatform chooses an index child: an exact variant match first, then the first match.
func pickPlatform(im *v1.IndexManifest, want *v1.Platform) (v1.Descriptor, error) {
	avail := availablePlatforms(im)
	if want == nil {
		if len(avail) == 1 {
			for _, d := range im.Manifests {
				if realPlatform(d.Platform) {
					return d, nil
				}
			}
		}
		return v1.Descriptor{}, fmt.Errorf("no platform chosen and the index holds %d (%s)",
			len(avail), strings.Join(avail, ", "))
	}
	var first *v1.Descriptor
	for i, d := range im.Manifests {
		if !platformMatches(*want, d.Platform) {
			continue
		}
		if normVariant(*d.Platform) == normVariant(*want) {
			return d, nil
		}
		if first == nil {
			first = &im.Manifests[i]
		}
	}
	if first != nil {
		return *first, nil
	}
	return v1.Descriptor{}, fmt.Errorf("%w: no %s image in the index; it has: %s",
		ErrNotFound, want, strings.Join(avail, ", "))
}

// image builds a v1.Image over the cache whose blobs are all read through the verifier.
func (c *Cache) image(d v1.Descriptor) (v1.Image, error) {
	m, raw, err := c.readManifest(d)
	if err != nil {
		return nil, err
	}
	mt := d.MediaType
	if mt == "" {
		mt = m.MediaType
	}
	img, err := partial.CompressedToImage(&imageCore{c: c, mt: mt, raw: raw, m: m})
	if err != nil {
		return nil, err
	}
	return &cachedImage{Image: img, c: c}, nil
}

// imageCore is the minimal image partial.CompressedToImage extends.
type imageCore struct {
	c   *Cache
	mt  types.MediaType
	raw []byte
	m   *v1.Manifest
}

func (i *imageCore) MediaType() (types.MediaType, error) { return i.mt, nil }
func (i *imageCore) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *imageCore) RawConfigFile() ([]byte, error) {
	return i.c.readBlob(i.m.Config.Digest, i.m.Config.Size)
}

func (i *imageCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.m.Config.Digest {
		return &blobLayer{c: i.c, d: i.m.Config}, nil
	}
	for _, l := range i.m.Layers {
		if l.Digest == h {
			return &blobLayer{c: i.c, d: l}, nil
		}
	}
	return nil, fmt.Errorf("layer %s is not in manifest: %w", h, ErrNotFound)
}

// Descriptor lets partial.Descriptor report the stored media type.
func (i *imageCore) Descriptor() (*v1.Descriptor, error) {
	h, n, err := v1.SHA256(bytes.NewReader(i.raw))
	if err != nil {
		return nil, err
	}
	return &v1.Descriptor{MediaType: i.mt, Size: n, Digest: h}, nil
}

// blobLayer is one layer (or the config) of a cached image.
type blobLayer struct {
	c *Cache
	d v1.Descriptor
}

func (l *blobLayer) Digest() (v1.Hash, error)            { return l.d.Digest, nil }
func (l *blobLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.d.MediaType, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error)  { return l.c.openBlob(l.d.Digest, l.d.Size) }
func (l *blobLayer) Descriptor() (*v1.Descriptor, error) { d := l.d; return &d, nil }

// index builds a v1.ImageIndex over the cache.
func (c *Cache) index(d v1.Descriptor) (v1.ImageIndex, error) {
	im, raw, err := c.readIndexManifest(d)
	if err != nil {
		return nil, err
	}
	mt := d.MediaType
	if mt == "" {
		mt = im.MediaType
	}
	return &cachedIndex{c: c, d: v1.Descriptor{MediaType: mt, Size: int64(len(raw)), Digest: d.Digest}, raw: raw, im: im}, nil
}

type cachedIndex struct {
	c   *Cache
	d   v1.Descriptor
	raw []byte
	im  *v1.IndexManifest
}

func (x *cachedIndex) MediaType() (types.MediaType, error) { return x.d.MediaType, nil }
func (x *cachedIndex) Digest() (v1.Hash, error)            { return x.d.Digest, nil }
func (x *cachedIndex) Size() (int64, error)                { return x.d.Size, nil }
func (x *cachedIndex) RawManifest() ([]byte, error)        { return x.raw, nil }
func (x *cachedIndex) IndexManifest() (*v1.IndexManifest, error) {
	im := *x.im
	im.Manifests = append([]v1.Descriptor{}, x.im.Manifests...)
	return &im, nil
}

func (x *cachedIndex) child(h v1.Hash) (v1.Descriptor, error) {
	for _, d := range x.im.Manifests {
		if d.Digest == h {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("%s is not in index %s: %w", h, x.d.Digest, ErrNotFound)
}

func (x *cachedIndex) Image(h v1.Hash) (v1.Image, error) {
	d, err := x.child(h)
	if err != nil {
		return nil, err
	}
	return x.c.image(d)
}

func (x *cachedIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	d, err := x.child(h)
	if err != nil {
		return nil, err
	}
	return x.c.index(d)
}
