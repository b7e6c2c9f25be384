// Package pkgbuild builds kiln packages: folders with a build.yml and a Dockerfile, built by
// BuildKit into multi-arch OCI images in the kiln cache.
//
// Build loads every package given, replaces "@pkg:PATH" references in Dockerfiles and build
// arguments with the referred package's image, orders the packages so that each is built after
// the packages it refers to, and skips a package whose image is already cached for every
// platform asked for. Each platform is solved on its builder node (the local buildkitd, or a
// remote one chosen by platform), in parallel; the OCI exporter's output streams into the cache
// (each blob verified by digest), and the package's index is written and named only when every
// platform has succeeded, so a failed build leaves the cache's names unchanged.
//
// Builds are hermetic (no network in RUN steps unless build.yml says network: true) and
// reproducible: SOURCE_DATE_EPOCH is the time of the last commit that touched the package
// (or the environment's SOURCE_DATE_EPOCH), and BuildKit rewrites every file time to it.
// Images that FROM lines name and the cache holds are handed to BuildKit by digest from the
// cache, so no registry is involved.
//
// This package does not run or manage buildkitd (package builder does) nor assemble systems.
package pkgbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/kiln-os/kiln/builder"
	"github.com/kiln-os/kiln/internal/ocicache"
)

// Labels kiln puts on every package image.
const (
	LabelSource   = "org.opencontainers.image.source"
	LabelRevision = "org.opencontainers.image.revision"
	LabelConfig   = "org.mobyproject.config"
)

// Options configure Build.
type Options struct {
	// Cache receives the images; FROM lines are resolved from it.
	Cache *ocicache.Cache
	// Connect returns a client for the builder node that builds platform. It is called once
	// per platform and only when something must be built.
	Connect func(ctx context.Context, platform string) (*client.Client, string, error)
	// Platforms overrides build.yml's arches ("linux/arm64"); DefaultPlatforms apply to
	// packages that name no arches (usually the host's).
	Platforms        []string
	DefaultPlatforms []string
	// Force builds the packages given even when their images are cached (not the dependencies
	// Build adds: name those too to rebuild them).
	Force bool
	// Push pushes each image to its registry after it is built (or found in the cache).
	Push        bool
	PushOptions []ocicache.RemoteOption
	// Progress receives BuildKit's progress display in ProgressMode ("auto", "tty", "plain",
	// "quiet", "rawjson"). Log receives kiln's own lines. Nil discards.
	Progress     io.Writer
	ProgressMode string
	Log          io.Writer
	// Getenv reads the environment (SOURCE_DATE_EPOCH, bare build arguments); nil uses the
	// process environment.
	Getenv func(string) (string, bool)
}

// Result says what happened to one package.
type Result struct {
	Dir string
	Ref string
	// Digest is the digest of the package's image index in the cache.
	Digest v1.Hash
	// Built lists the platforms built now; Cached says the image was already there.
	Built  []string
	Cached bool
	Pushed bool
}

// Load loads and orders the packages in dirs without building anything.
func Load(ctx context.Context, dirs []string, getenv func(string) (string, bool)) ([]*Package, error) {
	return load(ctx, dirs, getenv, false)
}

// load loads the packages in dirs and, with deps, every package they refer to with "@pkg:",
// transitively (marked Dependency), and orders them.
func load(ctx context.Context, dirs []string, getenv func(string) (string, bool), deps bool) ([]*Package, error) {
	if len(dirs) == 0 {
		return nil, errors.New("no package folders given")
	}
	l := newLoader(ctx)
	if getenv != nil {
		l.env = getenv
	}
	var pkgs []*Package
	seen := map[string]bool{}
	for _, d := range dirs {
		p, err := l.load(d)
		if err != nil {
			return nil, err
		}
		if seen[p.Dir] {
			continue
		}
		seen[p.Dir] = true
		pkgs = append(pkgs, p)
	}
	for i := 0; deps && i < len(pkgs); i++ {
		for _, n := range pkgs[i].Needs {
			if seen[n] {
				continue
			}
			q, err := l.load(n)
			if err != nil {
				return nil, fmt.Errorf("%s (named by %s): %w", display(n), pkgs[i].DockerfilePath, err)
			}
			seen[n] = true
			q.Dependency = true
			pkgs = append(pkgs, q)
		}
	}
	return order(pkgs)
}

// Build builds the packages in dirs, in dependency order.
func Build(ctx context.Context, dirs []string, o Options) ([]Result, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Progress == nil {
		o.Progress = io.Discard
		o.ProgressMode = "quiet"
	}
	if o.Getenv == nil {
		o.Getenv = os.LookupEnv
	}
	pkgs, err := load(ctx, dirs, o.Getenv, true)
	if err != nil {
		return nil, err
	}
	if o.Push {
		for _, p := range pkgs {
			if p.Tag.Dirty && !p.Dependency {
				return nil, fmt.Errorf("%s: will not push %s: the package has uncommitted changes (a dirty tag names content no commit holds); commit them, or build without --push", display(p.Dir), p.Ref)
			}
		}
	}
	var results []Result
	for _, p := range pkgs {
		r, err := buildOne(ctx, p, o)
		if err != nil {
			return results, err
		}
		results = append(results, r)
	}
	return results, nil
}

// buildOne builds (or finds) one package and pushes it when asked.
func buildOne(ctx context.Context, p *Package, o Options) (Result, error) {
	res := Result{Dir: display(p.Dir), Ref: p.Ref}
	want, err := p.Platforms(o.Platforms, o.DefaultPlatforms)
	if err != nil {
		return res, err
	}
	have := map[string]v1.Descriptor{}
	if d, err := o.Cache.Resolve(p.Ref); err == nil {
		have, err = cachedPlatforms(o.Cache, p.Ref, d)
		if err != nil {
			return res, fmt.Errorf("%s: %w", p.Ref, err)
		}
		res.Digest = d.Digest
	} else if !errors.Is(err, ocicache.ErrNotFound) {
		return res, err
	}
	var todo []string
	for _, pl := range want {
		if _, ok := have[pl]; !ok || (o.Force && !p.Dependency) {
			todo = append(todo, pl)
		}
	}
	if len(todo) == 0 {
		res.Cached = true
		fmt.Fprintf(o.Log, "%s: cached (%s)\n", p.Ref, strings.Join(want, ", "))
	} else {
		// Until the index is named, nothing in the cache refers to the blobs the solves
		// store: hold off garbage collection (kiln cache clean) in other processes.
		release, err := o.Cache.Hold()
		if err != nil {
			return res, err
		}
		defer release()
		built, err := buildPlatforms(ctx, p, todo, o)
		if err != nil {
			return res, err
		}
		for pl, d := range built {
			have[pl] = d
		}
		idx, err := writeIndex(o.Cache, p.Ref, have)
		if err != nil {
			return res, fmt.Errorf("%s: %w", p.Ref, err)
		}
		res.Digest = idx.Digest
		res.Built = todo
		fmt.Fprintf(o.Log, "%s: built %s -> %s\n", p.Ref, strings.Join(todo, ", "), idx.Digest)
	}
	if o.Push && !p.Dependency { // dependencies are built for this build, not published
		if err := o.Cache.Push(ctx, p.Ref, o.PushOptions...); err != nil {
			return res, fmt.Errorf("pushing %s: %w", p.Ref, err)
		}
		if err := pushArchTags(ctx, o.Cache, p.Ref, have, o.PushOptions); err != nil {
			return res, err
		}
		res.Pushed = true
		fmt.Fprintf(o.Log, "%s: pushed\n", p.Ref)
	}
	return res, nil
}

// buildPlatforms solves p for each platform in parallel, each on its node, and returns the
// image manifest stored for each.
func buildPlatforms(ctx context.Context, p *Package, todo []string, o Options) (map[string]v1.Descriptor, error) {
	if len(p.argErrs) > 0 {
		return nil, errors.Join(p.argErrs...)
	}
	epoch, revision, err := sourceInfo(ctx, p, o.Getenv)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{LabelRevision: revision}
	if p.Spec.GitRepo != "" {
		labels[LabelSource] = p.Spec.GitRepo
	}
	if p.ConfigLabel != "" {
		labels[LabelConfig] = p.ConfigLabel
	}
	for k, v := range p.Spec.Labels {
		labels[k] = v
	}
	contextDir, cleanup, err := buildContext(ctx, p)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	modules, cleanupModules, err := goModules(ctx, p.sourceDirs()...)
	if err != nil {
		return nil, err
	}
	defer cleanupModules()
	var locals map[string]string
	if modules != "" {
		locals = map[string]string{GoModulesContext: modules}
	}

	// Every request is complete before any solve starts, so an error here leaves nothing
	// running in the background.
	reqs := make([]builder.Request, 0, len(todo))
	for _, pl := range todo {
		contexts, err := namedContexts(o, p, pl)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, builder.Request{
			Name:           p.Ref + " for " + pl,
			ContextDir:     contextDir,
			Dockerfile:     p.Dockerfile,
			DockerfileName: p.DockerfilePath,
			Platform:       pl,
			BuildArgs:      p.BuildArgs,
			Labels:         labels,
			Contexts:       contexts,
			Layout:         o.Cache.Root(),
			Locals:         locals,
			Network:        p.Spec.Network,
			NoCache:        p.Spec.DisableCache || (o.Force && !p.Dependency),
			Epoch:          epoch,
		})
	}

	display, err := builder.NewProgress(ctx, o.Progress, o.ProgressMode)
	if err != nil {
		return nil, err
	}
	// mu guards out and o.Log, which the solves share.
	var mu sync.Mutex
	out := map[string]v1.Descriptor{}
	g, gctx := errgroup.WithContext(ctx)
	for _, req := range reqs {
		status := display.Channel()
		g.Go(func() error {
			c, addr, err := o.Connect(gctx, req.Platform)
			if err != nil {
				close(status)
				return err
			}
			mu.Lock()
			fmt.Fprintf(o.Log, "%s: building for %s on %s\n", p.Ref, req.Platform, addr)
			mu.Unlock()
			d, err := solveInto(gctx, c, req, o.Cache, status)
			if err != nil {
				if !p.Spec.Network && strings.Contains(err.Error(), "did not complete successfully") {
					err = fmt.Errorf("%w\n(RUN steps of this package have no network; if this one needs it, add network: true to %s)", err, p.Spec.File)
				}
				return fmt.Errorf("building %s (%s on %s): %w", p.Ref, req.Platform, addr, err)
			}
			mu.Lock()
			out[req.Platform] = d
			mu.Unlock()
			return nil
		})
	}
	err = g.Wait()
	if derr := display.Close(); err == nil && derr != nil {
		err = derr
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// solveInto runs one solve and streams the exported OCI tar into the cache.
func solveInto(ctx context.Context, c *client.Client, req builder.Request, cache *ocicache.Cache, status chan *client.SolveStatus) (v1.Descriptor, error) {
	pr, pw := io.Pipe()
	type imported struct {
		ds  []v1.Descriptor
		err error
	}
	done := make(chan imported, 1)
	go func() {
		ds, err := cache.ImportBlobs(pr)
		pr.CloseWithError(err) // unblock the exporter if the import stopped early
		done <- imported{ds, err}
	}()
	err := builder.Solve(ctx, c, req, pw, status)
	pw.CloseWithError(err)
	im := <-done
	if err != nil {
		return v1.Descriptor{}, err
	}
	if im.err != nil {
		return v1.Descriptor{}, fmt.Errorf("storing the result: %w", im.err)
	}
	if len(im.ds) != 1 || !im.ds[0].MediaType.IsImage() {
		return v1.Descriptor{}, fmt.Errorf("BuildKit exported %d entries, want one image manifest", len(im.ds))
	}
	d := im.ds[0]
	pl, err := platforms.Parse(req.Platform)
	if err != nil {
		return v1.Descriptor{}, err
	}
	d.Platform = &v1.Platform{OS: pl.OS, Architecture: pl.Architecture, Variant: pl.Variant}
	d.Annotations = nil
	return d, nil
}

// namedContexts maps each image a FROM line names, when the cache holds it, to its digest.
func namedContexts(o Options, p *Package, platform string) (map[string]digest.Digest, error) {
	refs, err := fromRefs(p.Dockerfile, p.BuildArgs, platform)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.DockerfilePath, err)
	}
	out := map[string]digest.Digest{}
	for _, r := range refs {
		d, err := o.Cache.Resolve(r.Ref)
		if errors.Is(err, ocicache.ErrNotFound) {
			fmt.Fprintf(o.Log, "%s:%d: %s is not in the kiln cache; BuildKit will look for it in its registry\n", p.DockerfilePath, r.Line, r.Ref)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", p.DockerfilePath, r.Line, r.Ref, err)
		}
		out[ocicache.Familiar(r.Ref)] = digest.Digest(d.Digest.String())
	}
	return out, nil
}

// cachedPlatforms returns the platform images of the cached index d names. An image that is
// not an index counts as having no platforms, so it is rebuilt.
func cachedPlatforms(c *ocicache.Cache, ref string, d v1.Descriptor) (map[string]v1.Descriptor, error) {
	out := map[string]v1.Descriptor{}
	if !d.MediaType.IsIndex() {
		return out, nil
	}
	idx, err := c.Index(ref)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, m := range im.Manifests {
		if m.Platform == nil || !m.MediaType.IsImage() {
			continue
		}
		pl := platforms.Normalize(platforms.Platform{OS: m.Platform.OS, Architecture: m.Platform.Architecture, Variant: m.Platform.Variant})
		out[platforms.Format(pl)] = m
	}
	return out, nil
}

// writeIndex writes the OCI index of the platform images and names it ref. The index lists
// the images sorted by platform and carries no annotations, so it depends only on them.
func writeIndex(c *ocicache.Cache, ref string, ms map[string]v1.Descriptor) (v1.Descriptor, error) {
	b, d, err := indexManifest(ms)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if _, _, err := c.WriteBlob(bytes.NewReader(b), d.Digest); err != nil {
		return v1.Descriptor{}, err
	}
	if err := c.Tag(ref, d); err != nil {
		return v1.Descriptor{}, err
	}
	return d, nil
}

// indexManifest returns the OCI index of the platform images ms (keyed by platform) and its
// descriptor: the images sorted by platform, nothing else, so that the same images always give
// the same index, whether built here (writeIndex) or assembled in a registry (Manifest).
func indexManifest(ms map[string]v1.Descriptor) ([]byte, v1.Descriptor, error) {
	keys := make([]string, 0, len(ms))
	for k := range ms {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	im := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	for _, k := range keys {
		im.Manifests = append(im.Manifests, ms[k])
	}
	b, err := json.Marshal(im)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	sum := sha256.Sum256(b)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	return b, v1.Descriptor{MediaType: types.OCIImageIndex, Size: int64(len(b)), Digest: h}, nil
}

// sourceInfo returns SOURCE_DATE_EPOCH and the revision label for p: the environment's
// SOURCE_DATE_EPOCH when set, else the commit time of the last commit that touched the package
// (and its extra sources); the revision is that commit, with "-dirty" for a dirty tree.
func sourceInfo(ctx context.Context, p *Package, getenv func(string) (string, bool)) (int64, string, error) {
	paths := []string{"."}
	for _, e := range p.Spec.ExtraSources {
		paths = append(paths, e.Src)
	}
	args := append([]string{"log", "-1", "--format=%H %ct", "--"}, paths...)
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = p.Dir
	outb, err := cmd.Output()
	var rev string
	var epoch int64
	if err == nil {
		f := strings.Fields(string(outb))
		if len(f) == 2 {
			rev = f[0]
			epoch, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if p.Tag.Dirty {
		rev += "-dirty"
	}
	if v, ok := getenv("SOURCE_DATE_EPOCH"); ok && v != "" {
		e, err := strconv.ParseInt(v, 10, 64)
		if err != nil || e < 0 {
			return 0, "", fmt.Errorf("SOURCE_DATE_EPOCH=%q: want a non-negative number of seconds", v)
		}
		epoch = e
	}
	return epoch, rev, nil
}
