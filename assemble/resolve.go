package assemble

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"gopkg.in/yaml.v3"

	"github.com/kiln-os/kiln/config"
	"github.com/kiln-os/kiln/internal/ocicache"
)

// resolved is one image reference pinned to content.
type resolved struct {
	ref    string        // as written in the YAML
	top    v1.Descriptor // what the reference names: an index or a manifest
	image  v1.Image      // the manifest for the build's platform
	digest v1.Hash       // that manifest's digest
	config *v1.ConfigFile
}

// resolution maps every reference of a system to its image.
type resolution map[string]*resolved

// references lists every image reference of a system, in YAML order, once each.
func references(sys *config.System) []string {
	var refs []string
	seen := map[string]bool{}
	add := func(r string) {
		if r != "" && !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	if sys.Kernel != nil {
		add(sys.Kernel.Image)
	}
	for _, r := range sys.Init {
		add(r)
	}
	for _, list := range [][]*config.Image{sys.Onboot, sys.Onshutdown, sys.Services} {
		for _, img := range list {
			add(img.Image)
		}
	}
	for _, v := range sys.Volumes {
		add(v.Image)
	}
	return refs
}

func (b *builder) resolveAll(ctx context.Context, sys *config.System, lock *lockFile) (resolution, error) {
	res := resolution{}
	var errs []error
	for _, ref := range references(sys) {
		r, err := b.resolve(ctx, ref, lock)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res[ref] = r
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return res, nil
}

// resolve finds one reference: by the lock file's digest when it has one, in the cache, and
// in its registry when pulling is allowed.
func (b *builder) resolve(ctx context.Context, ref string, lock *lockFile) (*resolved, error) {
	want := ref
	if d, ok := lock.Images[ref]; ok && !strings.Contains(ref, "@") {
		want = withDigest(ref, d)
	}
	img, desc, err := b.opt.Cache.Image(want, &b.platform)
	if errors.Is(err, ocicache.ErrNotFound) && b.opt.Pull {
		b.log("pulling %s", ref)
		if _, perr := b.opt.Cache.Pull(ctx, want); perr != nil {
			return nil, fmt.Errorf("image %s is not in the cache and pulling it failed: %w", ref, perr)
		}
		img, desc, err = b.opt.Cache.Image(want, &b.platform)
	}
	if errors.Is(err, ocicache.ErrNotFound) {
		hint := "build it with `kiln pkg build`, import it with `kiln cache import`, or pull it with `kiln cache pull`"
		if !b.opt.Pull {
			hint += " (pulling is off)"
		}
		return nil, fmt.Errorf("image %s: not found in the cache %s: %s: %w", ref, b.opt.Cache.Root(), hint, err)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	top, err := b.opt.Cache.Resolve(want)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: reading its config: %w", ref, err)
	}
	if cfg.Architecture != "" && cfg.Architecture != b.opt.Arch {
		return nil, fmt.Errorf("image %s is for %s/%s, not %s: give a multi-arch image or the right -arch", ref, cfg.OS, cfg.Architecture, b.opt.Arch)
	}
	return &resolved{ref: ref, top: top, image: img, digest: desc.Digest, config: cfg}, nil
}

// withDigest pins a reference to a digest, keeping its name and tag for readability.
func withDigest(ref string, d v1.Hash) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	return ref + "@" + d.String()
}

// pin returns a copy of sys whose references carry their resolved digests.
func (res resolution) pin(sys *config.System) *config.System {
	out := sys.Clone()
	p := func(ref string) string {
		if r, ok := res[ref]; ok && !strings.Contains(ref, "@") {
			return withDigest(ref, r.top.Digest)
		}
		return ref
	}
	if out.Kernel != nil {
		out.Kernel.Image = p(out.Kernel.Image)
	}
	for i := range out.Init {
		out.Init[i] = p(out.Init[i])
	}
	for _, list := range [][]*config.Image{out.Onboot, out.Onshutdown, out.Services} {
		for _, img := range list {
			img.Image = p(img.Image)
		}
	}
	for _, v := range out.Volumes {
		v.Image = p(v.Image)
	}
	return out
}

// lockFile records what each reference resolved to. A later build with the file beside its
// outputs resolves the same references to the same content, even if a tag has moved.
type lockFile struct {
	Arch string `yaml:"arch"`
	// Images maps a reference, as written in the YAML, to the digest it named (an index or a
	// manifest).
	Images map[string]v1.Hash `yaml:"images"`
}

const lockHeader = "# Written by kiln build: the digest each image reference resolved to.\n" +
	"# Builds beside this file reuse these digests; run with -update-lock to resolve again.\n"

func readLock(path string, ignore bool) (*lockFile, error) {
	lf := &lockFile{Images: map[string]v1.Hash{}}
	if ignore {
		return lf, nil
	}
	f, _, err := openRegular(path)
	if errors.Is(err, os.ErrNotExist) {
		return lf, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the lock file: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<20))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the lock file %s: %w", path, err)
	}
	var raw struct {
		Arch   string            `yaml:"arch"`
		Images map[string]string `yaml:"images"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w (delete it or run with -update-lock)", path, err)
	}
	for ref, d := range raw.Images {
		h, err := v1.NewHash(d)
		if err != nil {
			return nil, fmt.Errorf("%s: image %s: %w (delete it or run with -update-lock)", path, ref, err)
		}
		lf.Images[ref] = h
	}
	lf.Arch = raw.Arch
	return lf, nil
}

func (res resolution) lock() *lockFile {
	lf := &lockFile{Images: map[string]v1.Hash{}}
	for ref, r := range res {
		if !strings.Contains(ref, "@") {
			lf.Images[ref] = r.top.Digest
		}
	}
	return lf
}

func (lf *lockFile) write(w io.Writer, arch string) error {
	bw := bufio.NewWriter(w)
	fmt.Fprint(bw, lockHeader)
	fmt.Fprintf(bw, "arch: %s\nimages:\n", arch)
	refs := make([]string, 0, len(lf.Images))
	for ref := range lf.Images {
		refs = append(refs, ref)
	}
	sort.Strings(refs)
	for _, ref := range refs {
		key, err := yaml.Marshal(ref)
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "  %s: %s\n", strings.TrimSpace(string(key)), lf.Images[ref])
	}
	return bw.Flush()
}
