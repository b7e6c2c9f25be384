package ocicache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-os/kiln/internal/atomicfile"
)

// recoverHint tells users how to get out of a corrupt cache.
const recoverHint = "remove the image that uses it with `kiln cache rm REF` (or empty the cache with `kiln cache clean -all`), then fetch it again"

// blobPath returns root/blobs/sha256/<hex> after checking that h is a well-formed sha256.
func (c *Cache) blobPath(h v1.Hash) (string, error) {
	if err := checkHash(h); err != nil {
		return "", err
	}
	return BlobPath(c.root, h), nil
}

func checkHash(h v1.Hash) error {
	if h.Algorithm != "sha256" {
		return fmt.Errorf("digest %q: only sha256 is supported", h.String())
	}
	if len(h.Hex) != 64 {
		return fmt.Errorf("digest %q: malformed", h.String())
	}
	for _, r := range h.Hex {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return fmt.Errorf("digest %q: malformed", h.String())
		}
	}
	return nil
}

// HasBlob reports whether the blob is present (without verifying it).
func (c *Cache) HasBlob(h v1.Hash) bool {
	p, err := c.blobPath(h)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// WriteBlob stores the bytes of r as a blob and returns their digest and size. When want is
// not the zero Hash the content must hash to it (else an error wrapping ErrCorrupt), and a blob
// already present under that digest is kept without reading r. The blob appears atomically or
// not at all. A blob that no index.json entry reaches is removed by the next Remove or Clean.
func (c *Cache) WriteBlob(r io.Reader, want v1.Hash) (v1.Hash, int64, error) {
	unlock, err := c.readLock()
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer unlock()
	return c.writeBlob(r, want, -1)
}

// writeBlob does WriteBlob's work; size is the expected size or -1. The caller holds readLock.
func (c *Cache) writeBlob(r io.Reader, want v1.Hash, size int64) (v1.Hash, int64, error) {
	if want != (v1.Hash{}) {
		p, err := c.blobPath(want)
		if err != nil {
			return v1.Hash{}, 0, err
		}
		if fi, err := os.Stat(p); err == nil && (size < 0 || fi.Size() == size) {
			return want, fi.Size(), nil
		}
	}
	tmp, got, n, err := c.writeTemp(r, want, size)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	if err := c.commitBlob(tmp, got); err != nil {
		return v1.Hash{}, 0, err
	}
	return got, n, nil
}

// writeTemp streams r into a locked temporary file (atomicfile) in blobs/sha256, checking the
// digest (when want is not zero) and the size (when size >= 0). On error no file is left
// behind; on success the caller commits it with commitBlob or drops it with Abort.
func (c *Cache) writeTemp(r io.Reader, want v1.Hash, size int64) (*atomicfile.File, v1.Hash, int64, error) {
	stem := "blob"
	if want != (v1.Hash{}) {
		if err := checkHash(want); err != nil {
			return nil, v1.Hash{}, 0, err
		}
		stem = want.Hex
	}
	f, err := atomicfile.Create(filepath.Join(c.blobDir(), stem), 0o644)
	if err != nil {
		return nil, v1.Hash{}, 0, fmt.Errorf("writing blob: %w", err)
	}
	fail := func(err error) (*atomicfile.File, v1.Hash, int64, error) {
		f.Abort()
		return nil, v1.Hash{}, 0, err
	}
	hw := sha256.New()
	src := r
	if size >= 0 {
		src = io.LimitReader(r, size+1) // one byte more reveals overlong input
	}
	n, err := io.Copy(io.MultiWriter(f, hw), src)
	if err != nil {
		return fail(fmt.Errorf("writing blob %s: %w", want, err))
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(hw.Sum(nil))}
	if size >= 0 && n != size {
		return fail(fmt.Errorf("%w: blob %s: got %d bytes, want %d", ErrCorrupt, want, n, size))
	}
	if want != (v1.Hash{}) && got != want {
		return fail(fmt.Errorf("%w: blob %s: content hashes to %s", ErrCorrupt, want, got))
	}
	return f, got, n, nil
}

// commitBlob moves a verified temporary file into place as blob h. It replaces whatever file
// is there: a verified copy is never worse, and a damaged one gets repaired (readers that
// have the old file open keep reading it).
func (c *Cache) commitBlob(f *atomicfile.File, h v1.Hash) error {
	p, err := c.blobPath(h)
	if err != nil {
		f.Abort()
		return err
	}
	if err := f.SetFinal(p); err != nil {
		f.Abort()
		return err
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("writing blob %s: %w", h, err)
	}
	return nil
}

// OpenBlob opens a blob for reading. The reader hashes what it returns; at the end of the
// blob it reports an error wrapping ErrCorrupt (naming the digest, what was expected, what was
// read, and how to recover) instead of io.EOF when the content does not match. A caller that
// stops before the end gets no verdict. A missing blob is an error wrapping ErrNotFound.
func (c *Cache) OpenBlob(h v1.Hash) (io.ReadCloser, error) {
	unlock, err := c.readLock()
	if err != nil {
		return nil, err
	}
	// An open file stays readable even if garbage collection unlinks it later.
	defer unlock()
	return c.openBlob(h, -1)
}

// openBlob opens a verifying reader; size is the size the descriptor promises, or -1.
func (c *Cache) openBlob(h v1.Hash, size int64) (io.ReadCloser, error) {
	p, err := c.blobPath(h)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("opening blob %s: %w", h, err)
	}
	return &verifyingReader{f: f, want: h, size: size, h: sha256.New()}, nil
}

// readBlob reads a whole small blob (manifests, configs, indexes) through the verifier.
func (c *Cache) readBlob(h v1.Hash, size int64) ([]byte, error) {
	const max = 16 << 20
	if size > max {
		return nil, fmt.Errorf("blob %s: %d bytes is too large for a manifest or config", h, size)
	}
	rc, err := c.openBlob(h, size)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, fmt.Errorf("blob %s: too large for a manifest or config", h)
	}
	return b, nil
}

type verifyingReader struct {
	f    *os.File
	want v1.Hash
	size int64
	h    hash.Hash
	n    int64
	err  error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.size >= 0 && v.n > v.size {
		v.err = v.corrupt()
		return n, v.err
	}
	if errors.Is(err, io.EOF) {
		got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(v.h.Sum(nil))}
		if got != v.want || (v.size >= 0 && v.n != v.size) {
			v.err = v.corrupt()
			return n, v.err
		}
		v.err = io.EOF
	} else if err != nil {
		v.err = fmt.Errorf("reading blob %s: %w", v.want, err)
	}
	return n, v.err
}

func (v *verifyingReader) corrupt() error {
	got := hex.EncodeToString(v.h.Sum(nil))
	what := fmt.Sprintf("expected digest %s", v.want)
	if v.size >= 0 {
		what += fmt.Sprintf(" and %d bytes", v.size)
	}
	if v.size >= 0 && v.n > v.size {
		return fmt.Errorf("%w: blob %s in the kiln cache is corrupt: %s, found more than %d bytes; %s",
			ErrCorrupt, v.want, what, v.size, recoverHint)
	}
	kind := "corrupt"
	if v.size >= 0 && v.n < v.size {
		kind = "truncated"
	}
	return fmt.Errorf("%w: blob %s in the kiln cache is %s: %s, read %d bytes hashing to sha256:%s; %s",
		ErrCorrupt, v.want, kind, what, v.n, got, recoverHint)
}

func (v *verifyingReader) Close() error { return v.f.Close() }

// Verify reads what is left of the blob and returns nil when the whole blob matches its
// digest, else the error wrapping ErrCorrupt that Read gives at the end.
func (v *verifyingReader) Verify() error {
	if v.err == nil {
		_, err := io.Copy(io.Discard, v)
		if err != nil {
			return err
		}
	}
	if errors.Is(v.err, io.EOF) {
		return nil
	}
	return v.err
}

// Verifier is implemented by the readers OpenBlob and the layers of a cached image return
// (Compressed): Verify reads the rest of the blob and reports whether it matches its digest.
type Verifier interface {
	Verify() error
}

// Diagnose explains err, a failure to decode content read from r (a tar or gzip error, say).
// When r is a cache blob (a Verifier) whose content does not match its digest, it returns an
// error wrapping ErrCorrupt and err that names the blob, says it is corrupt and how to recover.
// Otherwise, or when err is nil or already says so, it returns err unchanged.
func Diagnose(r io.Reader, err error) error {
	if err == nil || errors.Is(err, ErrCorrupt) {
		return err
	}
	v, ok := r.(Verifier)
	if !ok {
		return err
	}
	verr := v.Verify()
	if verr == nil || !errors.Is(verr, ErrCorrupt) {
		return err
	}
	return fmt.Errorf("%w (reading it failed with: %w)", verr, err)
}

// VerifyBlob reads blob h to its end and returns nil when it matches its digest, else an
// error wrapping ErrCorrupt (or ErrNotFound) that names it.
func (c *Cache) VerifyBlob(h v1.Hash) error {
	unlock, err := c.readLock()
	if err != nil {
		return err
	}
	defer unlock()
	rc, err := c.openBlob(h, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	return rc.(*verifyingReader).Verify()
}
