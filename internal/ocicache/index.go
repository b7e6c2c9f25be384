package ocicache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-os/kiln/internal/atomicfile"
)

// parseRef canonicalises a user reference: "alpine" names the default registry's
// library/alpine:latest; a digest reference keeps its digest and drops any tag.
func parseRef(ref string, opts ...name.Option) (name.Reference, error) {
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	return r, nil
}

// Familiar returns ref as people write it: without the default registry and its "library/"
// prefix ("alpine:3.20" rather than the canonical form). A string that does not parse as a
// reference is returned unchanged.
func Familiar(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ref
	}
	repo := r.Context()
	s := repo.RegistryStr() + "/" + repo.RepositoryStr()
	if repo.RegistryStr() == name.DefaultRegistry {
		s = strings.TrimPrefix(repo.RepositoryStr(), "library/")
	}
	switch r := r.(type) {
	case name.Tag:
		return s + ":" + r.TagStr()
	case name.Digest:
		return s + "@" + r.DigestStr()
	}
	return s
}

// refName returns the ref.name annotation of an index.json entry ("" when absent).
func refName(d v1.Descriptor) string {
	return d.Annotations[AnnotationRefName]
}

// readIndex reads index.json. It is replaced by rename, so readers need no index lock. A
// missing or unreadable file is an error wrapping ErrIndexDamaged.
func (c *Cache) readIndex() ([]v1.Descriptor, error) {
	p := IndexPath(c.root)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s is missing; nothing was changed. %s", ErrIndexDamaged, p, indexHint)
	}
	if err != nil {
		return nil, fmt.Errorf("reading cache index: %w", err)
	}
	ds, err := parseIndexJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not a valid OCI index (%w); nothing was changed. %s",
			ErrIndexDamaged, p, err, indexHint)
	}
	return ds, nil
}

// parseIndexJSON checks and parses the bytes of an index.json.
func parseIndexJSON(b []byte) ([]v1.Descriptor, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("the file is empty")
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(b, &im); err != nil {
		return nil, err
	}
	if im.SchemaVersion != 2 {
		return nil, fmt.Errorf("schemaVersion is %d, not 2", im.SchemaVersion)
	}
	for i, d := range im.Manifests {
		if err := checkHash(d.Digest); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
	}
	return im.Manifests, nil
}

// sortDescriptors orders index entries by reference name, then digest.
func sortDescriptors(ds []v1.Descriptor) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := refName(ds[i]), refName(ds[j])
		if a != b {
			return a < b
		}
		return ds[i].Digest.String() < ds[j].Digest.String()
	})
}

// marshalIndex renders an OCI index with entries in deterministic order.
func marshalIndex(ds []v1.Descriptor) ([]byte, error) {
	ds = append([]v1.Descriptor{}, ds...)
	sortDescriptors(ds)
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: ds}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(im); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeIndexFile replaces index.json. The caller holds indexLock (inside readLock) or gcLock.
func (c *Cache) writeIndexFile(ds []v1.Descriptor) error {
	b, err := marshalIndex(ds)
	if err != nil {
		return fmt.Errorf("writing cache index: %w", err)
	}
	if err := atomicfile.Write(IndexPath(c.root), b, 0o644); err != nil {
		return fmt.Errorf("writing cache index: %w", err)
	}
	return nil
}

// indexEntry is the index.json entry kiln writes for a reference.
func indexEntry(ref string, d v1.Descriptor) v1.Descriptor {
	return v1.Descriptor{
		MediaType:   d.MediaType,
		Size:        d.Size,
		Digest:      d.Digest,
		Annotations: map[string]string{AnnotationRefName: ref},
	}
}

// Tag names an image or index already in the cache (its manifest blob must be present).
func (c *Cache) Tag(ref string, desc v1.Descriptor) error {
	r, err := parseRef(ref)
	if err != nil {
		return err
	}
	unlock, err := c.readLock()
	if err != nil {
		return err
	}
	defer unlock()
	p, err := c.blobPath(desc.Digest)
	if err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("tagging %s: manifest %s: %w", Familiar(r.Name()), desc.Digest, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("tagging %s: %w", Familiar(r.Name()), err)
	}
	if fi.Size() != desc.Size {
		return fmt.Errorf("%w: tagging %s: manifest %s has %d bytes, descriptor says %d",
			ErrCorrupt, Familiar(r.Name()), desc.Digest, fi.Size(), desc.Size)
	}
	return c.tag(r, desc)
}

// tag records ref -> desc in index.json, replacing an entry of the same name. The caller holds
// readLock and has stored the manifest blob.
func (c *Cache) tag(r name.Reference, desc v1.Descriptor) error {
	if d, ok := r.(name.Digest); ok && d.DigestStr() != desc.Digest.String() {
		return fmt.Errorf("tagging %s: reference names digest %s but the content is %s",
			Familiar(r.Name()), d.DigestStr(), desc.Digest)
	}
	if desc.MediaType == "" {
		return fmt.Errorf("tagging %s: descriptor has no media type", Familiar(r.Name()))
	}
	unlock, err := c.indexLock()
	if err != nil {
		return err
	}
	defer unlock()
	return c.tagLocked(r, desc)
}

// tagLocked is tag for a caller that also holds indexLock.
func (c *Cache) tagLocked(r name.Reference, desc v1.Descriptor) error {
	ds, err := c.readIndex()
	if err != nil {
		return err
	}
	out := ds[:0]
	for _, d := range ds {
		if refName(d) != r.Name() {
			out = append(out, d)
		}
	}
	out = append(out, indexEntry(r.Name(), desc))
	return c.writeIndexFile(out)
}

// Resolve returns the descriptor a reference names. A digest reference resolves to any entry
// with that digest, or to a manifest blob present in the cache (such as one platform of an
// index).
func (c *Cache) Resolve(ref string) (v1.Descriptor, error) {
	unlock, err := c.readLock()
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer unlock()
	return c.resolve(ref)
}

func (c *Cache) resolve(ref string) (v1.Descriptor, error) {
	r, err := parseRef(ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	ds, err := c.readIndex()
	if err != nil {
		return v1.Descriptor{}, err
	}
	dr, isDigest := r.(name.Digest)
	if !isDigest {
		for _, d := range ds {
			if refName(d) == r.Name() {
				return d, nil
			}
		}
		return v1.Descriptor{}, fmt.Errorf("image %s: %w", Familiar(r.Name()), ErrNotFound)
	}
	h, err := v1.NewHash(dr.DigestStr())
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("image reference %q: %w", ref, err)
	}
	for _, d := range ds {
		if d.Digest == h {
			return d, nil
		}
	}
	return c.describeBlob(h, ref)
}

// describeBlob builds a descriptor for a manifest blob that no index.json entry names.
func (c *Cache) describeBlob(h v1.Hash, ref string) (v1.Descriptor, error) {
	p, err := c.blobPath(h)
	if err != nil {
		return v1.Descriptor{}, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return v1.Descriptor{}, fmt.Errorf("image %s: %w", Familiar(ref), ErrNotFound)
	} else if err != nil {
		return v1.Descriptor{}, fmt.Errorf("image %s: %w", Familiar(ref), err)
	}
	b, err := c.readBlob(h, fi.Size())
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := sniffMediaType(b)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("image %s: %w", Familiar(ref), err)
	}
	return v1.Descriptor{MediaType: mt, Size: fi.Size(), Digest: h}, nil
}

// sniffMediaType reads the media type of a manifest or index from its own JSON.
func sniffMediaType(b []byte) (types.MediaType, error) {
	var m struct {
		MediaType types.MediaType   `json:"mediaType"`
		Config    json.RawMessage   `json:"config"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("not a manifest: %w", err)
	}
	switch {
	case m.MediaType != "":
		return m.MediaType, nil
	case m.Manifests != nil:
		return types.OCIImageIndex, nil
	case m.Config != nil:
		return types.OCIManifestSchema1, nil
	}
	return "", errors.New("not a manifest or index")
}

// Entry describes one named image or index in the cache.
type Entry struct {
	Ref       string // canonical reference ("" for an unnamed entry written by another tool)
	Familiar  string // Ref as people write it
	Digest    v1.Hash
	MediaType types.MediaType
	Size      int64
	// Platforms lists "os/arch[/variant]" of an index's children or of an image's config,
	// in index order; nil when the manifest or config cannot be read.
	Platforms []string
}

// List returns every entry of index.json, sorted by reference then digest.
func (c *Cache) List() ([]Entry, error) {
	unlock, err := c.readLock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	ds, err := c.readIndex()
	if err != nil {
		return nil, err
	}
	sortDescriptors(ds)
	out := make([]Entry, 0, len(ds))
	for _, d := range ds {
		e := Entry{
			Ref:       refName(d),
			Familiar:  Familiar(refName(d)),
			Digest:    d.Digest,
			MediaType: d.MediaType,
			Size:      d.Size,
		}
		if e.Ref == "" {
			e.Familiar = ""
		}
		e.Platforms, _ = c.platforms(d) // best effort: ls must work on a damaged cache
		out = append(out, e)
	}
	return out, nil
}

// platforms lists what an entry runs on.
func (c *Cache) platforms(d v1.Descriptor) ([]string, error) {
	switch {
	case d.MediaType.IsIndex():
		im, _, err := c.readIndexManifest(d)
		if err != nil {
			return nil, err
		}
		return availablePlatforms(im), nil
	case d.MediaType.IsImage():
		m, _, err := c.readManifest(d)
		if err != nil {
			return nil, err
		}
		b, err := c.readBlob(m.Config.Digest, m.Config.Size)
		if err != nil {
			return nil, err
		}
		cf, err := v1.ParseConfigFile(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		if p := cf.Platform(); p != nil {
			return []string{p.String()}, nil
		}
	}
	return nil, nil
}
