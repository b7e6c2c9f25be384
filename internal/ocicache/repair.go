package ocicache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-os/kiln/internal/atomicfile"
)

// RecoveredRepo is the repository Repair names manifests under when nothing in the cache gives
// them a name: RecoveredRepo@sha256:HEX.
const RecoveredRepo = "localhost/kiln-recovered"

// damagedIndexSuffix is appended to index.json's name when Repair sets a damaged one aside.
const damagedIndexSuffix = ".damaged"

// Recovered is one entry Repair wrote to index.json.
type Recovered struct {
	Ref       string // canonical reference
	Familiar  string // Ref as people write it
	Digest    v1.Hash
	MediaType types.MediaType
	// NamedBy is the annotation the name came from, "" when the entry is named by its digest
	// under RecoveredRepo.
	NamedBy string
}

// RepairReport says what Repair found and did.
type RepairReport struct {
	Intact    bool        // index.json was readable: nothing was changed
	Recovered []Recovered // the entries of the new index.json, sorted by reference
	Corrupt   []v1.Hash   // JSON blobs (manifests, configs) that fail their digest check, left out
	SavedAs   string      // where the damaged index.json was kept ("" when it was missing)
}

// repairManifest is what Repair reads from a blob to tell manifests and indexes from the rest.
type repairManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     types.MediaType   `json:"mediaType"`
	Config        *v1.Descriptor    `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Manifests     []v1.Descriptor   `json:"manifests"`
	Annotations   map[string]string `json:"annotations"`
}

// manifestType tells whether blob content is an image manifest or an index (and which),
// strictly enough that image configs and other JSON blobs are not taken for one.
func manifestType(b []byte) (types.MediaType, *repairManifest, bool) {
	var m repairManifest
	if json.Unmarshal(b, &m) != nil {
		return "", nil, false
	}
	switch {
	case m.MediaType.IsIndex() && m.Manifests != nil:
		return m.MediaType, &m, true
	case m.MediaType.IsImage() && m.Config != nil && m.Config.Digest != (v1.Hash{}):
		return m.MediaType, &m, true
	case m.MediaType != "" || m.SchemaVersion != 2:
		return "", nil, false
	case m.Manifests != nil:
		return types.OCIImageIndex, &m, true
	case m.Config != nil && m.Config.Digest != (v1.Hash{}) && m.Layers != nil:
		return types.OCIManifestSchema1, &m, true
	}
	return "", nil, false
}

// annotatedName returns the full reference an annotation set gives ("" when none, or when
// it is only a tag) and the annotation it came from.
func annotatedName(ann map[string]string) (name.Reference, string) {
	for _, k := range []string{AnnotationContainerdName, AnnotationRefName} {
		v := ann[k]
		if v == "" || tagOnly(v) {
			continue
		}
		if r, err := name.ParseReference(v); err == nil {
			return r, k
		}
	}
	return nil, ""
}

// Repair rebuilds a missing or damaged index.json from the manifests and indexes in blobs/.
// Each manifest or index that no other one points at gets an entry, and so does every one an
// annotation names. Names come from io.containerd.image.name or org.opencontainers.image.ref.name
// (full references only), found on the blob itself or on a descriptor of an index blob that
// points at it; the others are named RecoveredRepo@DIGEST. A damaged index.json is kept as
// index.json.damaged. JSON blobs that fail their digest check are reported and left out. When
// index.json is readable Repair changes nothing and reports Intact.
//
// Open the cache with WithoutIndexCheck to call it.
func (c *Cache) Repair() (RepairReport, error) {
	var rep RepairReport
	unlock, err := c.gcLock()
	if err != nil {
		return rep, err
	}
	defer unlock()
	old, rerr := os.ReadFile(IndexPath(c.root))
	switch {
	case rerr == nil:
		if _, err := parseIndexJSON(old); err == nil {
			rep.Intact = true
			return rep, nil
		}
	case !errors.Is(rerr, os.ErrNotExist):
		return rep, fmt.Errorf("repairing the cache index: %w", rerr)
	}

	type found struct {
		mt types.MediaType
		m  *repairManifest
		n  int64
	}
	manifests := map[v1.Hash]found{}
	ents, err := os.ReadDir(c.blobDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, fmt.Errorf("repairing the cache index: %w", err)
	}
	for _, e := range ents {
		h := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
		if checkHash(h) != nil || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.Size() > 16<<20 || !startsWithBrace(BlobPath(c.root, h)) {
			continue // gone meanwhile, a layer, or not JSON
		}
		b, err := c.readBlob(h, fi.Size())
		if errors.Is(err, ErrCorrupt) {
			rep.Corrupt = append(rep.Corrupt, h)
			continue
		}
		if err != nil {
			return rep, fmt.Errorf("repairing the cache index: %w", err)
		}
		if mt, m, ok := manifestType(b); ok {
			manifests[h] = found{mt, m, fi.Size()}
		}
	}

	// Which manifests others point at, and the names descriptors give them.
	pointedAt := map[v1.Hash]bool{}
	type naming struct {
		ref name.Reference
		by  string
	}
	names := map[v1.Hash][]naming{}
	for h, f := range manifests {
		if r, by := annotatedName(f.m.Annotations); r != nil {
			names[h] = append(names[h], naming{r, by})
		}
		for _, child := range f.m.Manifests {
			pointedAt[child.Digest] = true
			if _, ok := manifests[child.Digest]; !ok {
				continue
			}
			if r, by := annotatedName(child.Annotations); r != nil {
				names[child.Digest] = append(names[child.Digest], naming{r, by})
			}
		}
	}

	hashes := make([]v1.Hash, 0, len(manifests))
	for h := range manifests {
		hashes = append(hashes, h)
	}
	sort.Slice(hashes, func(i, j int) bool { return hashes[i].String() < hashes[j].String() })
	taken := map[string]bool{}
	var entries []v1.Descriptor
	for _, h := range hashes {
		f := manifests[h]
		desc := v1.Descriptor{MediaType: f.mt, Size: f.n, Digest: h}
		named := false
		for _, nm := range names[h] {
			ref := nm.ref.Name()
			if d, ok := nm.ref.(name.Digest); ok && d.DigestStr() != h.String() {
				continue // the annotation names other content
			}
			if taken[ref] {
				continue
			}
			taken[ref] = true
			named = true
			entries = append(entries, indexEntry(ref, desc))
			rep.Recovered = append(rep.Recovered, Recovered{Ref: ref, Familiar: Familiar(ref), Digest: h, MediaType: f.mt, NamedBy: nm.by})
		}
		if named || pointedAt[h] {
			continue
		}
		ref := RecoveredRepo + "@" + h.String()
		r, err := name.ParseReference(ref)
		if err != nil {
			return rep, fmt.Errorf("repairing the cache index: %w", err)
		}
		entries = append(entries, indexEntry(r.Name(), desc))
		rep.Recovered = append(rep.Recovered, Recovered{Ref: r.Name(), Familiar: Familiar(r.Name()), Digest: h, MediaType: f.mt})
	}
	sort.Slice(rep.Recovered, func(i, j int) bool { return rep.Recovered[i].Ref < rep.Recovered[j].Ref })

	if rerr == nil {
		rep.SavedAs = IndexPath(c.root) + damagedIndexSuffix
		if err := atomicfile.Write(rep.SavedAs, old, 0o644); err != nil {
			return rep, fmt.Errorf("repairing the cache index: keeping the damaged one: %w", err)
		}
	}
	if err := c.writeIndexFile(entries); err != nil {
		return rep, fmt.Errorf("repairing the cache index: %w", err)
	}
	return rep, nil
}

// startsWithBrace reports whether the file's first non-blank byte is '{' (JSON object).
func startsWithBrace(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 64)
	n, _ := io.ReadFull(f, buf)
	b := bytes.TrimLeft(buf[:n], " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}
