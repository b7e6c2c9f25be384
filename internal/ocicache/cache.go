package ocicache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ErrNotFound is wrapped by every error about a reference or blob the cache does not hold.
var ErrNotFound = errors.New("not in the kiln cache")

// ErrCorrupt is wrapped by every error about content whose digest or size does not match what
// names it: a damaged blob in the cache, or bad input to WriteBlob, Import or Pull.
var ErrCorrupt = errors.New("corrupt content")

const (
	layoutFile    = "oci-layout"
	indexFile     = "index.json"
	blobsDir      = "blobs"
	tmpPrefix     = ".tmp-"
	gcLockFile    = "kiln.lock"
	indexLockFile = "kiln-index.lock"
	layoutJSON    = `{"imageLayoutVersion":"1.0.0"}`

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
}

type config struct {
	exportTime time.Time
}

// Option configures Open.
type Option func(*config)

// WithExportTime sets the modification time ExportOCI gives every tar entry (default: the Unix
// epoch). Pass a fixed time such as SOURCE_DATE_EPOCH, never the wall clock.
func WithExportTime(t time.Time) Option {
	return func(c *config) { c.exportTime = t }
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

// Open opens the cache at root, creating an empty OCI layout there when it is missing.
func Open(root string, opts ...Option) (*Cache, error) {
	cfg := config{exportTime: time.Unix(0, 0)}
	for _, o := range opts {
		o(&cfg)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", root, err)
	}
	c := &Cache{root: abs, exportTime: cfg.exportTime.Truncate(time.Second).UTC()}
	if err := os.MkdirAll(filepath.Join(abs, blobsDir, "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("opening cache: %w", err)
	}
	unlock, err := c.readAndIndexLock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(abs, layoutFile)); errors.Is(err, os.ErrNotExist) {
		if err := c.writeFileAtomic(layoutFile, []byte(layoutJSON)); err != nil {
			return nil, fmt.Errorf("opening cache: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("opening cache: %w", err)
	}
	if _, err := os.Stat(filepath.Join(abs, indexFile)); errors.Is(err, os.ErrNotExist) {
		if err := c.writeIndexFile(nil); err != nil {
			return nil, fmt.Errorf("opening cache: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("opening cache: %w", err)
	}
	return c, nil
}

// Root returns the absolute path of the layout.
func (c *Cache) Root() string { return c.root }

// writeFileAtomic replaces root/name with data: temp file in root, fsync, rename, fsync root.
func (c *Cache) writeFileAtomic(name string, data []byte) error {
	f, err := os.CreateTemp(c.root, tmpPrefix+name+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(c.root, name)); err != nil {
		return err
	}
	ok = true
	return syncDir(c.root)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
