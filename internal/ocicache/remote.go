package ocicache

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

type remoteConfig struct {
	insecure  bool
	platforms []v1.Platform
	keychain  authn.Keychain
	transport http.RoundTripper
}

// RemoteOption configures Pull and Push.
type RemoteOption func(*remoteConfig)

// Insecure talks plain HTTP to the registry (meant for a registry on loopback, such as one a
// test starts).
func Insecure() RemoteOption {
	return func(c *remoteConfig) { c.insecure = true }
}

// WithPlatforms makes Pull store only the children of an index that match one of ps. The index
// manifest itself is stored unchanged, so its digest stays the registry's; the other
// platforms are simply absent. Without it, Pull keeps the whole index.
func WithPlatforms(ps ...v1.Platform) RemoteOption {
	return func(c *remoteConfig) { c.platforms = append(c.platforms, ps...) }
}

// WithKeychain replaces authn.DefaultKeychain.
func WithKeychain(k authn.Keychain) RemoteOption {
	return func(c *remoteConfig) { c.keychain = k }
}

// WithTransport replaces the HTTP transport.
func WithTransport(t http.RoundTripper) RemoteOption {
	return func(c *remoteConfig) { c.transport = t }
}

func (rc *remoteConfig) parse(ref string) (name.Reference, error) {
	var opts []name.Option
	if rc.insecure {
		opts = append(opts, name.Insecure)
	}
	return parseRef(ref, opts...)
}

func (rc *remoteConfig) options(ctx context.Context) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(rc.keychain)}
	if rc.transport != nil {
		opts = append(opts, remote.WithTransport(rc.transport))
	}
	return opts
}

func newRemoteConfig(opts []RemoteOption) *remoteConfig {
	rc := &remoteConfig{keychain: authn.DefaultKeychain}
	for _, o := range opts {
		o(rc)
	}
	return rc
}

// Pull fetches an image or index from its registry into the cache and names it ref. An index
// is kept whole (every platform) unless WithPlatforms narrows it.
func (c *Cache) Pull(ctx context.Context, ref string, opts ...RemoteOption) (v1.Descriptor, error) {
	rc := newRemoteConfig(opts)
	r, err := rc.parse(ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	unlock, err := c.readLock()
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer unlock()
	rd, err := remote.Get(r, rc.options(ctx)...)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("pulling %s: %w", Familiar(r.Name()), err)
	}
	var d v1.Descriptor
	switch {
	case rd.MediaType.IsIndex():
		idx, err := rd.ImageIndex()
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("pulling %s: %w", Familiar(r.Name()), err)
		}
		var keep func(v1.Descriptor) bool
		if len(rc.platforms) > 0 {
			im, err := idx.IndexManifest()
			if err != nil {
				return v1.Descriptor{}, fmt.Errorf("pulling %s: %w", Familiar(r.Name()), err)
			}
			keep = func(d v1.Descriptor) bool {
				if d.MediaType.IsIndex() {
					return true
				}
				for _, p := range rc.platforms {
					if platformMatches(p, d.Platform) {
						return true
					}
				}
				return false
			}
			n := 0
			for _, child := range im.Manifests {
				if keep(child) {
					n++
				}
			}
			if n == 0 {
				var want []string
				for _, p := range rc.platforms {
					want = append(want, p.String())
				}
				return v1.Descriptor{}, fmt.Errorf("pulling %s: %w: no %s image; it has: %s", Familiar(r.Name()),
					ErrNotFound, strings.Join(want, ", "), strings.Join(availablePlatforms(im), ", "))
			}
		}
		if d, err = c.writeIndex(idx, keep); err != nil {
			return v1.Descriptor{}, fmt.Errorf("pulling %s: %w", Familiar(r.Name()), err)
		}
	case rd.MediaType.IsImage():
		img, err := rd.Image()
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("pulling %s: %w", Familiar(r.Name()), err)
		}
		if d, err = c.writeImage(img); err != nil {
			return v1.Descriptor{}, fmt.Errorf("pulling %s: %w", Familiar(r.Name()), err)
		}
	default:
		return v1.Descriptor{}, fmt.Errorf("pulling %s: unsupported media type %s", Familiar(r.Name()), rd.MediaType)
	}
	if d.Digest != rd.Digest {
		return v1.Descriptor{}, fmt.Errorf("%w: pulling %s: registry said %s, content is %s", ErrCorrupt, Familiar(r.Name()), rd.Digest, d.Digest)
	}
	if err := c.tag(r, d); err != nil {
		return v1.Descriptor{}, err
	}
	return d, nil
}

// Push uploads the image or index named ref to its registry. An index is pushed with every
// child; a child missing from the cache (a platform-filtered pull) makes it fail.
func (c *Cache) Push(ctx context.Context, ref string, opts ...RemoteOption) error {
	rc := newRemoteConfig(opts)
	r, err := rc.parse(ref)
	if err != nil {
		return err
	}
	unlock, err := c.readLock()
	if err != nil {
		return err
	}
	defer unlock()
	d, err := c.resolve(ref)
	if err != nil {
		return fmt.Errorf("pushing: %w", err)
	}
	switch {
	case d.MediaType.IsIndex():
		idx, err := c.index(d)
		if err != nil {
			return fmt.Errorf("pushing %s: %w", Familiar(r.Name()), err)
		}
		if err := remote.WriteIndex(r, idx, rc.options(ctx)...); err != nil {
			return fmt.Errorf("pushing %s: %w", Familiar(r.Name()), err)
		}
	case d.MediaType.IsImage():
		img, err := c.image(d)
		if err != nil {
			return fmt.Errorf("pushing %s: %w", Familiar(r.Name()), err)
		}
		if err := remote.Write(r, img, rc.options(ctx)...); err != nil {
			return fmt.Errorf("pushing %s: %w", Familiar(r.Name()), err)
		}
	default:
		return fmt.Errorf("pushing %s: unsupported media type %s", Familiar(r.Name()), d.MediaType)
	}
	return nil
}
