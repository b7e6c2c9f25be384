package buildyml

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kiln-os/kiln/pkg/tag"
)

func TestMain(m *testing.M) {
	// Keep the user's and the system's git configuration out of the tests.
	os.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	os.Exit(m.Run())
}

const testFile = "pkg/x/build.yml"

var digest = "sha256:" + strings.Repeat("ab", 32)

func TestParseValid(t *testing.T) {
	defaults := func(s Spec) *Spec {
		s.File, s.Dir = testFile, "pkg/x"
		if s.Org == "" {
			s.Org = DefaultOrg
		}
		if s.Tag == "" {
			s.Tag = DefaultTag
		}
		if s.Dockerfile == "" {
			s.Dockerfile = DefaultDockerfile
		}
		return &s
	}
	tests := []struct {
		name   string
		file   string
		want   *Spec
		config string // the config mapping, re-encoded; "" for none
	}{
		{
			name: "minimal",
			file: "image: foo\n",
			want: defaults(Spec{Image: "foo"}),
		},
		{
			name: "every field",
			file: `# A LinuxKit package.
image: init
org: linuxkit
tag: "{{.Hash}}-v1"
dockerfile: build/Dockerfile.kiln
arches:
  - amd64
  - arm64
  - s390x
extra-sources:
  - ../../src/init:/go/src/init/
  - /abs/lib:lib
gitrepo: https://github.com/linuxkit/linuxkit
network: true
disable-cache: yes # YAML 1.1 booleans, as LinuxKit's older parser read them
disable-content-trust: true
config:
  binds:
    - /dev:/dev
  capabilities: [all]
buildArgs:
  - VERSION=1.2
  - EMPTY=
labels:
  org.opencontainers.image.title: init
  count: 3
depends:
  docker-images:
    target-dir: images
    list:
      - docker.io/library/alpine@` + digest + `
`,
			want: defaults(Spec{
				Image:      "init",
				Org:        "linuxkit",
				Tag:        "{{.Hash}}-v1",
				Dockerfile: "build/Dockerfile.kiln",
				Arches:     []string{"amd64", "arm64", "s390x"},
				ExtraSources: []ExtraSource{
					{Src: "../../src/init", Dst: "/go/src/init"},
					{Src: "/abs/lib", Dst: "lib"},
				},
				GitRepo:             "https://github.com/linuxkit/linuxkit",
				Network:             true,
				DisableCache:        true,
				DisableContentTrust: true,
				BuildArgs:           []string{"VERSION=1.2", "EMPTY="},
				Labels:              map[string]string{"org.opencontainers.image.title": "init", "count": "3"},
				Depends: Depends{DockerImages: DockerImages{
					TargetDir: "images",
					List:      []string{"docker.io/library/alpine@" + digest},
				}},
			}),
			config: "binds:\n    - /dev:/dev\ncapabilities: [all]\n",
		},
		{
			name: "null values are unset",
			file: "image: foo\norg:\ntag: ~\ndockerfile:\narches:\nconfig:\ndepends:\n  docker-images:\n",
			want: defaults(Spec{Image: "foo"}),
		},
		{
			name: "empty values take the defaults",
			file: "image: foo\norg: ''\ntag: ''\ndockerfile: ''\n",
			want: defaults(Spec{Image: "foo"}),
		},
		{
			name: "registry host in org, path in image",
			file: "image: tools/go\norg: registry.example.com:5000/team\n",
			want: defaults(Spec{Image: "tools/go", Org: "registry.example.com:5000/team"}),
		},
		{
			name:   "anchors and aliases",
			file:   "image: foo\ngitrepo: &r https://example.com/x\nlabels:\n  source: *r\nconfig: &c {}\n",
			want:   defaults(Spec{Image: "foo", GitRepo: "https://example.com/x", Labels: map[string]string{"source": "https://example.com/x"}}),
			config: "&c {}\n",
		},
		{
			name: "depends from a file into a tar",
			file: "image: foo\ndepends:\n  docker-images:\n    from-file: images.lst\n    target: images.tar\n",
			want: defaults(Spec{Image: "foo", Depends: Depends{DockerImages: DockerImages{FromFile: "images.lst", Target: "images.tar"}}}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(testFile, []byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var config string
			if got.Config.Kind != 0 {
				b, err := yaml.Marshal(&got.Config)
				if err != nil {
					t.Fatal(err)
				}
				config = string(b)
			}
			if config != tt.config {
				t.Errorf("config:\n%s\nwant:\n%s", config, tt.config)
			}
			got.Config = yaml.Node{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse:\n%#v\nwant:\n%#v", got, tt.want)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		file string
		want string
	}{
		{"empty", "", "pkg/x/build.yml: image: required"},
		{"only comments", "# nothing\n", "pkg/x/build.yml: image: required"},
		{"null document", "---\n", "pkg/x/build.yml: image: required"},
		{"syntax", "image: [foo\n", "pkg/x/build.yml:1: did not find expected ',' or ']'"},
		{"tab", "image: a\n\tb: c\n", "pkg/x/build.yml:2: found a tab character that violates indentation"},
		{"duplicate key", "image: a\nimage: b\n", "pkg/x/build.yml:2:1: image: already set at line 1"},
		{"duplicate label", "image: a\nlabels:\n  x: 1\n  x: 2\n", "pkg/x/build.yml:4:3: labels.x: already set at line 3"},
		{"two documents", "image: a\n---\nimage: b\n", "pkg/x/build.yml:2:1: more than one YAML document"},
		{"not a mapping", "- image\n", "pkg/x/build.yml:1:1: expected a mapping, got a list"},
		{"unknown field", "image: foo\nimgae: bar\n", "pkg/x/build.yml:2:1: imgae: unknown field"},
		{"unknown nested field", "image: foo\ndepends:\n  docker-images:\n    target: x.tar\n    lis: []\n",
			"pkg/x/build.yml:5:5: depends.docker-images.lis: unknown field"},
		{"unknown field in flow style", "image: foo\ndepends: {images: []}\n", "pkg/x/build.yml:2:11: depends.images: unknown field"},
		{"key that is not a name", "image: foo\n? [a]\n: b\n", "pkg/x/build.yml:2:3: expected a field name, got a list"},
		{"merge key", "base: &b {image: foo}\n<<: *b\n", "pkg/x/build.yml:1:1: base: unknown field"},
		{"merge key alone", "<<: {image: foo}\n", "pkg/x/build.yml:1:1: merge keys (<<) are not supported"},
		{"image missing", "org: foo\n", "pkg/x/build.yml:1:1: image: required"},
		{"image null", "network: true\nimage:\n", "pkg/x/build.yml:1:1: image: required"},
		{"image not a string", "image: [foo]\n", "pkg/x/build.yml:1:8: image: expected a string, got a list"},
		{"image uppercase", "image: Foo\n", `pkg/x/build.yml:1:8: image: "Foo" is not a valid image name (lowercase letters, digits and separators)`},
		{"image with a tag", "image: foo:1\n", `pkg/x/build.yml:1:8: image: "foo:1" is not a valid image name (lowercase letters, digits and separators)`},
		{"org invalid", "image: foo\norg: -x\n", `pkg/x/build.yml:2:6: org: "-x" is not a valid organisation`},
		{"org bad host", "image: foo\norg: reg.example.com:port/x\n", `pkg/x/build.yml:2:6: org: "reg.example.com:port/x" is not a valid organisation`},
		{"org trailing slash", "image: foo\norg: kiln/\n", `pkg/x/build.yml:2:6: org: "kiln/" is not a valid organisation`},
		{"tag unclosed", "image: foo\ntag: '{{.Hash'\n", "pkg/x/build.yml:2:6: tag: template: tag:1: unclosed action"},
		{"tag unknown key", "image: foo\ntag: '{{.Commit}}'\n",
			`pkg/x/build.yml:2:6: tag: template: tag:1:2: executing "tag" at <.Commit>: can't evaluate field Commit in type buildyml.TagData`},
		{"tag not a tag", "image: foo\ntag: v1/{{.Hash}}\n",
			`pkg/x/build.yml:2:6: tag: template gives "v1/0000000000000000000000000000000000000000-dirty-000000000000", not a valid image tag`},
		{"dockerfile outside", "image: foo\ndockerfile: ../Dockerfile\n", `pkg/x/build.yml:2:13: dockerfile: "../Dockerfile" is not a path inside the package folder`},
		{"dockerfile absolute", "image: foo\ndockerfile: /Dockerfile\n", `pkg/x/build.yml:2:13: dockerfile: "/Dockerfile" is not a path inside the package folder`},
		{"network not a boolean", "image: foo\nnetwork: maybe\n", `pkg/x/build.yml:2:10: network: expected a boolean, got "maybe"`},
		{"disable-cache a list", "image: foo\ndisable-cache: [true]\n", "pkg/x/build.yml:2:16: disable-cache: expected a boolean, got a list"},
		{"arches not a list", "image: foo\narches: amd64\n", `pkg/x/build.yml:2:9: arches: expected a list, got "amd64"`},
		{"arches unknown", "image: foo\narches: [amd64, x86_64]\n",
			`pkg/x/build.yml:2:17: arches[1]: unknown architecture "x86_64" (want a GOARCH name such as amd64, arm64 or s390x)`},
		{"arches twice", "image: foo\narches:\n  - arm64\n  - arm64\n", `pkg/x/build.yml:4:5: arches[1]: "arm64" listed twice`},
		{"arches null element", "image: foo\narches: [amd64, ~]\n", "pkg/x/build.yml:2:17: arches[1]: expected a string, got null"},
		{"extra source without destination", "image: foo\nextra-sources:\n  - ../src\n", `pkg/x/build.yml:3:5: extra-sources[0]: "../src" is not SRC:DST`},
		{"extra source with two colons", "image: foo\nextra-sources: ['a:b:c']\n", `pkg/x/build.yml:2:17: extra-sources[0]: "a:b:c" is not SRC:DST`},
		{"extra source empty side", "image: foo\nextra-sources: [':b']\n", `pkg/x/build.yml:2:17: extra-sources[0]: ":b" is not SRC:DST`},
		{"extra source a mapping", "image: foo\nextra-sources:\n  - src: a\n", "pkg/x/build.yml:3:5: extra-sources[0]: expected a string, got a mapping"},
		{"exclude outside the extra sources", "image: foo\nextra-sources: ['../src:src']\nextra-sources-exclude:\n  - ../src/docs\n  - ../other/docs\n",
			`pkg/x/build.yml:5:5: extra-sources-exclude[1]: "../other/docs" is not inside an extra source (paths are relative to the package folder, as in extra-sources)`},
		{"exclude a whole extra source", "image: foo\nextra-sources: ['../src:src']\nextra-sources-exclude: [../src]\n",
			`pkg/x/build.yml:3:25: extra-sources-exclude[0]: "../src" is not inside an extra source (paths are relative to the package folder, as in extra-sources)`},
		{"exclude in the package folder", "image: foo\nextra-sources: ['..:src']\nextra-sources-exclude: [Dockerfile]\n",
			`pkg/x/build.yml:3:25: extra-sources-exclude[0]: "Dockerfile" is in the package folder, which always counts whole (want a path inside an extra source)`},
		{"exclude the package folder", "image: foo\nextra-sources: ['..:src']\nextra-sources-exclude: [../x/]\n",
			`pkg/x/build.yml:3:25: extra-sources-exclude[0]: "../x/" is in the package folder, which always counts whole (want a path inside an extra source)`},
		{"exclude empty", "image: foo\nextra-sources: ['..:src']\nextra-sources-exclude: ['']\n",
			`pkg/x/build.yml:3:25: extra-sources-exclude[0]: "" is in the package folder, which always counts whole (want a path inside an extra source)`},
		{"exclude without extra sources", "image: foo\nextra-sources-exclude: [../y]\n",
			`pkg/x/build.yml:2:25: extra-sources-exclude[0]: "../y" is not inside an extra source (paths are relative to the package folder, as in extra-sources)`},
		{"exclude not a list", "image: foo\nextra-sources-exclude: x\n", `pkg/x/build.yml:2:24: extra-sources-exclude: expected a list, got "x"`},
		{"config a list", "image: foo\nconfig: [binds]\n", "pkg/x/build.yml:2:9: config: expected a mapping, got a list"},
		{"config a string", "image: foo\nconfig: binds\n", `pkg/x/build.yml:2:9: config: expected a mapping, got "binds"`},
		{"buildArgs a string", "image: foo\nbuildArgs: A=1\n", `pkg/x/build.yml:2:12: buildArgs: expected a list, got "A=1"`},
		{"label a mapping", "image: foo\nlabels:\n  a:\n    b: c\n", "pkg/x/build.yml:4:5: labels.a: expected a string, got a mapping"},
		{"label null", "image: foo\nlabels:\n  a:\n", "pkg/x/build.yml:3:5: labels.a: expected a string, got null"},
		{"label empty name", "image: foo\nlabels: {'': x}\n", "pkg/x/build.yml:2:10: labels: empty label name"},
		{"depends list and from-file", "image: foo\ndepends:\n  docker-images:\n    list: [a@" + digest + "]\n    from-file: x\n",
			"pkg/x/build.yml:5:16: depends.docker-images: from-file and list are mutually exclusive"},
		{"depends target and target-dir", "image: foo\ndepends:\n  docker-images:\n    target: x.tar\n    target-dir: x\n",
			"pkg/x/build.yml:5:17: depends.docker-images: target and target-dir are mutually exclusive"},
		{"depends image without digest", "image: foo\ndepends:\n  docker-images:\n    list:\n      - alpine:3.20\n",
			`pkg/x/build.yml:5:9: depends.docker-images.list[0]: "alpine:3.20" is not pinned by digest (NAME@sha256:...)`},
		{"depends target outside", "image: foo\ndepends:\n  docker-images:\n    target: ../x.tar\n",
			`pkg/x/build.yml:4:13: depends.docker-images.target: "../x.tar" is not a path inside the package folder`},
		{"depends not a mapping", "image: foo\ndepends: [x]\n", "pkg/x/build.yml:2:10: depends: expected a mapping, got a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(testFile, []byte(tt.file))
			if err == nil {
				t.Fatalf("Parse = %+v, want error %q", got, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != testFile {
				t.Errorf("error %#v is not an *Error for %s", err, testFile)
			}
		})
	}
}

func TestErrorIs(t *testing.T) {
	_, err := Parse(testFile, []byte("image: foo\nnetwrok: true\n"))
	var e *Error
	if !errors.Is(err, ErrUnknownField) || !errors.As(err, &e) {
		t.Fatalf("error %v: want an *Error wrapping ErrUnknownField", err)
	}
	want := Error{File: testFile, Line: 2, Column: 1, Path: "netwrok", Err: ErrUnknownField}
	if *e != want {
		t.Errorf("error = %#v, want %#v", *e, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("image: foo\nnetwork: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if want := filepath.Join(dir, FileName) + `:2:10: network: expected a boolean, got "3"`; err == nil || err.Error() != want {
		t.Errorf("Load error = %v, want %s", err, want)
	}

	if _, err := Load(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a folder without build.yml: error %v, want fs.ErrNotExist", err)
	}
}

func TestImageRef(t *testing.T) {
	clean := tag.Tag{Hash: strings.Repeat("1", 40)}
	dirty := tag.Tag{Hash: strings.Repeat("1", 40), Dirty: true, Content: "abcdefabcdef"}
	tests := []struct {
		file string
		tag  tag.Tag
		want string
	}{
		{"image: foo\n", clean, "kiln/foo:" + clean.Hash},
		{"image: foo\n", dirty, "kiln/foo:" + clean.Hash + "-dirty-abcdefabcdef"},
		{"image: foo\norg: linuxkit\n", clean, "linuxkit/foo:" + clean.Hash},
		{"image: a/b\norg: example.com:5000/t\ntag: '{{.Hash}}-amd64'\n", clean, "example.com:5000/t/a/b:" + clean.Hash + "-amd64"},
		{"image: foo\ntag: v1.0\n", dirty, "kiln/foo:v1.0"},
	}
	for _, tt := range tests {
		s, err := Parse(testFile, []byte(tt.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.ImageRef(tt.tag)
		if err != nil || got != tt.want {
			t.Errorf("%q: ImageRef(%s) = %q, %v; want %q", tt.file, tt.tag, got, err, tt.want)
		}
	}

	// A Spec made by hand is checked when used.
	s := &Spec{File: testFile, Org: "kiln", Image: "foo", Tag: "{{.Hash}}:x"}
	want := `buildyml: pkg/x/build.yml: tag: template gives "` + clean.Hash + `:x", not a valid image tag`
	if _, err := s.ImageRef(clean); err == nil || err.Error() != want {
		t.Errorf("ImageRef error = %v, want %s", err, want)
	}
}

// git runs git in dir with fixed identities and dates.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com", "GIT_AUTHOR_DATE=2024-01-02T03:04:05Z",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com", "GIT_COMMITTER_DATE=2024-01-02T03:04:05Z",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, contents := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(contents), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRef(t *testing.T) {
	repo := t.TempDir()
	git(t, repo, "init", "-q")
	writeFiles(t, repo, map[string]string{
		"pkg/plain/build.yml":   "image: plain\n",
		"pkg/plain/Dockerfile":  "FROM scratch\n",
		"pkg/custom/build.yml":  "image: custom\norg: example.com/team\ntag: '{{.Hash}}-v2'\n",
		"pkg/custom/Dockerfile": "FROM scratch\n",
		"pkg/extra/build.yml":   "image: extra\nextra-sources:\n  - ../../src:/src\n",
		"pkg/extra/Dockerfile":  "FROM scratch\nCOPY /src /src\n",
		"pkg/bad/build.yml":     "image: bad\nnetwork: sometimes\n",
		"pkg/typo/build.yml":    "image: typo\nextra-sources:\n  - ../../src:/src\nextra-sources-exclude:\n  - ../../src/docs\n  - ../../src/doc\n",
		"src/main.go":           "package main\n",
		"src/docs/guide.md":     "guide\n",
	})
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "packages")
	tree := func(p string) string { return git(t, repo, "rev-parse", "HEAD:"+p) }
	combined := sha1.Sum([]byte(tree("pkg/extra") + tree("src")))

	ctx := context.Background()
	tests := []struct {
		dir  string
		want string
	}{
		{"pkg/plain", "kiln/plain:" + tree("pkg/plain")},
		{"pkg/custom", "example.com/team/custom:" + tree("pkg/custom") + "-v2"},
		{"pkg/extra", "kiln/extra:" + hex.EncodeToString(combined[:])},
	}
	for _, tt := range tests {
		got, err := Ref(ctx, filepath.Join(repo, tt.dir))
		if err != nil || got != tt.want {
			t.Errorf("Ref(%s) = %q, %v; want %q", tt.dir, got, err, tt.want)
		}
	}

	t.Run("dirty", func(t *testing.T) {
		writeFiles(t, repo, map[string]string{"src/main.go": "package main // changed\n"})
		got, err := Ref(ctx, filepath.Join(repo, "pkg/extra"))
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(`^kiln/extra:` + hex.EncodeToString(combined[:]) + `-dirty-[0-9a-f]{12}$`)
		if !re.MatchString(got) {
			t.Errorf("Ref = %q, want a match for %s", got, re)
		}
		if plain, err := Ref(ctx, filepath.Join(repo, "pkg/plain")); err != nil || plain != tests[0].want {
			t.Errorf("Ref(pkg/plain) = %q, %v; want %q", plain, err, tests[0].want)
		}
	})

	t.Run("invalid build.yml", func(t *testing.T) {
		_, err := Ref(ctx, filepath.Join(repo, "pkg/bad"))
		want := filepath.Join(repo, "pkg/bad", FileName) + `:2:10: network: expected a boolean, got "sometimes"`
		if err == nil || err.Error() != want {
			t.Errorf("Ref error = %v, want %s", err, want)
		}
	})

	t.Run("excluded path that names nothing", func(t *testing.T) {
		_, err := Ref(ctx, filepath.Join(repo, "pkg/typo"))
		want := filepath.Join(repo, "pkg/typo", FileName) + `:6:5: extra-sources-exclude[1]: "../../src/doc" names nothing git records (in the work tree or in HEAD)`
		if err == nil || err.Error() != want || !errors.Is(err, tag.ErrExcludeMissing) {
			t.Errorf("Ref error = %v, want %s", err, want)
		}
	})

	t.Run("not in git", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{FileName: "image: foo\n"})
		if _, err := Ref(ctx, dir); !errors.Is(err, tag.ErrNotRepository) {
			t.Errorf("Ref error = %v, want tag.ErrNotRepository", err)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"image: foo\n",
		"image: foo\norg: a.b:1/c\ntag: '{{.Hash}}-x'\narches: [amd64]\nextra-sources: ['a:/b']\n",
		"image: foo\nconfig: {binds: [a]}\nlabels: {a: b}\ndepends: {docker-images: {list: [a]}}\n",
		"a: &x [1]\nb: *x\n",
		"- x\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(testFile, data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !strings.HasPrefix(err.Error(), testFile) {
				t.Fatalf("error %q is not an *Error naming the file", err)
			}
			return
		}
		if s.Image == "" || s.Org == "" || s.Tag == "" || s.Dockerfile == "" {
			t.Fatalf("Parse accepted %q with empty required values: %+v", data, s)
		}
		if _, err := s.ImageRef(tag.Tag{Hash: strings.Repeat("f", 40)}); err != nil {
			t.Fatalf("Parse accepted %q but ImageRef fails: %v", data, err)
		}
	})
}

func TestSources(t *testing.T) {
	s, err := Parse("pkg/x/build.yml", []byte("image: foo\nextra-sources:\n  - ../..:src\n  - ../../lib:lib\n  - /abs:abs\n"+
		"extra-sources-exclude:\n  - ../../docs\n  - ../../lib/testdata/\n  - /abs/big\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(s.Sources())
	want := "[{../.. [docs lib/testdata]} {../../lib [testdata]} {/abs [big]}]"
	if got != want {
		t.Errorf("Sources = %s, want %s", got, want)
	}
}
