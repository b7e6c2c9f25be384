package pkgbuild

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestBuildContextExtraSources builds the context of a package whose extra source is the whole
// repository it lives in (as system/kiln's is): only what the tag covers is copied, so ignored
// state (bin/, _out/) stays out, and so does what extra-sources-exclude names (docs/), and the
// tag changes with everything that goes in and nothing else.
func TestBuildContextExtraSources(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t, map[string]string{
		".gitignore":           "/bin/\n/_out/\n",
		"go.mod":               "module example.com/root\n",
		"cmd/x/main.go":        "package main\n",
		"cmd/x/old.go":         "package main\n",
		"script.sh":            "#!/bin/sh\n",
		"docs/guide.md":        "guide\n",
		"pkgs/self/build.yml":  "image: self\nextra-sources:\n  - ../..:src\nextra-sources-exclude: [../../docs]\n",
		"pkgs/self/Dockerfile": "FROM scratch\n",
	})
	if err := os.Chmod(r.path("script.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.commit("executable")
	r.write("bin/kiln", "generated\n")        // ignored
	r.write("_out/cache/blob", "generated\n") // ignored
	r.write("notes.txt", "untracked\n")       // untracked, not ignored: in the tag and the context
	if err := os.Chmod(r.path("notes.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(r.path("cmd/x/old.go")); err != nil { // deleted: in neither
		t.Fatal(err)
	}
	if err := os.Symlink("go.mod", r.path("link")); err != nil {
		t.Fatal(err)
	}

	load := func() *Package {
		t.Helper()
		pkgs, err := Load(ctx, []string{r.path("pkgs/self")}, envOf(nil))
		if err != nil {
			t.Fatal(err)
		}
		return pkgs[0]
	}
	p := load()
	dir, cleanup, err := buildContext(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	got := map[string]string{}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			l, err := os.Readlink(path)
			got[filepath.ToSlash(rel)] = "-> " + l
			return err
		}
		got[filepath.ToSlash(rel)] = info.Mode().Perm().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"build.yml":                "-rw-r--r--",
		"Dockerfile":               "-rw-r--r--",
		"src/.gitignore":           "-rw-r--r--",
		"src/go.mod":               "-rw-r--r--",
		"src/cmd/x/main.go":        "-rw-r--r--",
		"src/script.sh":            "-rwxr-xr-x",
		"src/notes.txt":            "-rw-r--r--",
		"src/link":                 "-> go.mod",
		"src/pkgs/self/build.yml":  "-rw-r--r--",
		"src/pkgs/self/Dockerfile": "-rw-r--r--",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("build context holds\n%v\nwant\n%v", got, want)
	}

	// The tag covers the context: ignored files do not change it, anything copied does.
	r.write("bin/kiln", "generated again\n")
	if again := load(); again.Ref != p.Ref {
		t.Errorf("an ignored file changed the tag: %s, then %s", p.Ref, again.Ref)
	}
	r.write("docs/guide.md", "changed\n")
	r.write("docs/new.md", "new\n")
	if again := load(); again.Ref != p.Ref {
		t.Errorf("a change in an excluded folder changed the tag: %s, then %s", p.Ref, again.Ref)
	}
	r.write("cmd/x/main.go", "package main // changed\n")
	if changed := load(); changed.Ref == p.Ref {
		t.Errorf("a change in the extra source left the tag at %s", p.Ref)
	}

	t.Run("nested repository", func(t *testing.T) {
		nested := newRepo(t, map[string]string{"f": "x\n"})
		if err := os.Rename(nested.dir, r.path("nested")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(r.path("nested")) })
		_, _, err := buildContext(ctx, load())
		if err == nil || !strings.Contains(err.Error(), "nested repository") {
			t.Errorf("buildContext error = %v, want one about the nested repository", err)
		}
	})
}
