package assemble

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sort"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/kiln-os/kiln/internal/archive"
	"github.com/kiln-os/kiln/internal/layers"
	"github.com/kiln-os/kiln/internal/ocicache"
)

// imageLayers adapts an image's layers to the flattener: each Open decompresses the cached
// blob again, and Close reports a digest mismatch found while reading.
func imageLayers(r *resolved) []layers.Layer { return ImageLayers(r.image, r.ref) }

// ImageLayers is the adapter kiln build flattens images with, for other commands (kiln cache
// export -format filesystem): each Open decompresses the layer (gzip, zstd or none) again, a
// cache blob that fails its digest check is reported as corrupt with its digest, and ref
// names the image in errors.
//
// For an image read from the cache, each layer's header index is kept in the cache
// (ocicache.WriteLayerIndex, layers.IndexStore), so a later flattening reads the layer once;
// and a blob is checked against its digest once per list: once a read has gone through the
// whole blob and found it intact, later opens of the same layer read it without hashing and
// do not read past what the flattener needs.
//
// A compressed layer from the cache is decompressed once: the first read that goes through
// it whole also writes its uncompressed tar into the cache (ocicache.CreateUnpackedLayer),
// and every later open reads that copy, checked against the layer's DiffID once per list.
// KILN_UNPACKED_LAYERS=0 turns this off (the copies cost as much disk as the content).
func ImageLayers(img v1.Image, ref string) []layers.Layer {
	ls, err := img.Layers()
	if err != nil {
		return []layers.Layer{layers.LayerFunc(func() (io.ReadCloser, error) {
			return nil, fmt.Errorf("listing the layers of %s: %w", ref, err)
		})}
	}
	c := ocicache.CacheOf(img)
	// The DiffIDs come from the config: a cache layer's own DiffID method decompresses it.
	var diffIDs []v1.Hash
	if cf, err := img.ConfigFile(); err == nil && c != nil && os.Getenv("KILN_UNPACKED_LAYERS") != "0" &&
		len(cf.RootFS.DiffIDs) == len(ls) {
		diffIDs = cf.RootFS.DiffIDs
	}
	out := make([]layers.Layer, len(ls))
	for i, l := range ls {
		il := &imageLayer{l: l}
		if c != nil {
			if d, err := l.Digest(); err == nil {
				il.store = &layerIndexStore{c: c, h: d}
				if diffIDs != nil && diffIDs[i] != d && diffIDs[i].Algorithm == "sha256" {
					il.diffID = diffIDs[i]
				}
			}
		}
		out[i] = il
	}
	return out
}

// imageLayer is one layer of ImageLayers.
type imageLayer struct {
	l     v1.Layer
	store *layerIndexStore // nil when the image is not from the cache
	// verified: a read went through the whole cache blob and its digest matched.
	verified atomic.Bool
	// diffID is the digest of the uncompressed layer when it has (or gets) an unpacked copy
	// in the cache; zero otherwise.
	diffID v1.Hash
	// copyVerified: a read went through the whole unpacked copy and it matched diffID.
	copyVerified atomic.Bool
}

func (il *imageLayer) Open() (io.ReadCloser, error) { return openLayer(il) }

// IndexStore implements layers.IndexedLayer.
func (il *imageLayer) IndexStore() layers.IndexStore {
	if il.store == nil {
		return nil
	}
	return il.store
}

// layerIndexStore keeps a layer's header index in the cache, under its blob digest.
type layerIndexStore struct {
	c *ocicache.Cache
	h v1.Hash
}

func (s *layerIndexStore) OpenIndex() (io.ReadSeekCloser, error) { return s.c.OpenLayerIndex(s.h) }

func (s *layerIndexStore) WriteIndex(write func(io.Writer) error) error {
	return s.c.WriteLayerIndex(s.h, write)
}

// openLayer decompresses a layer with klauspost's decoders (about twice as fast as the
// standard library's gzip).
func openLayer(il *imageLayer) (io.ReadCloser, error) {
	l := il.l
	if il.diffID.Hex != "" {
		if f, err := il.store.c.OpenUnpackedLayer(il.store.h, il.diffID); err == nil {
			return newCopyReader(il, f), nil
		}
	}
	mt, err := l.MediaType()
	if err != nil {
		return nil, err
	}
	raw, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	// A cache blob is a Verifier; one this list has verified already is read as a plain file.
	_, verifying := raw.(ocicache.Verifier)
	trusted := verifying && il.verified.Load()
	if trusted {
		raw = ocicache.Unverified(raw)
	}
	d := &decompressed{raw: raw, layer: l, trusted: trusted}
	if verifying && !trusted {
		d.verified = &il.verified
	}
	switch mt {
	case types.OCILayer, types.DockerLayer, types.OCIRestrictedLayer, types.DockerForeignLayer:
		zr, err := gzip.NewReader(raw)
		if err != nil {
			err = ocicache.Diagnose(raw, err)
			raw.Close()
			return nil, fmt.Errorf("layer %s: %w", digestOf(l), err)
		}
		d.Reader, d.closeZ = zr, zr.Close
		d.teeCopy(il)
		return d, nil
	case types.OCIUncompressedLayer, types.OCIUncompressedRestrictedLayer, types.DockerUncompressedLayer:
		d.Reader = raw
		return d, nil
	case types.OCILayerZStd:
		zr, err := zstd.NewReader(raw, zstd.WithDecoderConcurrency(1))
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("layer %s: %w", digestOf(l), err)
		}
		d.Reader, d.closeZ = zr, func() error { zr.Close(); return nil }
		d.teeCopy(il)
		return d, nil
	}
	raw.Close()
	return nil, fmt.Errorf("layer %s has media type %s, which kiln cannot unpack", digestOf(l), mt)
}

func digestOf(l v1.Layer) string {
	d, err := l.Digest()
	if err != nil {
		return "(unknown digest)"
	}
	return d.String()
}

// decompressed closes both streams. It reads the compressed stream to its end first, so
// the cache's digest check runs even when the tar reader stopped at the end-of-archive
// marker before the padding.
type decompressed struct {
	io.Reader
	raw    io.ReadCloser
	closeZ func() error
	layer  v1.Layer
	// reported: Read returned the blob's corruption, so Close need not repeat it.
	reported bool
	// trusted: the blob was verified earlier in this list; Close reads nothing more.
	trusted bool
	// verified, when not nil, is set once Close has found the whole blob intact.
	verified *atomic.Bool
	// copy, when not nil, receives the uncompressed stream (hashed into sum), to be kept as
	// the layer's unpacked copy if the whole stream is read, the blob is intact and sum
	// matches diffID.
	copy *ocicache.UnpackedWriter
	sum  hash.Hash
	il   *imageLayer
}

// teeCopy makes d write the layer's unpacked copy as it is read, when the layer should have
// one and this read will check the blob (a trusted read may stop early).
func (d *decompressed) teeCopy(il *imageLayer) {
	if il.diffID.Hex == "" || d.trusted {
		return
	}
	u, err := il.store.c.CreateUnpackedLayer(il.store.h, il.diffID)
	if err != nil {
		return // no copy: the next build decompresses again
	}
	d.copy, d.sum, d.il = u, sha256.New(), il
	d.Reader = io.TeeReader(d.Reader, io.MultiWriter(d.sum, u))
}

// endCopy keeps the unpacked copy when the whole stream went through intact, else drops it.
func (d *decompressed) endCopy(ok bool) {
	if d.copy == nil {
		return
	}
	u := d.copy
	d.copy = nil
	if ok && hex.EncodeToString(d.sum.Sum(nil)) == d.il.diffID.Hex {
		// A cache that cannot keep it costs the next build time only. The bytes just written
		// were hashed on their way: this build need not check the copy again.
		if u.Commit() == nil {
			d.il.copyVerified.Store(true)
		}
		return
	}
	u.Abort()
}

func (d *decompressed) Close() (err error) {
	if d.trusted {
		d.Abandon()
		return nil
	}
	defer func() { d.endCopy(err == nil) }()
	var errs []error
	if _, err := io.Copy(io.Discard, d.Reader); err != nil {
		errs = append(errs, err)
	}
	if d.closeZ != nil {
		errs = append(errs, d.closeZ())
	}
	if _, err := io.Copy(io.Discard, d.raw); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, d.raw.Close())
	if err := errors.Join(errs...); err != nil {
		if errors.Is(err, ocicache.ErrCorrupt) { // the blob's verdict explains the rest
			if d.reported {
				return nil // Read returned it already
			}
			for _, e := range errs {
				if errors.Is(e, ocicache.ErrCorrupt) {
					return fmt.Errorf("layer %s: %w", digestOf(d.layer), e)
				}
			}
		}
		return fmt.Errorf("layer %s: %w", digestOf(d.layer), err)
	}
	if d.verified != nil {
		d.verified.Store(true)
	}
	return nil
}

// Read reports a decompression error on a cache blob that does not match its digest as the
// corruption it is (naming the blob and the way out), not as "flate: corrupt input".
func (d *decompressed) Read(p []byte) (int, error) {
	n, err := d.Reader.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = ocicache.Diagnose(d.raw, err)
		d.reported = d.reported || errors.Is(err, ocicache.ErrCorrupt)
	}
	return n, err
}

// Abandon closes both streams without reading the rest (layers.Abandoner): a cancelled build
// must not decompress the rest of a large layer first.
func (d *decompressed) Abandon() {
	d.endCopy(false)
	if d.closeZ != nil {
		_ = d.closeZ()
	}
	_ = d.raw.Close()
}

// writeOCILayout writes an image as an OCI image layout folder (for volumes in format oci).
func writeOCILayout(w archive.Writer, dir string, r *resolved) error {
	manifest, err := r.image.RawManifest()
	if err != nil {
		return err
	}
	cfgName, err := r.image.ConfigName()
	if err != nil {
		return err
	}
	cfg, err := r.image.RawConfigFile()
	if err != nil {
		return err
	}
	mt, err := r.image.MediaType()
	if err != nil {
		return err
	}
	index, err := json.Marshal(struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     types.MediaType `json:"mediaType"`
		Manifests     []v1.Descriptor `json:"manifests"`
	}{2, types.OCIImageIndex, []v1.Descriptor{{
		MediaType: mt, Digest: r.digest, Size: int64(len(manifest)),
		Platform: &v1.Platform{OS: r.config.OS, Architecture: r.config.Architecture, Variant: r.config.Variant},
	}}})
	if err != nil {
		return err
	}
	small := map[string][]byte{
		dir + "/oci-layout":     []byte(ocicache.LayoutJSON),
		dir + "/index.json":     index,
		blobPath(dir, r.digest): manifest,
		blobPath(dir, cfgName):  cfg,
	}
	names := make([]string, 0, len(small))
	for n := range small {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := w.WriteEntry(regular(n, 0o644, len(small[n])), bytes.NewReader(small[n])); err != nil {
			return err
		}
	}
	ls, err := r.image.Layers()
	if err != nil {
		return err
	}
	seen := map[v1.Hash]bool{}
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		if seen[d] {
			continue
		}
		seen[d] = true
		size, err := l.Size()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		err = w.WriteEntry(archive.Entry{Header: &tar.Header{Typeflag: tar.TypeReg, Name: blobPath(dir, d), Mode: 0o644, Size: size}}, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func blobPath(dir string, h v1.Hash) string {
	return dir + "/" + ocicache.BlobName(h)
}

// copyReader reads a layer's unpacked copy from the cache. Unless the copy was found intact
// earlier in this list, it hashes what it reads and, at the end, compares it with the
// layer's DiffID: a damaged copy is removed and reported as corrupt (the next build
// decompresses the layer again). Close reads the rest first so that the check always runs.
type copyReader struct {
	f       *os.File
	il      *imageLayer
	sum     hash.Hash // nil when trusted
	done    bool      // the end was reached and checked
	err     error
	trusted bool
}

func newCopyReader(il *imageLayer, f *os.File) *copyReader {
	c := &copyReader{f: f, il: il, trusted: il.copyVerified.Load()}
	if !c.trusted {
		c.sum = sha256.New()
	}
	return c
}

func (c *copyReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.f.Read(p)
	if c.sum != nil {
		c.sum.Write(p[:n])
	}
	if errors.Is(err, io.EOF) && c.sum != nil && !c.done {
		c.done = true
		if got := hex.EncodeToString(c.sum.Sum(nil)); got != c.il.diffID.Hex {
			_ = c.il.store.c.RemoveUnpackedLayer(c.il.store.h, c.il.diffID, c.f)
			c.err = fmt.Errorf("layer %s: its unpacked copy %s has digest sha256:%s, not the layer's DiffID %s: %w "+
				"(the copy is removed; run the build again to decompress the layer anew)",
				digestOf(c.il.l), c.f.Name(), got, c.il.diffID, ocicache.ErrCorrupt)
			return n, c.err
		}
		c.il.copyVerified.Store(true)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("layer %s: reading its unpacked copy: %w", digestOf(c.il.l), err)
	}
	return n, err
}

// Close reads the rest of an unchecked copy, so that its check runs, and closes it.
func (c *copyReader) Close() error {
	var err error
	if c.sum != nil && !c.done && c.err == nil {
		_, err = io.Copy(io.Discard, c)
	}
	return errors.Join(err, c.f.Close())
}

// Abandon closes the copy without reading the rest (layers.Abandoner).
func (c *copyReader) Abandon() { _ = c.f.Close() }
