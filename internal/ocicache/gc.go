package ocicache

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-os/kiln/internal/atomicfile"
)

// manifestLinks is what any manifest or index may point at.
type manifestLinks struct {
	Config    *v1.Descriptor  `json:"config"`
	Layers    []v1.Descriptor `json:"layers"`
	Manifests []v1.Descriptor `json:"manifests"`
}

// walkFunc is called for every blob reachable from a manifest-level descriptor; manifest says
// whether the blob is itself a manifest or index.
type walkFunc func(d v1.Descriptor, manifest bool) error

// walk visits d and, when its blob is present, everything it points at. A missing manifest is
// reported to fn and not descended into (an index pulled for some platforms only lacks the
// others). A manifest that fails verification is an error.
func (c *Cache) walk(d v1.Descriptor, fn walkFunc, seen map[v1.Hash]bool) error {
	read := func(d v1.Descriptor) ([]byte, error) { return c.readBlob(d.Digest, d.Size) }
	return walkWith(d, read, fn, seen)
}

// walkWith is walk over any blob source; read must return an error wrapping ErrNotFound for a
// missing blob.
func walkWith(d v1.Descriptor, read func(v1.Descriptor) ([]byte, error), fn walkFunc, seen map[v1.Hash]bool) error {
	if seen[d.Digest] {
		return nil
	}
	seen[d.Digest] = true
	if err := fn(d, true); err != nil {
		return err
	}
	b, err := read(d)
	if errors.Is(err, ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var m manifestLinks
	if json.Unmarshal(b, &m) != nil {
		return nil // not JSON: a leaf
	}
	if m.Config != nil && !seen[m.Config.Digest] {
		seen[m.Config.Digest] = true
		if err := fn(*m.Config, false); err != nil {
			return err
		}
	}
	for _, l := range m.Layers {
		if !seen[l.Digest] {
			seen[l.Digest] = true
			if err := fn(l, false); err != nil {
				return err
			}
		}
	}
	for _, child := range m.Manifests {
		if err := walkWith(child, read, fn, seen); err != nil {
			return err
		}
	}
	return nil
}

// Remove drops the named references and then deletes every blob no remaining reference reaches.
// It reads none of the removed images' blobs, so it is the way out of a corrupt or half-written
// image. A digest reference removes every entry with that digest in its repository. If any
// reference is unknown, nothing is removed and the error wraps ErrNotFound.
func (c *Cache) Remove(refs ...string) error {
	unlock, err := c.gcLock()
	if err != nil {
		return err
	}
	defer unlock()
	ds, err := c.readIndex()
	if err != nil {
		return err
	}
	drop := make([]bool, len(ds))
	var missing []string
	for _, ref := range refs {
		r, err := parseRef(ref)
		if err != nil {
			return err
		}
		found := false
		for i, d := range ds {
			if removes(r, d) {
				drop[i] = true
				found = true
			}
		}
		if !found {
			missing = append(missing, Familiar(r.Name()))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("removing %s: %w (nothing removed)", strings.Join(missing, ", "), ErrNotFound)
	}
	var keep []v1.Descriptor
	for i, d := range ds {
		if !drop[i] {
			keep = append(keep, d)
		}
	}
	if err := c.writeIndexFile(keep); err != nil {
		return err
	}
	if _, _, err = c.collect(keep); err != nil {
		return err
	}
	return c.pruneLayerIndexes(nil)
}

// removes reports whether reference r names index entry d.
func removes(r name.Reference, d v1.Descriptor) bool {
	n := refName(d)
	if n == r.Name() {
		return true
	}
	dr, ok := r.(name.Digest)
	if !ok || d.Digest.String() != dr.DigestStr() {
		return false
	}
	er, err := name.ParseReference(n)
	return err == nil && er.Context().Name() == dr.Context().Name()
}

// collect deletes blobs that no entry of ds reaches and returns how many it deleted and their
// bytes. Caller holds gcLock.
func (c *Cache) collect(ds []v1.Descriptor) (int, int64, error) {
	live := map[v1.Hash]bool{}
	for _, d := range ds {
		err := c.walk(d, func(v1.Descriptor, bool) error { return nil }, live)
		if err != nil {
			return 0, 0, fmt.Errorf("collecting unused blobs: reading %s (%s): %w; nothing was collected, remove that image too",
				Familiar(refName(d)), d.Digest, err)
		}
	}
	dir := c.blobDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, fmt.Errorf("collecting unused blobs: %w", err)
	}
	n, size := 0, int64(0)
	for _, e := range ents {
		h := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
		if checkHash(h) != nil || live[h] {
			continue
		}
		var sz int64
		if fi, err := e.Info(); err == nil {
			sz = fi.Size()
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, size, fmt.Errorf("collecting unused blobs: %w", err)
		}
		n++
		size += sz
	}
	return n, size, nil
}

// CleanReport says what Clean removed.
type CleanReport struct {
	TempFiles []string // stale temporary files: their writers died (or were killed)
	TempBytes int64
	Blobs     int // blobs no reference reached (with all: every blob)
	BlobBytes int64
	CopyBytes int64 // unpacked copies of the layers among those blobs
}

// Clean deletes the temporary files left by writers that died (atomicfile.CleanStale on the
// root and on blobs/sha256; files of a live writer are kept) and every blob no reference
// reaches. With all it empties the cache: no references, no blobs; that also works when
// index.json is damaged. It returns what it removed, also when it fails half-way.
func (c *Cache) Clean(all bool) (CleanReport, error) {
	var rep CleanReport
	unlock, err := c.gcLock()
	if err != nil {
		return rep, err
	}
	defer unlock()
	for _, dir := range []string{c.root, c.blobDir()} {
		files, n, err := atomicfile.CleanStale(dir)
		rep.TempFiles = append(rep.TempFiles, files...)
		rep.TempBytes += n
		if err != nil {
			return rep, fmt.Errorf("cleaning cache: %w", err)
		}
	}
	if err := c.cleanLegacyTemps(&rep); err != nil {
		return rep, err
	}
	var keep []v1.Descriptor
	if all {
		if err := c.writeIndexFile(nil); err != nil {
			return rep, err
		}
	} else if keep, err = c.readIndex(); err != nil {
		return rep, err
	}
	rep.Blobs, rep.BlobBytes, err = c.collect(keep)
	if err != nil {
		return rep, err
	}
	return rep, c.pruneLayerIndexes(&rep)
}

// cleanLegacyTemps removes the ".tmp-" files older kiln versions left in the root. They held
// no lock of their own; gcLock (exclusive) keeps any kiln that could be writing them out.
func (c *Cache) cleanLegacyTemps(rep *CleanReport) error {
	ents, err := os.ReadDir(c.root)
	if err != nil {
		return fmt.Errorf("cleaning cache: %w", err)
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), legacyTmpPrefix) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(c.root, e.Name())
		if fi, err := e.Info(); err == nil {
			rep.TempBytes += fi.Size()
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cleaning cache: %w", err)
		}
		rep.TempFiles = append(rep.TempFiles, p)
	}
	return nil
}

// sortedHashes returns the keys of m in order.
func sortedHashes(m map[v1.Hash]int64) []v1.Hash {
	out := make([]v1.Hash, 0, len(m))
	for h := range m {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
