package ocicache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-os/kiln/internal/atomicfile"
)

// ErrNotFound is wrapped by every error about a reference or blob the cache does not hold.
var ErrNotFound = errors.New("not in the kiln cache")

// ErrIndexDamaged is wrapped by every error about an index.json that is missing (while blobs
// are present) or cannot be read as an OCI index. Nothing is changed until Repair rebuilds it
// or Clean(true) empties the cache.
var ErrIndexDamaged = errors.New("kiln cache index damaged")

// indexHint tells users how to get out of a damaged index.json.
const indexHint = "Rebuild index.json from the manifests in blobs/ with `kiln cache repair`, or empty the cache with `kiln cache clean -all`"

// ErrCorrupt is wrapped by every error about content whose digest or size does not match what
// names it: a damaged blob in the cache, or bad input to WriteBlob, Import or Pull.
var ErrCorrupt = errors.New("corrupt content")

const (
	layoutFile = "oci-layout"
	indexFile  = "index.json"
	blobsDir   = "blobs"
	// legacyTmpPrefix named the temporary files of kiln versions before atomicfile; Clean
	// still removes them.
	legacyTmpPrefix = ".tmp-"
	gcLockFile      = "kiln.lock"
	indexLockFile   = "kiln-index.lock"
	layoutJSON      = `{"imageLayoutVersion":"1.0.0"}`

	// AnnotationRefName names an entry of index.json (OCI image-spec).
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationContainerdName is the name containerd and BuildKit give an image in a layout.
	AnnotationContainerdName = "io.containerd.image.name"
)

// Cache is an OCI image layout on disk. Its methods are safe for concurrent use by several
// goroutines and several processes sharing the same root.
type Cache struct {
	root       string
	exportTime time.Time
	insecure   []string // registries named insecure (WithInsecureRegistries)
}

type config struct {
	exportTime   time.Time
	noIndexCheck bool
	insecure     []string
}

// Option configures Open.
type Option func(*config)

// WithExportTime sets the modification time ExportOCI gives every tar entry (default: the Unix
// epoch). Pass a fixed time such as SOURCE_DATE_EPOCH, never the wall clock.
func WithExportTime(t time.Time) Option {
	return func(c *config) { c.exportTime = t }
}

// WithoutIndexCheck opens a cache whose index.json is missing or damaged instead of failing
// with ErrIndexDamaged; only Repair and Clean(true) make sense on such a cache.
func WithoutIndexCheck() Option {
	return func(c *config) { c.noIndexCheck = true }
}

// WithInsecureRegistries names registries ("host" or "host:port") that Pull and Push may
// reach over plain HTTP, as if each call had the InsecureRegistries option.
func WithInsecureRegistries(hosts ...string) Option {
	return func(c *config) { c.insecure = append(c.insecure, hosts...) }
}

// DefaultRoot returns $KILN_CACHE when set, else ~/.kiln/cache.
func DefaultRoot() (string, error) {
	if d := os.Getenv("KILN_CACHE"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("locating the kiln cache (set KILN_CACHE): %w", err)
	}
	return filepath.Join(home, ".kiln", "cache"), nil
}

// Open opens the cache at root, creating an empty OCI layout there when the folder is missing
// or holds no blobs. A layout whose index.json is missing or unreadable while blobs/sha256
// holds blobs is not touched: Open fails with an error wrapping ErrIndexDamaged that says how
// to recover (Repair, `kiln cache repair`). WithoutIndexCheck opens it anyway, for Repair and
// Clean(true).
func Open(root string, opts ...Option) (*Cache, error) {
	cfg := config{exportTime: time.Unix(0, 0)}
	for _, o := range opts {
		o(&cfg)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", root, err)
	}
	c := &Cache{root: abs, exportTime: cfg.exportTime.Truncate(time.Second).UTC(), insecure: cfg.insecure}
	if err := os.MkdirAll(c.blobDir(), 0o755); err != nil {
		return nil, fmt.Errorf("opening cache: %w", err)
	}
	unlock, err := c.readAndIndexLock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(LayoutPath(abs)); errors.Is(err, os.ErrNotExist) {
		if err := atomicfile.Write(LayoutPath(abs), []byte(layoutJSON), 0o644); err != nil {
			return nil, fmt.Errorf("opening cache: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("opening cache: %w", err)
	}
	if _, err := os.Stat(IndexPath(abs)); errors.Is(err, os.ErrNotExist) {
		n, err := c.countBlobs()
		if err != nil {
			return nil, fmt.Errorf("opening cache: %w", err)
		}
		if n > 0 {
			if cfg.noIndexCheck {
				return c, nil
			}
			return nil, fmt.Errorf("%w: %s is missing but %s holds %d blobs; nothing was changed. %s",
				ErrIndexDamaged, IndexPath(abs), c.blobDir(), n, indexHint)
		}
		if err := c.writeIndexFile(nil); err != nil {
			return nil, fmt.Errorf("opening cache: %w", err)
		}
		return c, nil
	} else if err != nil {
		return nil, fmt.Errorf("opening cache: %w", err)
	}
	if !cfg.noIndexCheck {
		if _, err := c.readIndex(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Root returns the absolute path of the layout.
func (c *Cache) Root() string { return c.root }

// blobDir is root/blobs/sha256.
func (c *Cache) blobDir() string { return filepath.Join(c.root, blobsDir, "sha256") }

// countBlobs counts the files of blobs/sha256 named like a digest.
func (c *Cache) countBlobs() (int, error) {
	ents, err := os.ReadDir(c.blobDir())
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if checkHash(v1.Hash{Algorithm: "sha256", Hex: e.Name()}) == nil {
			n++
		}
	}
	return n, nil
}

// LayoutPath is the oci-layout file of the OCI image layout at root.
func LayoutPath(root string) string { return filepath.Join(root, layoutFile) }

// IndexPath is the index.json of the OCI image layout at root.
func IndexPath(root string) string { return filepath.Join(root, indexFile) }

// BlobPath is the file of blob h in the OCI image layout at root: root/blobs/ALG/HEX. It does
// not check h; the cache's own readers do.
func BlobPath(root string, h v1.Hash) string {
	return filepath.Join(root, blobsDir, h.Algorithm, h.Hex)
}

// BlobsDir is the folder of the blobs of one digest algorithm ("sha256") in the layout at root.
func BlobsDir(root, algorithm string) string { return filepath.Join(root, blobsDir, algorithm) }

// BlobName is the slash-separated path of blob h inside an OCI image layout,
// "blobs/ALG/HEX", as tar members and URLs name it.
func BlobName(h v1.Hash) string { return blobsDir + "/" + h.Algorithm + "/" + h.Hex }

// LayoutJSON is the content of an oci-layout file.
const LayoutJSON = layoutJSON
