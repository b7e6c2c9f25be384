package pkgbuild

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/kiln-os/kiln/config"
	"github.com/kiln-os/kiln/pkg/buildyml"
	"github.com/kiln-os/kiln/pkg/tag"
)

// Package is one package folder, loaded and resolved: its build.yml, tag, image reference,
// the Dockerfile and build arguments with "@pkg:" references replaced, and the packages it
// needs first.
type Package struct {
	Spec *buildyml.Spec
	// Dir is the package folder, absolute and cleaned.
	Dir string
	Tag tag.Tag
	// Ref is "<org>/<image>:<tag>".
	Ref string
	// Dockerfile is the Dockerfile text with "@pkg:PATH" replaced by the references of those
	// packages; DockerfilePath is its path relative to the current folder when possible.
	Dockerfile     []byte
	DockerfilePath string
	// BuildArgs are build.yml's buildArgs, "@pkg:" replaced. A bare NAME takes its value from
	// the environment (as `docker build --build-arg NAME` does).
	BuildArgs map[string]string
	// Needs are the folders of the packages this one refers to with "@pkg:".
	Needs []string
	// argErrs are build arguments that could not be set (a bare NAME the environment lacks);
	// they fail the package's build, not its loading.
	argErrs []error
	// Dependency says the package was not asked for but is needed by one that was: Build
	// builds it first when its image is not cached.
	Dependency bool
	// ConfigLabel is the org.mobyproject.config label (JSON), empty when build.yml has no
	// config.
	ConfigLabel string
}

// pkgRefRE matches "@pkg:PATH"; PATH ends at white space, a quote or a closing bracket.
var pkgRefRE = regexp.MustCompile(`@pkg:([^\s"'\])},]+)`)

// loader loads packages and caches each folder's reference, since a folder may be named by
// several packages' "@pkg:" references.
type loader struct {
	ctx  context.Context
	refs map[string]string
	env  func(string) (string, bool)
}

func newLoader(ctx context.Context) *loader {
	return &loader{ctx: ctx, refs: map[string]string{}, env: os.LookupEnv}
}

// ref returns the image reference of the package in dir (absolute).
func (l *loader) ref(dir string) (string, error) {
	if r, ok := l.refs[dir]; ok {
		return r, nil
	}
	r, err := buildyml.Ref(l.ctx, dir)
	if err != nil {
		return "", err
	}
	l.refs[dir] = r
	return r, nil
}

// expand replaces every "@pkg:PATH" in text, PATH relative to base, and records the folders.
func (l *loader) expand(text, base, where string, needs map[string]bool) (string, error) {
	var firstErr error
	out := pkgRefRE.ReplaceAllStringFunc(text, func(m string) string {
		p := strings.TrimPrefix(m, "@pkg:")
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, p)
		}
		p = filepath.Clean(p)
		r, err := l.ref(p)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%s: %s: %w", where, m, err)
		}
		needs[p] = true
		return r
	})
	return out, firstErr
}

// load reads the package in dir.
func (l *loader) load(dir string) (*Package, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	spec, err := buildyml.Load(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: not a package: no %s (a package folder holds build.yml and a Dockerfile)", dir, buildyml.FileName)
		}
		return nil, err
	}
	spec.File = display(spec.File)
	t, err := spec.PackageTag(l.ctx)
	if err != nil {
		return nil, err
	}
	ref, err := spec.ImageRef(t)
	if err != nil {
		return nil, err
	}
	l.refs[abs] = ref
	p := &Package{Spec: spec, Dir: abs, Tag: t, Ref: ref, BuildArgs: map[string]string{}}

	dfPath := filepath.Join(abs, filepath.FromSlash(spec.Dockerfile))
	p.DockerfilePath = display(dfPath)
	df, err := os.ReadFile(dfPath)
	if err != nil {
		return nil, fmt.Errorf("%s: dockerfile: %w", spec.File, err)
	}
	// The same detection the built-in frontend uses to decide to forward to another frontend
	// ("#syntax=", "# syntax = ", "//syntax=", a JSON "syntax" key, after a shebang...).
	if ref, _, loc, ok := parser.DetectSyntax(df); ok {
		line := 1
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		return nil, fmt.Errorf("%s:%d: a syntax directive (%s) makes BuildKit pull a frontend image; remove it (kiln uses the built-in Dockerfile frontend)", p.DockerfilePath, line, ref)
	}
	needs := map[string]bool{}
	text, err := l.expand(string(df), abs, p.DockerfilePath, needs)
	if err != nil {
		return nil, err
	}
	p.Dockerfile = []byte(text)
	for i, a := range spec.BuildArgs {
		where := fmt.Sprintf("%s: buildArgs[%d]", spec.File, i)
		v, err := l.expand(a, abs, where, needs)
		if err != nil {
			return nil, err
		}
		k, val, ok := strings.Cut(v, "=")
		if !ok {
			env, set := l.env(k)
			if !set {
				// Only an error if the package must be built: a cached one needs no arguments.
				p.argErrs = append(p.argErrs, fmt.Errorf("%s: %q takes its value from the environment, where %s is not set: set it, or write %s=VALUE", where, a, k, k))
				continue
			}
			val = env
		}
		p.BuildArgs[k] = val
	}
	delete(needs, abs)
	for d := range needs {
		p.Needs = append(p.Needs, d)
	}
	sort.Strings(p.Needs)

	if spec.Config.Kind != 0 {
		label, err := configLabel(spec)
		if err != nil {
			return nil, err
		}
		p.ConfigLabel = label
	}
	return p, nil
}

// sourceDirs returns the package folder and then each extra source's folder, absolute (extra
// sources are relative to the package folder).
func (p *Package) sourceDirs() []string {
	dirs := []string{p.Dir}
	for _, e := range p.Spec.ExtraSources {
		src := e.Src
		if !filepath.IsAbs(src) {
			src = filepath.Join(p.Dir, src)
		}
		dirs = append(dirs, src)
	}
	return dirs
}

// configLabel turns build.yml's config mapping into the org.mobyproject.config label and checks
// it against the system YAML's per-image schema, so a mistake shows at build time, with the
// line in build.yml, rather than when a system is assembled.
func configLabel(spec *buildyml.Spec) (string, error) {
	var v any
	if err := spec.Config.Decode(&v); err != nil {
		return "", fmt.Errorf("%s:%d: config: %w", spec.File, spec.Config.Line, err)
	}
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		return "", fmt.Errorf("%s:%d: config: %w", spec.File, spec.Config.Line, err)
	}
	if _, err := config.ParseImageLabel(spec.File+" config", b); err != nil {
		return "", fmt.Errorf("%s:%d: config: %w", spec.File, spec.Config.Line, err)
	}
	return string(b), nil
}

// jsonable converts what yaml.v3 decodes into values encoding/json accepts (yaml.v3 gives
// map[string]any for mappings with string keys already; nested values are converted too).
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
		return x
	default:
		return v
	}
}

// order sorts packages so that each comes after the packages it needs among them; packages
// that do not depend on each other keep the order they were given in. A cycle is an error that
// names it.
func order(pkgs []*Package) ([]*Package, error) {
	byDir := map[string]*Package{}
	for _, p := range pkgs {
		byDir[p.Dir] = p
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var out []*Package
	var stack []string
	var visit func(p *Package) error
	visit = func(p *Package) error {
		switch state[p.Dir] {
		case done:
			return nil
		case visiting:
			i := 0
			for i < len(stack) && stack[i] != p.Dir {
				i++
			}
			cycle := append(append([]string{}, stack[i:]...), p.Dir)
			for j := range cycle {
				cycle[j] = display(cycle[j])
			}
			return fmt.Errorf("packages depend on each other in a cycle: %s", strings.Join(cycle, " -> "))
		}
		state[p.Dir] = visiting
		stack = append(stack, p.Dir)
		for _, n := range p.Needs {
			if q, ok := byDir[n]; ok {
				if err := visit(q); err != nil {
					return err
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[p.Dir] = done
		out = append(out, p)
		return nil
	}
	for _, p := range pkgs {
		if err := visit(p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Platforms returns the platforms to build p for: want when given (those outside build.yml's
// arches are dropped, and none left is an error), else build.yml's arches, else def.
func (p *Package) Platforms(want, def []string) ([]string, error) {
	arches := map[string]bool{}
	for _, a := range p.Spec.Arches {
		arches[a] = true
	}
	var out []string
	switch {
	case len(want) > 0:
		for _, w := range want {
			pl, err := platforms.Parse(w)
			if err != nil {
				return nil, fmt.Errorf("platform %q: %w", w, err)
			}
			if len(arches) == 0 || arches[pl.Architecture] {
				out = append(out, platforms.Format(platforms.Normalize(pl)))
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%s: arches %v include none of the platforms asked for (%s)", p.Spec.File, p.Spec.Arches, strings.Join(want, ","))
		}
	case len(p.Spec.Arches) > 0:
		for _, a := range p.Spec.Arches {
			pl := platforms.Normalize(platforms.Platform{OS: "linux", Architecture: a})
			out = append(out, platforms.Format(pl))
		}
	default:
		out = append(out, def...)
	}
	sort.Strings(out)
	return dedupe(out), nil
}

func dedupe(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// display returns path relative to the current folder when it is inside it, so messages and
// labels do not carry host paths.
func display(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if rel, err := filepath.Rel(wd, abs); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}
