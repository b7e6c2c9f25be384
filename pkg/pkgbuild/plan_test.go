package pkgbuild

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/pkg/buildyml"
)

func TestOrder(t *testing.T) {
	// Folders outside the working directory, so display leaves them as they are.
	pkg := func(dir string, needs ...string) *Package {
		for i, n := range needs {
			needs[i] = "/r/" + n
		}
		return &Package{Dir: "/r/" + dir, Needs: needs}
	}
	tests := []struct {
		name    string
		pkgs    []*Package
		want    []string
		wantErr string
	}{
		{
			name: "a dependency given last is built first",
			pkgs: []*Package{pkg("b", "a"), pkg("a")},
			want: []string{"a", "b"},
		},
		{
			name: "independent packages keep their order",
			pkgs: []*Package{pkg("c"), pkg("a"), pkg("d"), pkg("b")},
			want: []string{"c", "a", "d", "b"},
		},
		{
			name: "a chain",
			pkgs: []*Package{pkg("c", "b"), pkg("b", "a"), pkg("a")},
			want: []string{"a", "b", "c"},
		},
		{
			name: "a diamond keeps the given order where it can",
			pkgs: []*Package{pkg("top", "left", "right"), pkg("right", "base"), pkg("left", "base"), pkg("base"), pkg("other")},
			want: []string{"base", "left", "right", "top", "other"},
		},
		{
			name: "a need outside the set is ignored",
			pkgs: []*Package{pkg("b", "elsewhere"), pkg("a")},
			want: []string{"b", "a"},
		},
		{
			name:    "a cycle is named",
			pkgs:    []*Package{pkg("x"), pkg("a", "b"), pkg("b", "c"), pkg("c", "a")},
			wantErr: "packages depend on each other in a cycle: /r/a -> /r/b -> /r/c -> /r/a",
		},
		{
			name:    "a cycle entered from outside names only the cycle",
			pkgs:    []*Package{pkg("top", "a"), pkg("a", "b"), pkg("b", "a")},
			wantErr: "cycle: /r/a -> /r/b -> /r/a",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := order(tc.pkgs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("order() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("order(): %v", err)
			}
			var dirs []string
			for _, p := range got {
				dirs = append(dirs, strings.TrimPrefix(p.Dir, "/r/"))
			}
			if !reflect.DeepEqual(dirs, tc.want) {
				t.Errorf("order() = %v, want %v", dirs, tc.want)
			}
		})
	}
}

func TestLoadExpandsPkgRefs(t *testing.T) {
	r := newRepo(t, map[string]string{
		"pkgs/a/build.yml":  "image: a\n",
		"pkgs/a/Dockerfile": "FROM scratch\nCOPY a /a\n",
		"pkgs/a/a":          "a\n",
		"pkgs/c/build.yml":  "image: c\norg: example.com/team\n",
		"pkgs/c/Dockerfile": "FROM scratch\n",
		"pkgs/b/build.yml": `image: b
buildArgs:
  - BASE=@pkg:../a
  - TOOLS=@pkg:../c,@pkg:../a
  - FROM_ENV
  - EMPTY=
`,
		"pkgs/b/Dockerfile": "ARG BASE\nFROM @pkg:../a AS build\nFROM \"@pkg:../c\"\nCOPY --from=@pkg:./../a /a /a\n",
	})
	refA := r.treeRef("kiln", "a", "pkgs/a")
	refC := r.treeRef("example.com/team", "c", "pkgs/c")
	refB := r.treeRef("kiln", "b", "pkgs/b")

	pkgs, err := Load(context.Background(), []string{r.path("pkgs/b"), r.path("pkgs/a")}, envOf(map[string]string{"FROM_ENV": "from the environment"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 2 || pkgs[0].Ref != refA || pkgs[1].Ref != refB {
		t.Fatalf("Load() gave %v, want [%s %s] in that order", refsOf(pkgs), refA, refB)
	}
	b := pkgs[1]
	wantDF := "ARG BASE\nFROM " + refA + " AS build\nFROM \"" + refC + "\"\nCOPY --from=" + refA + " /a /a\n"
	if string(b.Dockerfile) != wantDF {
		t.Errorf("Dockerfile =\n%s\nwant\n%s", b.Dockerfile, wantDF)
	}
	wantArgs := map[string]string{
		"BASE":     refA,
		"TOOLS":    refC + "," + refA,
		"FROM_ENV": "from the environment",
		"EMPTY":    "",
	}
	if !reflect.DeepEqual(b.BuildArgs, wantArgs) {
		t.Errorf("BuildArgs = %v, want %v", b.BuildArgs, wantArgs)
	}
	wantNeeds := []string{r.path("pkgs/a"), r.path("pkgs/c")}
	if !reflect.DeepEqual(b.Needs, wantNeeds) {
		t.Errorf("Needs = %v, want %v", b.Needs, wantNeeds)
	}
	if b.Dir != r.path("pkgs/b") || b.DockerfilePath != r.path("pkgs/b/Dockerfile") {
		t.Errorf("Dir, DockerfilePath = %s, %s", b.Dir, b.DockerfilePath)
	}
	if a := pkgs[0]; len(a.Needs) != 0 || string(a.Dockerfile) != "FROM scratch\nCOPY a /a\n" || a.ConfigLabel != "" {
		t.Errorf("a: Needs %v, Dockerfile %q, ConfigLabel %q; want no needs, the file unchanged, no label", a.Needs, a.Dockerfile, a.ConfigLabel)
	}

	// The same folder named twice (once through a relative path) is loaded once.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, r.path("pkgs/a"))
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err = Load(context.Background(), []string{r.path("pkgs/a"), rel + "/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 1 {
		t.Errorf("Load() of one folder named twice gave %v, want one package", refsOf(pkgs))
	}
}

func refsOf(pkgs []*Package) []string {
	var s []string
	for _, p := range pkgs {
		s = append(s, p.Ref)
	}
	return s
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		dir   string // the folder to load, "p" unless set
		env   map[string]string
		want  []string // substrings of the error
	}{
		{
			name: "invalid build.yml",
			files: map[string]string{
				"p/build.yml":  "image: p\nunknown: 1\n",
				"p/Dockerfile": "FROM scratch\n",
			},
			want: []string{"build.yml:2"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t, tc.files)
			dir := tc.dir
			if dir == "" {
				dir = "p"
			}
			_, err := Load(context.Background(), []string{r.path(dir)}, envOf(tc.env))
			if err == nil {
				t.Fatal("Load() succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load() error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := Load(context.Background(), nil, nil); err == nil || !strings.Contains(err.Error(), "no package folders") {
		t.Errorf("Load(nil) error = %v, want \"no package folders given\"", err)
	}
}

func TestLoadRefusesSyntaxDirective(t *testing.T) {
	tests := []struct {
		name     string
		df       string
		wantLine string // "" when the file must be accepted
	}{
		{"usual form", "# syntax=docker/dockerfile:1\nFROM scratch\n", "Dockerfile:1:"},
		{"no space", "#syntax=docker/dockerfile:1\nFROM scratch\n", "Dockerfile:1:"},
		{"spaces and capitals", "#  Syntax = docker/dockerfile:1\nFROM scratch\n", "Dockerfile:1:"},
		{"after another directive", "# escape=`\n# syntax=example/frontend\nFROM scratch\n", "Dockerfile:2:"},
		{"after a shebang", "#!/usr/bin/env buildctl\n# syntax=example/frontend\nFROM scratch\n", "Dockerfile:2:"},
		{"a comment after an instruction is no directive", "FROM scratch\n# syntax=docker/dockerfile:1\n", ""},
		{"a comment before is no directive either", "# hello\n# syntax=docker/dockerfile:1\nFROM scratch\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t, map[string]string{"p/build.yml": "image: p\n", "p/Dockerfile": tc.df})
			_, err := Load(context.Background(), []string{r.path("p")}, envOf(nil))
			if tc.wantLine == "" {
				if err != nil {
					t.Fatalf("Load(): %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantLine) || !strings.Contains(err.Error(), "pull a frontend image") {
				t.Fatalf("Load() error = %v, want a refusal at %s", err, tc.wantLine)
			}
		})
	}
}

func TestConfigLabel(t *testing.T) {
	tests := []struct {
		name    string
		yml     string
		want    map[string]any // the label decoded; nil for no label
		wantErr string
	}{
		{
			name: "no config",
			yml:  "image: p\n",
		},
		{
			name: "valid config",
			yml: `image: p
config:
  binds:
    - /dev:/dev
  capabilities: [CAP_NET_ADMIN, CAP_SYS_ADMIN]
  readonly: true
  sysctl:
    net.ipv4.ip_forward: "1"
`,
			want: map[string]any{
				"binds":        []any{"/dev:/dev"},
				"capabilities": []any{"CAP_NET_ADMIN", "CAP_SYS_ADMIN"},
				"readonly":     true,
				"sysctl":       map[string]any{"net.ipv4.ip_forward": "1"},
			},
		},
		{
			name:    "unknown field",
			yml:     "image: p\n\nconfig:\n  binds: [/a:/a]\n  capabilitees: [CAP_NET_ADMIN]\n",
			wantErr: "build.yml:4: config:",
		},
		{
			name:    "value of the wrong kind",
			yml:     "image: p\nconfig:\n  readonly: [x]\n",
			wantErr: "build.yml:3: config:",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t, map[string]string{"p/build.yml": tc.yml, "p/Dockerfile": "FROM scratch\n"})
			pkgs, err := Load(context.Background(), []string{r.path("p")}, envOf(nil))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			label := pkgs[0].ConfigLabel
			if tc.want == nil {
				if label != "" {
					t.Errorf("ConfigLabel = %q, want none", label)
				}
				return
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(label), &got); err != nil {
				t.Fatalf("ConfigLabel %q is not JSON: %v", label, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ConfigLabel = %s, want %v", label, tc.want)
			}
		})
	}
}

func TestPlatforms(t *testing.T) {
	host := []string{"linux/amd64"}
	tests := []struct {
		name    string
		arches  []string
		want    []string
		def     []string
		out     []string
		wantErr string
	}{
		{name: "arches, sorted and normalized", arches: []string{"s390x", "amd64", "arm64"}, def: host, out: []string{"linux/amd64", "linux/arm64", "linux/s390x"}},
		{name: "arm gets its variant", arches: []string{"arm"}, out: []string{"linux/arm/v7"}},
		{name: "no arches: the default", def: []string{"linux/arm64"}, out: []string{"linux/arm64"}},
		{name: "no arches, no default: nothing", out: nil},
		{name: "asked platforms filtered by arches", arches: []string{"amd64", "arm64"}, want: []string{"linux/s390x", "linux/arm64"}, def: host, out: []string{"linux/arm64"}},
		{name: "asked platforms normalized and deduplicated", arches: []string{"arm64"}, want: []string{"linux/arm64/v8", "linux/aarch64", "linux/arm64"}, out: []string{"linux/arm64"}},
		{name: "asked platforms without arches", want: []string{"linux/s390x", "linux/amd64"}, def: host, out: []string{"linux/amd64", "linux/s390x"}},
		{name: "none of the asked platforms", arches: []string{"amd64"}, want: []string{"linux/s390x"}, wantErr: "arches [amd64] include none of the platforms asked for (linux/s390x)"},
		{name: "bad platform", want: []string{"linux/amd64/x/y"}, wantErr: `platform "linux/amd64/x/y"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Package{Spec: &buildyml.Spec{File: "p/build.yml", Arches: tc.arches}}
			got, err := p.Platforms(tc.want, tc.def)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Platforms() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.out) {
				t.Errorf("Platforms(%v, %v) = %v, want %v", tc.want, tc.def, got, tc.out)
			}
		})
	}
}

func TestArchTag(t *testing.T) {
	tests := []struct {
		platform, want string
	}{
		{"linux/amd64", "kiln/a:1-amd64"},
		{"linux/arm64", "kiln/a:1-arm64"},
		{"linux/arm/v7", "kiln/a:1-arm-v7"},
		{"linux/s390x", "kiln/a:1-s390x"},
	}
	for _, tc := range tests {
		got, err := ArchTag("kiln/a:1", tc.platform)
		if err != nil || got != tc.want {
			t.Errorf("ArchTag(kiln/a:1, %s) = %q, %v; want %q", tc.platform, got, err, tc.want)
		}
	}
	if _, err := ArchTag("kiln/a:1", "linux/amd64/x/y"); err == nil {
		t.Error("ArchTag with a bad platform succeeded")
	}
}

// TestLoadAddsDependencies checks that Build's loading adds the packages that "@pkg:" names
// but that were not given, transitively, marked as dependencies and ordered first.
func TestLoadAddsDependencies(t *testing.T) {
	r := newRepo(t, map[string]string{
		"pkgs/a/build.yml":  "image: a\n",
		"pkgs/a/Dockerfile": "FROM scratch\n",
		"pkgs/b/build.yml":  "image: b\n",
		"pkgs/b/Dockerfile": "FROM @pkg:../a\n",
		"pkgs/c/build.yml":  "image: c\n",
		"pkgs/c/Dockerfile": "FROM @pkg:../b\n",
		"pkgs/d/build.yml":  "image: d\n",
		"pkgs/d/Dockerfile": "FROM @pkg:../missing\n",
	})
	pkgs, err := load(context.Background(), []string{r.path("pkgs/c")}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{r.treeRef("kiln", "a", "pkgs/a"), r.treeRef("kiln", "b", "pkgs/b"), r.treeRef("kiln", "c", "pkgs/c")}
	if got := refsOf(pkgs); !reflect.DeepEqual(got, want) {
		t.Fatalf("load() = %v, want %v", got, want)
	}
	if !pkgs[0].Dependency || !pkgs[1].Dependency || pkgs[2].Dependency {
		t.Errorf("Dependency flags = %v %v %v, want true true false", pkgs[0].Dependency, pkgs[1].Dependency, pkgs[2].Dependency)
	}
	// Load (show-tag) keeps to the folders given.
	if pkgs, err := Load(context.Background(), []string{r.path("pkgs/c")}, nil); err != nil || len(pkgs) != 1 {
		t.Errorf("Load() = %v, %v; want only c", refsOf(pkgs), err)
	}
	if _, err := load(context.Background(), []string{r.path("pkgs/d")}, nil, true); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a @pkg: to a missing folder: err = %v, want one naming it", err)
	}
}

// TestMissingBuildArgFailsOnlyTheBuild checks that a bare build argument the environment lacks
// does not stop the package from loading (a cached package needs no arguments) but fails its
// build, before any builder is contacted, with a message that says what to do.
func TestMissingBuildArgFailsOnlyTheBuild(t *testing.T) {
	r := newRepo(t, map[string]string{
		"p/build.yml":  "image: p\nbuildArgs:\n  - A=1\n  - TOKEN\n",
		"p/Dockerfile": "FROM scratch\n",
	})
	pkgs, err := Load(context.Background(), []string{r.path("p")}, envOf(map[string]string{"OTHER": "x"}))
	if err != nil {
		t.Fatalf("Load() = %v, want no error", err)
	}
	_, err = buildPlatforms(context.Background(), pkgs[0], []string{"linux/amd64"}, Options{})
	if err == nil {
		t.Fatal("buildPlatforms() succeeded, want an error")
	}
	for _, w := range []string{"build.yml: buildArgs[1]", `"TOKEN" takes its value from the environment`, "TOKEN is not set", "TOKEN=VALUE"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}
