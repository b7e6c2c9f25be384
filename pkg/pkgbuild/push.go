package pkgbuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/containerd/platforms"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-os/kiln/internal/ocicache"
)

// ArchTag returns the tag under which one platform's image of ref is pushed, "REF-<arch>"
// ("REF-arm-v7" with a variant), so that images built on different machines can be combined
// into one index later (Manifest).
func ArchTag(ref, platform string) (string, error) {
	p, err := platforms.Parse(platform)
	if err != nil {
		return "", err
	}
	s := p.Architecture
	if p.Variant != "" {
		s += "-" + p.Variant
	}
	return ref + "-" + s, nil
}

// pushArchTags pushes each platform image of the cached index ref as ArchTag(ref, platform).
// Its blobs were pushed with the index, so only manifests travel.
// The registry is reached with the cache's transport policy (plain HTTP only to loopback and
// named registries) plus ropts.
func pushArchTags(ctx context.Context, c *ocicache.Cache, ref string, have map[string]v1.Descriptor, ropts []ocicache.RemoteOption) error {
	for pl, d := range have {
		tagRef, err := ArchTag(ref, pl)
		if err != nil {
			return err
		}
		if _, err := name.NewTag(tagRef); err != nil {
			return err
		}
		t, opts, err := c.Remote(ctx, tagRef, ropts...)
		if err != nil {
			return err
		}
		img, _, err := c.Image(ref, d.Platform)
		if err != nil {
			return err
		}
		if err := remote.Write(t, img, opts...); err != nil {
			return fmt.Errorf("pushing %s: %w", tagRef, err)
		}
	}
	return nil
}

// Manifest assembles, in the registry, the multi-arch index of each package in dirs from the
// per-platform images pushed as "REF-<arch>" (by `kiln pkg build --push` on each builder), and
// pushes it as REF. A platform of the package's arches that is missing is an error. ropts
// name insecure registries (ocicache.InsecureRegistries); plain HTTP goes to no other.
func Manifest(ctx context.Context, dirs []string, want []string, log io.Writer, ropts ...ocicache.RemoteOption) error {
	pkgs, err := Load(ctx, dirs, nil)
	if err != nil {
		return err
	}
	for _, p := range pkgs {
		pls, err := p.Platforms(want, []string{platforms.Format(platforms.DefaultSpec())})
		if err != nil {
			return err
		}
		if p.Tag.Dirty {
			return fmt.Errorf("%s: will not push an index for %s: the package has uncommitted changes", display(p.Dir), p.Ref)
		}
		children := map[string]v1.Descriptor{}
		var missing []string
		for _, pl := range pls {
			at, err := ArchTag(p.Ref, pl)
			if err != nil {
				return err
			}
			r, opts, err := ocicache.Remote(ctx, at, ropts...)
			if err != nil {
				return err
			}
			desc, err := remote.Get(r, opts...)
			if err != nil {
				var te *transport.Error
				if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
					missing = append(missing, at)
					continue
				}
				return fmt.Errorf("looking up %s: %w", at, err)
			}
			if !desc.MediaType.IsImage() {
				return fmt.Errorf("%s is a %s, want one platform's image manifest (pushed by kiln pkg build --push)", at, desc.MediaType)
			}
			pp, _ := platforms.Parse(pl)
			children[pl] = v1.Descriptor{
				MediaType: desc.MediaType, Size: desc.Size, Digest: desc.Digest,
				Platform: &v1.Platform{OS: pp.OS, Architecture: pp.Architecture, Variant: pp.Variant},
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s: not in the registry: %s; build and push each platform first (kiln pkg build --push -platforms ...)", p.Ref, strings.Join(missing, ", "))
		}
		// The index is written the way a build writes it, so the same images give the same
		// digest either way. Its children are in the repository already: only it travels.
		raw, d, err := indexManifest(children)
		if err != nil {
			return err
		}
		if _, err := name.NewTag(p.Ref); err != nil {
			return err
		}
		t, opts, err := ocicache.Remote(ctx, p.Ref, ropts...)
		if err != nil {
			return err
		}
		if err := remote.Put(t, rawIndex(raw), opts...); err != nil {
			return fmt.Errorf("pushing %s: %w", p.Ref, err)
		}
		fmt.Fprintf(log, "%s: index of %s pushed (%s)\n", p.Ref, strings.Join(pls, ", "), d.Digest)
	}
	return nil
}

// rawIndex is an OCI image index manifest, as remote.Put takes it.
type rawIndex []byte

func (r rawIndex) RawManifest() ([]byte, error)        { return r, nil }
func (r rawIndex) MediaType() (types.MediaType, error) { return types.OCIImageIndex, nil }
