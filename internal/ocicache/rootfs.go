package ocicache

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-os/kiln/internal/archive"
	"github.com/kiln-os/kiln/internal/atomicfile"
	"github.com/kiln-os/kiln/internal/streamio"
)

// DefaultPath is the PATH that ImportRootfs puts in an image's environment.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// rootfsCreatedBy is the history entry of an imported root filesystem. It names no file or
// host, so that the same tar gives the same config wherever it is imported.
const rootfsCreatedBy = "kiln: root filesystem imported from a tar"

type rootfsConfig struct {
	created time.Time
	edits   []func(*v1.Config)
}

// RootfsOption configures ImportRootfs.
type RootfsOption func(*rootfsConfig)

// WithCreated sets the image's creation time (the config's "created" and its history entry;
// default the Unix epoch). Pass a fixed time such as SOURCE_DATE_EPOCH, never the wall clock.
// The time is stored in UTC.
func WithCreated(t time.Time) RootfsOption {
	return func(c *rootfsConfig) { c.created = t }
}

// WithImageConfig changes the image's runtime configuration (Env, Cmd, Entrypoint, WorkingDir,
// Labels, ...) after ImportRootfs has set its defaults: Env PATH=DefaultPath and Cmd
// ["/bin/sh"]. Several are applied in order.
func WithImageConfig(f func(*v1.Config)) RootfsOption {
	return func(c *rootfsConfig) { c.edits = append(c.edits, f) }
}

// ImportRootfs stores a tar of a root filesystem as a one-layer OCI image for platform and
// adds it to the OCI index named ref, which is what kiln's first base image is made from
// (a Debian tree written by mmdebstrap, with no image to start from).
//
// The input is an uncompressed tar, or a gzip-compressed one (recognised by its magic number
// and decompressed on the fly); zstd, xz and bzip2 input is refused with a message saying to
// decompress it. The whole tar is checked while it is read: a damaged or truncated archive, one
// without entries or without its end-of-archive blocks, or one followed by other data is an
// error. Its bytes become the layer unchanged, so the layer's diff ID is the sha256 of the
// uncompressed tar. The layer is compressed with internal/archive's gzip writer at
// archive.DefaultGzipLevel and streamed to a temporary file, hashed on the way: the tar is
// never held in memory.
//
// The image config carries platform's os, architecture and variant, the layer's diff ID,
// created (WithCreated, default the Unix epoch) and one history entry, Env
// PATH=DefaultPath and Cmd ["/bin/sh"] (see WithImageConfig). Config, manifest and index are
// JSON of go-containerregistry's types with OCI media types, so the same tar, ref, platform
// and options always give the same digests.
//
// When ref already names an OCI index (or Docker manifest list), the new index keeps its
// entries except those for the same platform (arm64's variant v8 is the same as none) and
// attestations that refer to them, and adds the new image; the index's own annotations are
// dropped. When ref names nothing, the index has the one image. When ref names a single image,
// it is an error. Entries are sorted by platform string, then digest, so the index does not
// depend on the order platforms were imported in. ImportRootfs returns the new index's
// descriptor; nothing is named unless every blob was stored.
func (c *Cache) ImportRootfs(r io.Reader, ref string, platform v1.Platform, opts ...RootfsOption) (v1.Descriptor, error) {
	cfg := rootfsConfig{created: time.Unix(0, 0)}
	for _, o := range opts {
		o(&cfg)
	}
	nr, err := parseRef(ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if _, ok := nr.(name.Digest); ok {
		return v1.Descriptor{}, fmt.Errorf("importing a root filesystem as %s: give a tag, not a digest (the index's digest is known only after the import)", ref)
	}
	if platform.OS == "" || platform.Architecture == "" {
		return v1.Descriptor{}, fmt.Errorf("importing a root filesystem as %s: platform %q needs an OS and an architecture, such as linux/arm64",
			Familiar(nr.Name()), platform.String())
	}
	what := fmt.Sprintf("importing the %s root filesystem as %s", platform.String(), Familiar(nr.Name()))
	unlock, err := c.readLock()
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer unlock()

	layer, diffID, err := c.writeRootfsLayer(r)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: %w", what, err)
	}
	created := v1.Time{Time: cfg.created.UTC()}
	cf := v1.ConfigFile{
		Architecture: platform.Architecture,
		OS:           platform.OS,
		OSVersion:    platform.OSVersion,
		Variant:      platform.Variant,
		OSFeatures:   platform.OSFeatures,
		Created:      created,
		History:      []v1.History{{Created: created, CreatedBy: rootfsCreatedBy}},
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
		Config: v1.Config{
			Env: []string{"PATH=" + DefaultPath},
			Cmd: []string{"/bin/sh"},
		},
	}
	for _, f := range cfg.edits {
		f(&cf.Config)
	}
	config, err := c.writeJSON(&cf, types.OCIConfigJSON)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: config: %w", what, err)
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        config,
		Layers:        []v1.Descriptor{layer},
	}
	manifest, err := c.writeJSON(&m, types.OCIManifestSchema1)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: manifest: %w", what, err)
	}
	p := platform
	p.OSFeatures = append([]string(nil), platform.OSFeatures...)
	p.Features = append([]string(nil), platform.Features...)
	manifest.Platform = &p

	unlockIndex, err := c.indexLock()
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer unlockIndex()
	d, err := c.addToIndex(nr, manifest)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("%s: %w", what, err)
	}
	return d, nil
}

// writeJSON stores v as a JSON blob of media type mt and returns its descriptor. Caller holds
// readLock.
func (c *Cache) writeJSON(v any, mt types.MediaType) (v1.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return v1.Descriptor{}, err
	}
	h, n, err := c.writeBlob(bytes.NewReader(b), v1.Hash{}, int64(len(b)))
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Size: n, Digest: h}, nil
}

// addToIndex writes the index ref should name once manifest (which carries its platform) is
// added, and names it. Caller holds readLock and indexLock.
func (c *Cache) addToIndex(ref name.Reference, manifest v1.Descriptor) (v1.Descriptor, error) {
	ds, err := c.readIndex()
	if err != nil {
		return v1.Descriptor{}, err
	}
	var children []v1.Descriptor
	for _, d := range ds {
		if refName(d) != ref.Name() {
			continue
		}
		if !d.MediaType.IsIndex() {
			return v1.Descriptor{}, fmt.Errorf("%s names a single image (%s, %s), not an index; import under another name or remove it first with `kiln cache rm %s`",
				Familiar(ref.Name()), d.Digest, d.MediaType, Familiar(ref.Name()))
		}
		im, _, err := c.readIndexManifest(d)
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("reading the index %s names: %w", Familiar(ref.Name()), err)
		}
		children = replacePlatform(im.Manifests, *manifest.Platform)
	}
	children = append(children, manifest)
	sort.SliceStable(children, func(i, j int) bool {
		a, b := platformKey(children[i].Platform), platformKey(children[j].Platform)
		if a != b {
			return a < b
		}
		return children[i].Digest.String() < children[j].Digest.String()
	})
	index, err := c.writeJSON(&v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests:     children,
	}, types.OCIImageIndex)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("index: %w", err)
	}
	if err := c.tagLocked(ref, index); err != nil {
		return v1.Descriptor{}, err
	}
	return index, nil
}

// annotationRefersTo is how BuildKit ties an attestation manifest to the image it describes.
const annotationRefersTo = "vnd.docker.reference.digest"

// replacePlatform returns the entries of an index that are not for platform p, nor
// attestations of entries that are.
func replacePlatform(ds []v1.Descriptor, p v1.Platform) []v1.Descriptor {
	gone := map[string]bool{}
	for _, d := range ds {
		if samePlatform(d.Platform, p) {
			gone[d.Digest.String()] = true
		}
	}
	var out []v1.Descriptor
	for _, d := range ds {
		if !gone[d.Digest.String()] && !gone[d.Annotations[annotationRefersTo]] {
			out = append(out, d)
		}
	}
	return out
}

// samePlatform reports whether an index entry is for platform p.
func samePlatform(got *v1.Platform, p v1.Platform) bool {
	return got != nil && got.OS == p.OS && got.Architecture == p.Architecture &&
		normVariant(*got) == normVariant(p) && got.OSVersion == p.OSVersion
}

// platformKey orders index entries; entries without a platform go last.
func platformKey(p *v1.Platform) string {
	if p == nil {
		return "\xff"
	}
	return p.String()
}

// writeRootfsLayer checks the tar while compressing it into a temporary file, stores that as
// a blob, and returns the layer's descriptor and diff ID. Caller holds readLock.
func (c *Cache) writeRootfsLayer(r io.Reader) (v1.Descriptor, v1.Hash, error) {
	src, gzipped, err := uncompressedTar(r)
	if err != nil {
		return v1.Descriptor{}, v1.Hash{}, err
	}
	pr, pw := io.Pipe()
	type stored struct {
		tmp  *atomicfile.File
		h    v1.Hash
		size int64
		err  error
	}
	done := make(chan stored, 1)
	go func() {
		tmp, h, n, err := c.writeTemp(pr, v1.Hash{}, -1)
		pr.CloseWithError(err) // a failed write stops the producer
		done <- stored{tmp, h, n, err}
	}()

	diff := sha256.New()
	zw, err := archive.NewGzipWriter(pw, archive.DefaultGzipLevel)
	if err == nil {
		err = checkTar(io.TeeReader(src, io.MultiWriter(diff, zw)), gzipped)
		if err == nil {
			err = zw.Close()
		}
	}
	if err != nil {
		pw.CloseWithError(err)
		if zw != nil {
			zw.Close() // stops its goroutines; the pipe is closed, so this fails
		}
	} else {
		pw.Close()
	}
	res := <-done
	if err == nil {
		err = res.err
	}
	if err != nil {
		if res.err == nil {
			res.tmp.Abort()
		}
		return v1.Descriptor{}, v1.Hash{}, err
	}
	if err := c.commitBlob(res.tmp, res.h); err != nil {
		return v1.Descriptor{}, v1.Hash{}, fmt.Errorf("layer: %w", err)
	}
	diffID := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diff.Sum(nil))}
	return v1.Descriptor{MediaType: types.OCILayer, Size: res.size, Digest: res.h}, diffID, nil
}

// uncompressedTar looks at the first bytes of r: gzip is decompressed (and reported), other
// compressions are refused, anything else is passed on for checkTar to judge.
func uncompressedTar(r io.Reader) (io.Reader, bool, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, fmt.Errorf("reading the tar: %w", err)
	}
	for _, m := range []struct {
		magic []byte
		name  string
	}{
		{[]byte{0x28, 0xb5, 0x2f, 0xfd}, "zstd"},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, "xz"},
		{[]byte("BZh"), "bzip2"},
	} {
		if bytes.HasPrefix(head, m.magic) {
			return nil, false, fmt.Errorf("the input is %s-compressed, not an uncompressed tar; decompress it first (gzip is also accepted)", m.name)
		}
	}
	if !bytes.HasPrefix(head, []byte{0x1f, 0x8b}) {
		return br, false, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, false, fmt.Errorf("reading the gzip-compressed tar: %w", err)
	}
	return zr, true, nil
}

// checkTar reads a whole tar archive: every header must parse and every body be complete, the
// archive must hold at least one entry and end with its end-of-archive blocks, and what
// follows them (block padding) must be zeros. It reads r to its end; gzipped says that r is
// the decompressed input, for messages.
func checkTar(r io.Reader, gzipped bool) error {
	tail := &tailReader{r: r}
	tr := tar.NewReader(tail)
	n := 0
	for {
		_, err := tr.Next() // skips the body by reading it
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if n == 0 && gzipped {
				return fmt.Errorf("the input is gzip-compressed but what it holds is not a tar (%w); give a tar of the root filesystem", err)
			}
			if n == 0 {
				return fmt.Errorf("the input is not an uncompressed tar (%w); give a tar of the root filesystem, decompressed first (gzip is also accepted)", err)
			}
			return fmt.Errorf("the tar is damaged or truncated after %d entries: %w", n, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("the tar holds no files; give a tar of the root filesystem")
	}
	if tail.n < len(tail.buf) || !streamio.IsZero(tail.buf[:]) {
		return fmt.Errorf("the tar is truncated: it ends after %d entries without the end-of-archive blocks", n)
	}
	buf := make([]byte, 32<<10)
	for {
		k, err := r.Read(buf)
		if !streamio.IsZero(buf[:k]) {
			return errors.New("the input holds data after the end of the tar archive; give a single tar")
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the tar: %w", err)
		}
	}
}

// tailReader remembers the last 1024 bytes read: the two zero blocks that end a tar when the
// tar reader reports the end.
type tailReader struct {
	r   io.Reader
	buf [1024]byte
	n   int // bytes read so far, capped at len(buf)
}

func (t *tailReader) Read(p []byte) (int, error) {
	k, err := t.r.Read(p)
	got := p[:k]
	if len(got) >= len(t.buf) {
		copy(t.buf[:], got[len(got)-len(t.buf):])
	} else {
		copy(t.buf[:], t.buf[len(got):])
		copy(t.buf[len(t.buf)-len(got):], got)
	}
	t.n = min(t.n+k, len(t.buf))
	return k, err
}
