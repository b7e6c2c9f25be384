// Package buildyml reads a package's build.yml, LinuxKit's package description, and names the
// package's image: Ref turns a package folder into "<org>/<image>:<tag>", the reference that
// "@pkg:./path" in a system YAML file expands to.
//
// Loading is strict: an unknown key, a value of the wrong kind or an invalid value is an *Error
// that carries the file, line, column and field. Every key LinuxKit's build.yml accepts is
// declared so that LinuxKit packages load unchanged; see Spec for each field and for where kiln
// differs from LinuxKit.
//
// This package does not build, pull or push images, and it does not interpret the fields that
// only matter to a build (config, buildArgs, depends, network, ...) beyond checking their
// shape: that is for the package builder. The tag itself is computed by package tag.
package buildyml

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"

	"github.com/kiln-os/kiln/pkg/tag"
)

// FileName is the name of a package's description inside its folder.
const FileName = "build.yml"

// Defaults of the optional fields.
const (
	// DefaultOrg is kiln's organisation for package images (LinuxKit's is "linuxkit").
	DefaultOrg = "kiln"
	// DefaultTag is the tag template used when build.yml has none: the package's tag itself.
	DefaultTag = "{{.Hash}}"
	// DefaultDockerfile is the Dockerfile used when build.yml names none.
	DefaultDockerfile = "Dockerfile"
)

// Spec is a parsed build.yml. After Load or Parse, Org, Tag and Dockerfile are set (to their
// defaults when the file leaves them out or empty); the other fields are as written.
type Spec struct {
	// File is the path of the file that was read, as given to Load or Parse. Dir is the
	// package folder: the folder of File.
	File string `yaml:"-"`
	Dir  string `yaml:"-"`

	// Image is the image name without organisation or tag (required).
	Image string `yaml:"image"`
	// Org is the organisation (repository prefix), optionally with a registry host:
	// "kiln", "example.com/team".
	Org string `yaml:"org,omitempty"`
	// Tag is a text/template for the image tag; it sees TagData.
	Tag string `yaml:"tag,omitempty"`
	// Dockerfile is the Dockerfile's path, relative to (and inside) the package folder.
	Dockerfile string `yaml:"dockerfile,omitempty"`
	// Arches are the GOARCH names the package builds for; empty leaves the choice to the
	// builder.
	Arches []string `yaml:"arches,omitempty"`
	// ExtraSources are folders copied into the package's build context, each to its
	// destination there. Only what git would record of them is copied (tracked files, and
	// untracked ones that are not ignored), and that all counts in the package's tag; the
	// go.mod at the top of one adds its modules to the build's Go module context.
	ExtraSources []ExtraSource `yaml:"extra-sources,omitempty"`
	// ExtraSourcesExclude are files or folders inside the extra sources that are neither
	// copied into the build context nor counted in the tag, each relative to the package
	// folder as the extra sources are ("../../docs"). This field is kiln's; LinuxKit has none.
	ExtraSourcesExclude []string `yaml:"extra-sources-exclude,omitempty"`
	// excludeNodes are the YAML nodes of ExtraSourcesExclude, for errors found later.
	excludeNodes []*yaml.Node
	// GitRepo is the repository the package comes from (informational).
	GitRepo string `yaml:"gitrepo,omitempty"`
	// Network allows network access during the build; builds are hermetic by default.
	Network bool `yaml:"network,omitempty"`
	// DisableCache builds without the build cache.
	DisableCache bool `yaml:"disable-cache,omitempty"`
	// DisableContentTrust is LinuxKit's retired Docker content trust switch, accepted so that
	// old files load, and ignored: kiln pins images by digest.
	DisableContentTrust bool `yaml:"disable-content-trust,omitempty"`
	// Config is the image configuration stored as the org.mobyproject.config label: the
	// per-image fields of the system YAML format (capabilities, binds, ...). It is kept as
	// YAML for the builder to check against that schema: a mapping node when set, the zero
	// Node (Kind 0) when not.
	Config yaml.Node `yaml:"config,omitempty"`
	// BuildArgs are Dockerfile build arguments, "NAME=VALUE".
	BuildArgs []string `yaml:"buildArgs,omitempty"`
	// Labels are added to the image's labels. This field is kiln's; LinuxKit has none.
	Labels map[string]string `yaml:"labels,omitempty"`
	// Depends lists what must be provided to the build beyond its sources.
	Depends Depends `yaml:"depends,omitempty"`
}

// ExtraSource is one entry of extra-sources, written "SRC:DST".
type ExtraSource struct {
	// Src is the folder on the host, relative to the package folder unless absolute.
	Src string
	// Dst is where it goes in the build context (a slash-separated, cleaned path).
	Dst string
}

// UnmarshalText parses "SRC:DST".
func (e *ExtraSource) UnmarshalText(text []byte) error {
	src, dst, ok := strings.Cut(string(text), ":")
	if !ok || strings.Contains(dst, ":") || src == "" || dst == "" {
		return fmt.Errorf("%q is not SRC:DST", text)
	}
	*e = ExtraSource{Src: filepath.Clean(src), Dst: path.Clean(dst)}
	return nil
}

// MarshalText writes "SRC:DST".
func (e ExtraSource) MarshalText() ([]byte, error) {
	return []byte(e.Src + ":" + e.Dst), nil
}

// Depends lists what must be provided to a package's build beyond its sources.
type Depends struct {
	DockerImages DockerImages `yaml:"docker-images,omitempty"`
}

// DockerImages are images saved as tar files into the build context before the build.
type DockerImages struct {
	// List names the images, each pinned by digest. FromFile instead names a file in the
	// package folder with one image per line. At most one of them is set.
	List     []string `yaml:"list,omitempty"`
	FromFile string   `yaml:"from-file,omitempty"`
	// Target is a tar file for all the images; TargetDir a folder for one tar file per image.
	// Both are relative to the package folder; at most one of them is set.
	Target    string `yaml:"target,omitempty"`
	TargetDir string `yaml:"target-dir,omitempty"`
}

// TagData is what the tag template sees.
type TagData struct {
	// Hash is the package's tag as computed by package tag: "<hash>" or
	// "<hash>-dirty-<content>".
	Hash string
}

// Load reads and checks dir/build.yml.
func Load(dir string) (*Spec, error) {
	file := filepath.Join(dir, FileName)
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("buildyml: %w", err)
	}
	return Parse(file, data)
}

// Ref returns the image reference of the package in dir, "<org>/<image>:<tag>", with the tag
// computed from the package's git state (see package tag) and build.yml's tag template.
func Ref(ctx context.Context, dir string) (string, error) {
	s, err := Load(dir)
	if err != nil {
		return "", err
	}
	t, err := s.PackageTag(ctx)
	if err != nil {
		return "", err
	}
	return s.ImageRef(t)
}

// PackageTag computes the tag of the package folder and its extra sources.
func (s *Spec) PackageTag(ctx context.Context) (tag.Tag, error) {
	t, err := tag.OfSources(ctx, s.Dir, s.Sources())
	var xe *tag.ExcludeError
	if errors.As(err, &xe) {
		// Name the entry of extra-sources-exclude, as written, with its line.
		for i, x := range s.ExtraSourcesExclude {
			for _, e := range s.ExtraSources {
				if rel, ok := inside(s.Dir, e.Src, x); ok && rel == xe.Path {
					e := &Error{File: s.File, Path: fmt.Sprintf("extra-sources-exclude[%d]", i), Err: fmt.Errorf("%q %w", x, xe.Err)}
					if i < len(s.excludeNodes) {
						e.Line, e.Column = s.excludeNodes[i].Line, s.excludeNodes[i].Column
					}
					return tag.Tag{}, e
				}
			}
		}
	}
	if err != nil {
		return tag.Tag{}, fmt.Errorf("buildyml: %s: %w", s.File, err)
	}
	return t, nil
}

// Sources returns the extra sources, each with the paths of extra-sources-exclude inside it
// (relative to it); a path inside several extra sources is left out of each.
func (s *Spec) Sources() []tag.Source {
	srcs := make([]tag.Source, len(s.ExtraSources))
	for i, e := range s.ExtraSources {
		srcs[i] = tag.Source{Dir: e.Src}
		for _, x := range s.ExtraSourcesExclude {
			if rel, ok := inside(s.Dir, e.Src, x); ok {
				srcs[i].Exclude = append(srcs[i].Exclude, rel)
			}
		}
	}
	return srcs
}

// inside reports whether the path x lies strictly inside the folder src (both relative to
// dir unless absolute, compared as written: symbolic links are not followed), and gives it
// relative to src, slash-separated.
func inside(dir, src, x string) (string, bool) {
	rel, ok := within(dir, src, x)
	return rel, ok && rel != "."
}

// within is inside, but true also when x is src itself (rel is then ".").
func within(dir, src, x string) (string, bool) {
	abs := func(p string) string {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return filepath.Clean(p)
		}
		return a
	}
	rel, err := filepath.Rel(abs(src), abs(x))
	if err != nil || (!filepath.IsLocal(rel) && rel != ".") {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// Repository returns "<org>/<image>".
func (s *Spec) Repository() string {
	return s.Org + "/" + s.Image
}

// ImageTag renders the tag template for the package tag t.
func (s *Spec) ImageTag(t tag.Tag) (string, error) {
	return renderTag(s.Tag, t.String())
}

// ImageRef returns "<org>/<image>:<tag>" for the package tag t.
func (s *Spec) ImageRef(t tag.Tag) (string, error) {
	it, err := s.ImageTag(t)
	if err != nil {
		return "", fmt.Errorf("buildyml: %s: tag: %w", s.File, err)
	}
	return s.Repository() + ":" + it, nil
}

// renderTag executes the tag template text with Hash set to hash, and checks that the result
// is a valid tag.
func renderTag(text, hash string) (string, error) {
	tmpl, err := template.New("tag").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, TagData{Hash: hash}); err != nil {
		return "", err
	}
	if !tagRE.MatchString(b.String()) {
		return "", fmt.Errorf("template gives %q, not a valid image tag", b.String())
	}
	return b.String(), nil
}

// Parse checks and decodes the contents of a build.yml; file names it in errors.
func Parse(file string, data []byte) (*Spec, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, syntaxError(file, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, &Error{File: file, Line: next.Line, Column: next.Column,
			Err: errors.New("more than one YAML document")}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxError(file, err)
	}

	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == 0 || isNull(root) {
		// Nothing but comments, or a null document.
		return nil, &Error{File: file, Path: "image", Err: errRequired}
	}
	if err := checkShape(root, specType, ""); err != nil {
		err.File = file
		return nil, err
	}
	s := &Spec{File: file, Dir: filepath.Dir(file)}
	if err := root.Decode(s); err != nil {
		// checkShape accepts only what decodes; this is a safety net.
		return nil, &Error{File: file, Err: err}
	}
	if err := s.check(root); err != nil {
		err.File = file
		return nil, err
	}
	return s, nil
}

var errRequired = errors.New("required")

// syntaxError turns an error of the YAML parser into an *Error, with the line it names.
func syntaxError(file string, err error) *Error {
	e := &Error{File: file, Err: err}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Err = errors.New(m[2])
	}
	return e
}

// check applies the defaults and checks the values; root is the file's top mapping, for
// positions.
func (s *Spec) check(root *yaml.Node) *Error {
	at := func(n *yaml.Node, field string, format string, args ...any) *Error {
		return &Error{Line: n.Line, Column: n.Column, Path: field, Err: fmt.Errorf(format, args...)}
	}

	if s.Image == "" {
		return at(root, "image", "%w", errRequired)
	}
	if !imageRE.MatchString(s.Image) {
		return at(value(root, "image"), "image", "%q is not a valid image name (lowercase letters, digits and separators)", s.Image)
	}

	if s.Org == "" {
		s.Org = DefaultOrg
	} else if !validOrg(s.Org) {
		return at(value(root, "org"), "org", "%q is not a valid organisation", s.Org)
	}

	if s.Tag == "" {
		s.Tag = DefaultTag
	} else if _, err := renderTag(s.Tag, strings.Repeat("0", 40)+"-dirty-"+strings.Repeat("0", tag.ContentLen)); err != nil {
		return at(value(root, "tag"), "tag", "%w", err)
	}

	if s.Dockerfile == "" {
		s.Dockerfile = DefaultDockerfile
	} else if !filepath.IsLocal(s.Dockerfile) {
		return at(value(root, "dockerfile"), "dockerfile", "%q is not a path inside the package folder", s.Dockerfile)
	}

	arches := value(root, "arches")
	for i, a := range s.Arches {
		field := fmt.Sprintf("arches[%d]", i)
		if !knownArch(a) {
			return at(arches.Content[i], field, "unknown architecture %q (want a GOARCH name such as amd64, arm64 or s390x)", a)
		}
		for _, b := range s.Arches[:i] {
			if a == b {
				return at(arches.Content[i], field, "%q listed twice", a)
			}
		}
	}

	excludes := value(root, "extra-sources-exclude")
	for i, x := range s.ExtraSourcesExclude {
		field := fmt.Sprintf("extra-sources-exclude[%d]", i)
		if _, ok := within(s.Dir, ".", x); ok || x == "" {
			return at(excludes.Content[i], field, "%q is in the package folder, which always counts whole (want a path inside an extra source)", x)
		}
		in := false
		for _, e := range s.ExtraSources {
			if _, ok := inside(s.Dir, e.Src, x); ok {
				in = true
			}
		}
		if !in {
			return at(excludes.Content[i], field,
				"%q is not inside an extra source (paths are relative to the package folder, as in extra-sources)", x)
		}
		s.excludeNodes = append(s.excludeNodes, excludes.Content[i])
	}

	if c := resolve(&s.Config); isNull(c) {
		s.Config = yaml.Node{}
	} else {
		s.Config = *c
	}
	if s.Config.Kind != 0 && s.Config.Kind != yaml.MappingNode {
		return at(&s.Config, "config", "expected a mapping, got %s", describe(&s.Config))
	}

	labels := value(root, "labels")
	for i := 0; labels != nil && i+1 < len(labels.Content); i += 2 {
		if labels.Content[i].Value == "" {
			return at(labels.Content[i], "labels", "empty label name")
		}
	}

	di := s.Depends.DockerImages
	diNode := value(value(root, "depends"), "docker-images")
	if di.FromFile != "" && len(di.List) > 0 {
		return at(value(diNode, "from-file"), "depends.docker-images", "from-file and list are mutually exclusive")
	}
	if di.Target != "" && di.TargetDir != "" {
		return at(value(diNode, "target-dir"), "depends.docker-images", "target and target-dir are mutually exclusive")
	}
	for _, f := range []struct{ name, path string }{
		{"from-file", di.FromFile}, {"target", di.Target}, {"target-dir", di.TargetDir},
	} {
		if f.path != "" && !filepath.IsLocal(f.path) {
			return at(value(diNode, f.name), "depends.docker-images."+f.name, "%q is not a path inside the package folder", f.path)
		}
	}
	list := value(diNode, "list")
	for i, ref := range di.List {
		if !digestRE.MatchString(ref) {
			return at(list.Content[i], fmt.Sprintf("depends.docker-images.list[%d]", i), "%q is not pinned by digest (NAME@sha256:...)", ref)
		}
	}
	return nil
}

// resolve returns the node an alias stands for, and any other node as it is.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// value returns the value of key in the mapping n, or nil.
func value(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return resolve(n.Content[i+1])
		}
	}
	return nil
}

// component is a path component of an image name, after the OCI distribution spec.
const component = `[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`

// Patterns (compiled once, never changed).
var (
	yamlLineRE  = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	imageRE     = regexp.MustCompile(`^` + component + `(?:/` + component + `)*$`)
	componentRE = regexp.MustCompile(`^` + component + `$`)
	hostRE      = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?$`)
	tagRE       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRE    = regexp.MustCompile(`^[^@\s]+@sha256:[0-9a-f]{64}$`)
)

// validOrg reports whether org is a valid repository prefix: path components, the first of
// which may be a registry host (it then contains a dot or a colon, or is "localhost").
func validOrg(org string) bool {
	parts := strings.Split(org, "/")
	if first := parts[0]; strings.ContainsAny(first, ".:") || first == "localhost" {
		if !hostRE.MatchString(first) {
			return false
		}
		parts = parts[1:]
	}
	for _, p := range parts {
		if !componentRE.MatchString(p) {
			return false
		}
	}
	return true
}

// knownArch reports whether a is a GOARCH that Linux runs on.
func knownArch(a string) bool {
	switch a {
	case "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle",
		"ppc64", "ppc64le", "riscv64", "s390x":
		return true
	}
	return false
}
