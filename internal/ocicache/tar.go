package ocicache

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-os/kiln/internal/atomicfile"
)

type importConfig struct {
	name string
}

// ImportOption configures Import.
type ImportOption func(*importConfig)

// WithName names what Import reads. For a tar holding one image or index it replaces the name
// the tar gives (a reference without a tag, such as "foo/bar", keeps a tag-only name the tar
// gives, such as "v1", giving "foo/bar:v1"). For a tar holding several, it supplies the
// repository for entries named only by a tag.
func WithName(ref string) ImportOption {
	return func(c *importConfig) { c.name = ref }
}

// named pairs a canonical reference with what it names.
type named struct {
	ref  name.Reference
	desc v1.Descriptor
}

// Import reads an OCI image layout tar (as BuildKit's OCI exporter, skopeo or ExportOCI write
// it; members in any order, "./" prefixes accepted), verifies every blob against its name
// while streaming it to a temporary file, checks that every named image is complete, and only
// then stores the blobs and names the images. It returns the canonical references, sorted.
// Names come from WithName, else the io.containerd.image.name annotation, else
// org.opencontainers.image.ref.name.
func (c *Cache) Import(r io.Reader, opts ...ImportOption) ([]string, error) {
	var cfg importConfig
	for _, o := range opts {
		o(&cfg)
	}
	unlock, err := c.readLock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	l, err := c.readLayoutTar(r)
	if err != nil {
		return nil, fmt.Errorf("importing: %w", err)
	}
	defer l.discard()
	out := make([]named, 0, len(l.entries))
	for _, d := range l.entries {
		ref, err := importName(d, len(l.entries) == 1, cfg.name)
		if err != nil {
			return nil, fmt.Errorf("importing: %w", err)
		}
		out = append(out, named{ref, d})
	}
	// Every blob verified, every image complete and named: store, then name.
	if err := l.commit(); err != nil {
		return nil, fmt.Errorf("importing: %w", err)
	}
	if err := c.tagAll(out); err != nil {
		return nil, fmt.Errorf("importing: %w", err)
	}
	refs := make([]string, 0, len(out))
	seen := map[string]bool{}
	for _, n := range out {
		if !seen[n.ref.Name()] {
			seen[n.ref.Name()] = true
			refs = append(refs, n.ref.Name())
		}
	}
	sort.Strings(refs)
	return refs, nil
}

// ImportBlobs reads an OCI image layout tar exactly as Import does (every blob verified while
// it is streamed to a temporary file, every manifest of index.json checked to be complete with
// what the tar and the cache hold) and stores its blobs, but names nothing: index.json of the
// cache is left alone. It returns the manifests of the tar's index.json in their order, with
// media types filled in (from the manifest itself when the entry lacks one) and annotations
// and platforms as the tar gives them. On error nothing is stored.
//
// Blobs that no name reaches are removed by the next Remove or Clean. A caller that builds an
// index over the returned manifests and names it with Tag should call Hold first and release
// it after Tag, so that garbage collection in another process cannot run in between.
func (c *Cache) ImportBlobs(r io.Reader) ([]v1.Descriptor, error) {
	unlock, err := c.readLock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	l, err := c.readLayoutTar(r)
	if err != nil {
		return nil, fmt.Errorf("importing blobs: %w", err)
	}
	defer l.discard()
	if err := l.commit(); err != nil {
		return nil, fmt.Errorf("importing blobs: %w", err)
	}
	out := make([]v1.Descriptor, len(l.entries))
	for i, d := range l.entries {
		out[i] = *d.DeepCopy()
	}
	return out, nil
}

// tempBlob is a verified blob of an imported tar waiting in a temporary file.
type tempBlob struct {
	f    *atomicfile.File
	size int64
}

// layoutTar is an OCI layout tar read by readLayoutTar: every blob verified and waiting in a
// temporary file, every entry of its index.json complete. Nothing is in the cache yet.
type layoutTar struct {
	c       *Cache
	temps   map[v1.Hash]tempBlob
	entries []v1.Descriptor // index.json's manifests, in order, media types filled
}

// readLayoutTar streams an OCI layout tar into verified temporary files and checks that every
// manifest its index.json names is complete, looking in the tar first and then in the cache.
// The caller holds readLock and calls discard when done (also after commit).
func (c *Cache) readLayoutTar(r io.Reader) (_ *layoutTar, err error) {
	l := &layoutTar{c: c, temps: map[v1.Hash]tempBlob{}}
	defer func() {
		if err != nil {
			l.discard()
		}
	}()
	var indexJSON []byte
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("reading tar: it is truncated (%w)", err)
		}
		if err != nil {
			return nil, fmt.Errorf("reading tar: %w", err)
		}
		p := tarPath(hdr.Name)
		switch {
		case p == layoutFile:
			var v struct {
				Version string `json:"imageLayoutVersion"`
			}
			b, err := io.ReadAll(io.LimitReader(tr, 1<<16))
			if err != nil {
				return nil, fmt.Errorf("reading tar: %s: %w", hdr.Name, err)
			}
			if err := json.Unmarshal(b, &v); err != nil || !strings.HasPrefix(v.Version, "1.") {
				return nil, fmt.Errorf("unsupported oci-layout %q", b)
			}
		case p == indexFile:
			b, err := io.ReadAll(io.LimitReader(tr, 16<<20+1))
			if err != nil {
				return nil, fmt.Errorf("reading tar: %s: %w", hdr.Name, err)
			}
			if len(b) > 16<<20 {
				return nil, errors.New("index.json is larger than 16 MiB")
			}
			indexJSON = b
		case strings.HasPrefix(p, blobsDir+"/") && hdr.Typeflag != tar.TypeDir:
			parts := strings.Split(p, "/")
			if len(parts) != 3 {
				return nil, fmt.Errorf("unexpected member %s", hdr.Name)
			}
			h := v1.Hash{Algorithm: parts[1], Hex: parts[2]}
			if err := checkHash(h); err != nil {
				return nil, fmt.Errorf("member %s: %w", hdr.Name, err)
			}
			if hdr.Typeflag != tar.TypeReg {
				return nil, fmt.Errorf("member %s is not a regular file", hdr.Name)
			}
			tmp, _, n, err := c.writeTemp(tr, h, hdr.Size)
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("reading tar: it is truncated inside member %s (%w)", hdr.Name, err)
			}
			if err != nil {
				return nil, fmt.Errorf("member %s: %w", hdr.Name, err)
			}
			if old, ok := l.temps[h]; ok {
				old.f.Abort()
			}
			l.temps[h] = tempBlob{tmp, n}
		}
	}
	if indexJSON == nil {
		return nil, errors.New("not an OCI layout tar (no index.json)")
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(indexJSON))
	if err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	if len(im.Manifests) == 0 {
		return nil, errors.New("index.json names no images")
	}
	for _, d := range im.Manifests {
		what := entryLabel(d)
		if !l.present(d) {
			return nil, fmt.Errorf("%s: %w, nor in the tar", what, ErrNotFound)
		}
		if d.MediaType == "" {
			b, err := l.read(d)
			if err != nil {
				return nil, err
			}
			if d.MediaType, err = sniffMediaType(b); err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
		}
		check := func(b v1.Descriptor, manifest bool) error {
			if manifest || !b.MediaType.IsDistributable() || l.present(b) {
				return nil
			}
			return fmt.Errorf("blob %s of %s: %w, nor in the tar", b.Digest, what, ErrNotFound)
		}
		if err := walkWith(d, l.read, check, map[v1.Hash]bool{}); err != nil {
			return nil, err
		}
		l.entries = append(l.entries, d)
	}
	return l, nil
}

// entryLabel names an index.json entry in messages: its digest, and its name when it has one.
func entryLabel(d v1.Descriptor) string {
	for _, k := range []string{AnnotationContainerdName, AnnotationRefName} {
		if n := d.Annotations[k]; n != "" {
			return fmt.Sprintf("manifest %s (%s)", d.Digest, Familiar(n))
		}
	}
	return "manifest " + d.Digest.String()
}

// read returns a small blob from the tar, else from the cache.
func (l *layoutTar) read(d v1.Descriptor) ([]byte, error) {
	if t, ok := l.temps[d.Digest]; ok {
		if d.Size != t.size {
			return nil, fmt.Errorf("%w: blob %s has %d bytes, descriptor says %d", ErrCorrupt, d.Digest, t.size, d.Size)
		}
		if t.size > 16<<20 {
			return nil, fmt.Errorf("blob %s: %d bytes is too large for a manifest or config", d.Digest, t.size)
		}
		return os.ReadFile(t.f.Name()) // verified while it was written
	}
	return l.c.readBlob(d.Digest, d.Size)
}

// present reports whether the tar or the cache holds d at the right size.
func (l *layoutTar) present(d v1.Descriptor) bool {
	if t, ok := l.temps[d.Digest]; ok {
		return t.size == d.Size
	}
	return l.c.hasBlob(d)
}

// commit moves every blob into the cache, in digest order.
func (l *layoutTar) commit() error {
	hs := make(map[v1.Hash]int64, len(l.temps))
	for h, t := range l.temps {
		hs[h] = t.size
	}
	for _, h := range sortedHashes(hs) {
		t := l.temps[h]
		delete(l.temps, h)
		if err := l.c.commitBlob(t.f, h); err != nil {
			return err
		}
	}
	return nil
}

// discard removes the temporary files not committed.
func (l *layoutTar) discard() {
	for h, t := range l.temps {
		t.f.Abort()
		delete(l.temps, h)
	}
}

// tarPath normalises a member name: "./blobs//sha256/x" -> "blobs/sha256/x".
func tarPath(n string) string {
	n = path.Clean("/" + n)
	return strings.TrimPrefix(n, "/")
}

// tagOnly reports whether a ref.name annotation is just a tag ("v1"), as the OCI layout
// convention has it, rather than a full reference.
func tagOnly(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/:@")
}

// importName decides the reference an index.json entry of an imported tar is stored under.
func importName(d v1.Descriptor, single bool, override string) (name.Reference, error) {
	refAnn := d.Annotations[AnnotationRefName]
	ctrAnn := d.Annotations[AnnotationContainerdName]
	if override != "" {
		o, err := parseRef(override)
		if err != nil {
			return nil, err
		}
		_, strictErr := name.NewTag(override, name.StrictValidation)
		explicitTag := strictErr == nil
		_, isDigest := o.(name.Digest)
		switch {
		case single && (explicitTag || isDigest || !tagOnly(refAnn)):
			return o, nil
		case tagOnly(refAnn):
			return parseRef(o.Context().Name() + ":" + refAnn)
		}
	}
	switch {
	case ctrAnn != "":
		return parseRef(ctrAnn)
	case refAnn != "" && !tagOnly(refAnn):
		return parseRef(refAnn)
	case refAnn != "":
		return nil, fmt.Errorf("manifest %s is named only by the tag %q; give the repository with a name option", d.Digest, refAnn)
	}
	return nil, fmt.Errorf("manifest %s has no name (no %s or %s annotation); give one with a name option",
		d.Digest, AnnotationRefName, AnnotationContainerdName)
}

// tagAll records several names in one index.json update. Caller holds readLock.
func (c *Cache) tagAll(ns []named) error {
	for _, n := range ns {
		if d, ok := n.ref.(name.Digest); ok && d.DigestStr() != n.desc.Digest.String() {
			return fmt.Errorf("%s names digest %s but the content is %s", Familiar(n.ref.Name()), d.DigestStr(), n.desc.Digest)
		}
	}
	unlock, err := c.indexLock()
	if err != nil {
		return err
	}
	defer unlock()
	ds, err := c.readIndex()
	if err != nil {
		return err
	}
	replaced := map[string]bool{}
	for _, n := range ns {
		replaced[n.ref.Name()] = true
	}
	out := ds[:0]
	for _, d := range ds {
		if !replaced[refName(d)] {
			out = append(out, d)
		}
	}
	for _, n := range ns {
		out = append(out, indexEntry(n.ref.Name(), n.desc))
	}
	return c.writeIndexFile(out)
}

// ExportOCI writes the named images and indexes (every named entry when refs is empty) as a
// deterministic OCI image layout tar: sorted member names, one modification time (the Unix
// epoch unless WithExportTime), no owner names. Each entry of its index.json carries both
// org.opencontainers.image.ref.name and io.containerd.image.name set to the canonical
// reference. Children an index lacks in the cache (a platform-filtered pull) are left out;
// any other missing or damaged blob is an error.
func (c *Cache) ExportOCI(w io.Writer, refs ...string) error {
	unlock, err := c.readLock()
	if err != nil {
		return err
	}
	defer unlock()
	var ns []named
	if len(refs) == 0 {
		ds, err := c.readIndex()
		if err != nil {
			return err
		}
		for _, d := range ds {
			if r, err := name.ParseReference(refName(d)); err == nil && refName(d) != "" {
				ns = append(ns, named{r, d})
			}
		}
	}
	for _, ref := range refs {
		r, err := parseRef(ref)
		if err != nil {
			return err
		}
		d, err := c.resolve(ref)
		if err != nil {
			return fmt.Errorf("exporting: %w", err)
		}
		ns = append(ns, named{r, d})
	}
	blobs := map[v1.Hash]int64{}
	var entries []v1.Descriptor
	seenRef := map[string]bool{}
	for _, n := range ns {
		if seenRef[n.ref.Name()] {
			continue
		}
		seenRef[n.ref.Name()] = true
		if !c.HasBlob(n.desc.Digest) {
			return fmt.Errorf("exporting %s: manifest %s: %w", Familiar(n.ref.Name()), n.desc.Digest, ErrNotFound)
		}
		collect := func(b v1.Descriptor, manifest bool) error {
			switch {
			case c.HasBlob(b.Digest):
				blobs[b.Digest] = b.Size
			case manifest, !b.MediaType.IsDistributable():
			default:
				return fmt.Errorf("blob %s: %w", b.Digest, ErrNotFound)
			}
			return nil
		}
		read := func(d v1.Descriptor) ([]byte, error) { return c.readBlob(d.Digest, d.Size) }
		if err := walkWith(n.desc, read, collect, map[v1.Hash]bool{}); err != nil {
			return fmt.Errorf("exporting %s: %w", Familiar(n.ref.Name()), err)
		}
		e := indexEntry(n.ref.Name(), n.desc)
		e.Annotations[AnnotationContainerdName] = n.ref.Name()
		entries = append(entries, e)
	}
	index, err := marshalIndex(entries)
	if err != nil {
		return fmt.Errorf("exporting: %w", err)
	}

	tw := tar.NewWriter(w)
	hdr := func(name string, typ byte, size int64) *tar.Header {
		mode := int64(0o644)
		if typ == tar.TypeDir {
			mode = 0o755
		}
		return &tar.Header{Typeflag: typ, Name: name, Size: size, Mode: mode, ModTime: c.exportTime, Format: tar.FormatPAX}
	}
	for _, d := range []string{blobsDir + "/", blobsDir + "/sha256/"} {
		if err := tw.WriteHeader(hdr(d, tar.TypeDir, 0)); err != nil {
			return fmt.Errorf("exporting: %w", err)
		}
	}
	for _, h := range sortedHashes(blobs) {
		if err := c.exportBlob(tw, hdr(BlobName(h), tar.TypeReg, blobs[h]), h); err != nil {
			return fmt.Errorf("exporting: %w", err)
		}
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{indexFile, index}, {layoutFile, []byte(layoutJSON)}} {
		if err := tw.WriteHeader(hdr(f.name, tar.TypeReg, int64(len(f.data)))); err != nil {
			return fmt.Errorf("exporting: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("exporting: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("exporting: %w", err)
	}
	return nil
}

func (c *Cache) exportBlob(tw *tar.Writer, h *tar.Header, d v1.Hash) error {
	rc, err := c.openBlob(d, h.Size)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err = io.Copy(tw, rc)
	return err
}
