package builder

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-os/kiln/internal/ocicache"
)

// layoutStore is a read-only content.Store over the blobs of an OCI image layout (the kiln
// cache). BuildKit reads named contexts ("oci-layout://NAME@sha256:...") through it over the
// build session; nothing can write, delete or relabel through it. BuildKit copies what it reads
// into its own store and verifies each blob's digest as it does.
type layoutStore struct {
	root string
}

var _ content.Store = layoutStore{}

func (s layoutStore) path(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	return ocicache.BlobPath(s.root, v1.Hash{Algorithm: d.Algorithm().String(), Hex: d.Encoded()}), nil
}

func (s layoutStore) Info(_ context.Context, d digest.Digest) (content.Info, error) {
	p, err := s.path(d)
	if err != nil {
		return content.Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if os.IsNotExist(err) {
			return content.Info{}, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
		}
		return content.Info{}, err
	}
	return content.Info{Digest: d, Size: fi.Size()}, nil
}

func (s layoutStore) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	p, err := s.path(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return sizedFile{f, fi.Size()}, nil
}

type sizedFile struct {
	*os.File
	size int64
}

func (f sizedFile) Size() int64 { return f.size }

func (s layoutStore) Update(context.Context, content.Info, ...string) (content.Info, error) {
	return content.Info{}, fmt.Errorf("kiln cache is read-only to builds: %w", errdefs.ErrNotImplemented)
}

func (s layoutStore) Walk(ctx context.Context, fn content.WalkFunc, _ ...string) error {
	dir := ocicache.BlobsDir(s.root, digest.SHA256.String())
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil {
			continue
		}
		info, err := s.Info(ctx, d)
		if err != nil {
			continue
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

func (s layoutStore) Delete(context.Context, digest.Digest) error {
	return fmt.Errorf("kiln cache is read-only to builds: %w", errdefs.ErrNotImplemented)
}

func (s layoutStore) Status(context.Context, string) (content.Status, error) {
	return content.Status{}, fmt.Errorf("no ingests in a read-only store: %w", errdefs.ErrNotFound)
}

func (s layoutStore) ListStatuses(context.Context, ...string) ([]content.Status, error) {
	return nil, nil
}

func (s layoutStore) Abort(context.Context, string) error {
	return fmt.Errorf("no ingests in a read-only store: %w", errdefs.ErrNotFound)
}

func (s layoutStore) Writer(context.Context, ...content.WriterOpt) (content.Writer, error) {
	return nil, fmt.Errorf("kiln cache is read-only to builds: %w", errdefs.ErrNotImplemented)
}
