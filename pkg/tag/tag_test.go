package tag

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	// Keep the user's and the system's git configuration out of the tests, for the test
	// helpers and for the code under test alike.
	os.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	os.Exit(m.Run())
}

// testRepo is a temporary git repository.
type testRepo struct {
	t   *testing.T
	dir string
}

// newRepo makes a repository holding files (path: contents) in one commit.
func newRepo(t *testing.T, files map[string]string) *testRepo {
	t.Helper()
	r := &testRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	for name, contents := range files {
		r.write(name, contents)
	}
	r.commitAll("initial")
	return r
}

// baseFiles is the content of most test repositories: the package pkg/a, another package
// pkg/b and a file at the top.
func baseFiles() map[string]string {
	return map[string]string{
		"README":              "top\n",
		"pkg/a/build.yml":     "image: a\n",
		"pkg/a/Dockerfile":    "FROM scratch\n",
		"pkg/a/sub/file":      "x\n",
		"pkg/a/.gitignore":    "*.log\n",
		"pkg/b/build.yml":     "image: b\n",
		"pkg/b/Dockerfile":    "FROM scratch\n",
		"pkg/b/more/contents": "y\n",
	}
}

func (r *testRepo) path(name string) string {
	return filepath.Join(r.dir, filepath.FromSlash(name))
}

func (r *testRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", r.dir}, args...)...)
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_AUTHOR_DATE=2024-01-02T03:04:05Z",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_COMMITTER_DATE=2024-01-02T03:04:05Z",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		r.t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func (r *testRepo) write(name, contents string) {
	r.t.Helper()
	p := r.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(contents), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *testRepo) remove(name string) {
	r.t.Helper()
	if err := os.RemoveAll(r.path(name)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *testRepo) chmod(name string, mode fs.FileMode) {
	r.t.Helper()
	if err := os.Chmod(r.path(name), mode); err != nil {
		r.t.Fatal(err)
	}
}

func (r *testRepo) commitAll(msg string) {
	r.t.Helper()
	r.git("add", "-A")
	r.git("commit", "-q", "--allow-empty", "-m", msg)
}

// treeAtHead is `git rev-parse HEAD:<name>`.
func (r *testRepo) treeAtHead(name string) string {
	r.t.Helper()
	return r.git("rev-parse", "HEAD:"+name)
}

// objects lists the files of the repository's object directory.
func (r *testRepo) objects() string {
	r.t.Helper()
	var names []string
	err := filepath.WalkDir(r.path(".git/objects"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, strings.TrimPrefix(p, r.dir))
		}
		return err
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return strings.Join(names, " ")
}

func (r *testRepo) readFile(name string) []byte {
	r.t.Helper()
	b, err := os.ReadFile(r.path(name))
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

func mustOf(t *testing.T, dir string, extra ...string) Tag {
	t.Helper()
	got, err := Of(context.Background(), dir, extra...)
	if err != nil {
		t.Fatalf("Of(%s, %v): %v", dir, extra, err)
	}
	return got
}

func TestString(t *testing.T) {
	tests := []struct {
		tag  Tag
		want string
	}{
		{Tag{Hash: "abc"}, "abc"},
		{Tag{Hash: "abc", Dirty: true, Content: "0123456789ab"}, "abc-dirty-0123456789ab"},
	}
	for _, tt := range tests {
		if got := tt.tag.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.tag, got, tt.want)
		}
	}
}

func TestOfWorkingState(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *testRepo)
		dirty  bool
	}{
		{"clean", func(r *testRepo) {}, false},
		{"modified", func(r *testRepo) { r.write("pkg/a/Dockerfile", "FROM scratch\nCOPY . /\n") }, true},
		{"modified and staged", func(r *testRepo) {
			r.write("pkg/a/Dockerfile", "FROM scratch\nCOPY . /\n")
			r.git("add", "pkg/a/Dockerfile")
		}, true},
		{"deleted", func(r *testRepo) { r.remove("pkg/a/sub/file") }, true},
		{"deleted folder", func(r *testRepo) { r.remove("pkg/a/sub") }, true},
		{"untracked", func(r *testRepo) { r.write("pkg/a/new", "n\n") }, true},
		{"untracked in a new folder", func(r *testRepo) { r.write("pkg/a/d/e/new", "n\n") }, true},
		{"staged new file", func(r *testRepo) {
			r.write("pkg/a/new", "n\n")
			r.git("add", "pkg/a/new")
		}, true},
		{"executable bit", func(r *testRepo) { r.chmod("pkg/a/sub/file", 0o755) }, true},
		{"other permission bits", func(r *testRepo) { r.chmod("pkg/a/sub/file", 0o600) }, false},
		{"symlink", func(r *testRepo) {
			if err := os.Symlink("sub/file", r.path("pkg/a/link")); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"ignored by the folder's .gitignore", func(r *testRepo) { r.write("pkg/a/build.log", "l\n") }, false},
		{"ignored by .git/info/exclude", func(r *testRepo) {
			r.write(".git/info/exclude", "scratch/\n")
			r.write("pkg/a/scratch/x", "x\n")
		}, false},
		{"tracked file matching .gitignore", func(r *testRepo) {
			r.write("pkg/a/kept.log", "1\n")
			r.git("add", "-f", "pkg/a/kept.log")
			r.git("commit", "-q", "-m", "kept")
			r.write("pkg/a/kept.log", "2\n")
		}, true},
		{"staged new file matching .gitignore", func(r *testRepo) {
			r.write("pkg/a/forced.log", "f\n")
			r.git("add", "-f", "pkg/a/forced.log")
		}, true},
		{"empty folder", func(r *testRepo) {
			if err := os.Mkdir(r.path("pkg/a/empty"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"changes outside the folder", func(r *testRepo) {
			r.write("README", "changed\n")
			r.write("pkg/b/Dockerfile", "changed\n")
			r.write("pkg/new", "n\n")
		}, false},
		{"modification reverted", func(r *testRepo) {
			orig := r.readFile("pkg/a/Dockerfile")
			r.write("pkg/a/Dockerfile", "other\n")
			r.write("pkg/a/Dockerfile", string(orig))
		}, false},
		{"untracked file removed", func(r *testRepo) {
			r.write("pkg/a/new", "n\n")
			r.remove("pkg/a/new")
		}, false},
		{"staged change reverted in the work tree", func(r *testRepo) {
			orig := r.readFile("pkg/a/Dockerfile")
			r.write("pkg/a/Dockerfile", "other\n")
			r.git("add", "pkg/a/Dockerfile")
			r.write("pkg/a/Dockerfile", string(orig))
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRepo(t, baseFiles())
			tt.change(r)
			headTree := r.treeAtHead("pkg/a")

			// git status may refresh the index: run it before reading the index.
			statusBefore := r.git("status", "--porcelain=v1", "-uall", "--ignored")
			indexBefore := r.readFile(".git/index")
			objectsBefore := r.objects()
			got := mustOf(t, r.path("pkg/a"))
			if !bytes.Equal(r.readFile(".git/index"), indexBefore) {
				t.Error("Of changed the repository's index")
			}
			if objects := r.objects(); objects != objectsBefore {
				t.Errorf("Of wrote objects into the repository: %s, before %s", objects, objectsBefore)
			}
			if s := r.git("status", "--porcelain=v1", "-uall", "--ignored"); s != statusBefore {
				t.Errorf("Of changed git status:\n%s\nwant:\n%s", s, statusBefore)
			}

			if got.Hash != headTree {
				t.Errorf("Hash = %s, want git rev-parse HEAD:pkg/a = %s", got.Hash, headTree)
			}
			if got.Dirty != tt.dirty {
				t.Fatalf("Dirty = %v, want %v (tag %s)", got.Dirty, tt.dirty, got)
			}
			if !tt.dirty {
				if got.Content != "" || got.String() != headTree {
					t.Errorf("clean tag = %#v, String %s, want %s", got, got, headTree)
				}
				return
			}
			// The content hash is a prefix of the tree the folder has once committed.
			r.git("add", "-A", "pkg/a")
			r.git("commit", "-q", "-m", "commit the change")
			committed := r.treeAtHead("pkg/a")
			if want := headTree + "-dirty-" + committed[:ContentLen]; got.String() != want {
				t.Errorf("tag = %s, want %s", got, want)
			}
			if again := mustOf(t, r.path("pkg/a")); again.String() != committed {
				t.Errorf("after commit: tag = %s, want %s", again, committed)
			}
		})
	}
}

func TestOfSameContentSameTag(t *testing.T) {
	// Two repositories with different histories but the same package content.
	r1 := newRepo(t, baseFiles())
	r2 := newRepo(t, map[string]string{"unrelated": "u\n"})
	for name, contents := range baseFiles() {
		r2.write(name, contents)
	}
	r2.write("README", "another top\n")
	r2.commitAll("second")
	if r1.git("rev-parse", "HEAD") == r2.git("rev-parse", "HEAD") {
		t.Fatal("test setup: the two repositories have the same HEAD")
	}

	change := func(r *testRepo, contents string) {
		r.write("pkg/a/Dockerfile", contents)
		r.write("pkg/a/untracked", "u\n")
		r.remove("pkg/a/sub/file")
	}
	change(r1, "FROM scratch\nCOPY x /\n")
	change(r2, "FROM scratch\nCOPY x /\n")
	t1 := mustOf(t, r1.path("pkg/a"))
	t2 := mustOf(t, r2.path("pkg/a"))
	if !t1.Dirty || t1 != t2 {
		t.Errorf("same content: tags %s and %s, want equal and dirty", t1, t2)
	}
	if again := mustOf(t, r1.path("pkg/a")); again != t1 {
		t.Errorf("second run: tag %s, want %s", again, t1)
	}

	change(r2, "FROM scratch\nCOPY y /\n")
	if t3 := mustOf(t, r2.path("pkg/a")); t3.Hash != t1.Hash || t3.Content == t1.Content {
		t.Errorf("different content: tags %s and %s, want the same hash and different contents", t1, t3)
	}
}

func TestOfPaths(t *testing.T) {
	r := newRepo(t, baseFiles())
	t.Run("top of the repository", func(t *testing.T) {
		if got, want := mustOf(t, r.dir).String(), r.git("rev-parse", "HEAD^{tree}"); got != want {
			t.Errorf("tag = %s, want %s", got, want)
		}
	})
	t.Run("nested folder", func(t *testing.T) {
		if got, want := mustOf(t, r.path("pkg/a/sub")).String(), r.treeAtHead("pkg/a/sub"); got != want {
			t.Errorf("tag = %s, want %s", got, want)
		}
	})
	t.Run("relative to the current folder", func(t *testing.T) {
		t.Chdir(r.path("pkg"))
		if got, want := mustOf(t, "a").String(), r.treeAtHead("pkg/a"); got != want {
			t.Errorf("tag = %s, want %s", got, want)
		}
	})
	t.Run("through a symlink", func(t *testing.T) {
		link := filepath.Join(t.TempDir(), "link")
		if err := os.Symlink(r.path("pkg/a"), link); err != nil {
			t.Fatal(err)
		}
		if got, want := mustOf(t, link).String(), r.treeAtHead("pkg/a"); got != want {
			t.Errorf("tag = %s, want %s", got, want)
		}
	})
	t.Run("folder without a work tree index", func(t *testing.T) {
		r := newRepo(t, baseFiles())
		r.write("pkg/a/kept.log", "1\n")
		r.git("add", "-f", "pkg/a/kept.log")
		r.git("commit", "-q", "-m", "kept")
		r.remove(".git/index")
		// Without an index, tracked files matching .gitignore are still part of the tree.
		if got, want := mustOf(t, r.path("pkg/a")).String(), r.treeAtHead("pkg/a"); got != want {
			t.Errorf("tag = %s, want %s", got, want)
		}
	})
	t.Run("every file deleted", func(t *testing.T) {
		r := newRepo(t, baseFiles())
		for _, name := range []string{"build.yml", "Dockerfile", "sub", ".gitignore"} {
			r.remove("pkg/a/" + name)
		}
		r.write(".git/info/exclude", "*.log\n")
		r.write("pkg/a/ignored.log", "x\n")
		got := mustOf(t, r.path("pkg/a"))
		empty := r.git("hash-object", "-t", "tree", os.DevNull)
		if want := r.treeAtHead("pkg/a") + "-dirty-" + empty[:ContentLen]; got.String() != want {
			t.Errorf("tag = %s, want %s", got, want)
		}
	})
}

func TestOfExtraSources(t *testing.T) {
	r := newRepo(t, baseFiles())
	other := newRepo(t, map[string]string{"lib/x.go": "package x\n"})
	a, b, lib := r.treeAtHead("pkg/a"), r.treeAtHead("pkg/b"), other.treeAtHead("lib")
	sha := func(hexes ...string) string {
		sum := sha1.Sum([]byte(strings.Join(hexes, "")))
		return hex.EncodeToString(sum[:])
	}

	tests := []struct {
		name  string
		dir   string
		extra []string
		want  string
	}{
		{"none", r.path("pkg/a"), nil, a},
		{"relative to the folder", r.path("pkg/a"), []string{"../b"}, sha(a, b)},
		{"absolute", r.path("pkg/a"), []string{r.path("pkg/b")}, sha(a, b)},
		{"order matters", r.path("pkg/b"), []string{"../a"}, sha(b, a)},
		{"several", r.path("pkg/a"), []string{"../b", "sub"}, sha(a, b, r.treeAtHead("pkg/a/sub"))},
		{"another repository", r.path("pkg/a"), []string{other.path("lib")}, sha(a, lib)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustOf(t, tt.dir, tt.extra...)
			if got.String() != tt.want {
				t.Errorf("tag = %s, want %s", got, tt.want)
			}
		})
	}

	t.Run("dirty extra source", func(t *testing.T) {
		r.write("pkg/b/Dockerfile", "changed\n")
		t.Cleanup(func() { r.write("pkg/b/Dockerfile", "FROM scratch\n") })
		got := mustOf(t, r.path("pkg/a"), "../b")
		if got.Hash != sha(a, b) || !got.Dirty {
			t.Fatalf("tag = %s, want %s-dirty-...", got, sha(a, b))
		}
		if plain := mustOf(t, r.path("pkg/a")); plain.Dirty {
			t.Errorf("without the extra source: tag %s, want clean", plain)
		}
		r.git("add", "pkg/b")
		r.git("commit", "-q", "-m", "b")
		if want := sha(a, r.treeAtHead("pkg/b"))[:ContentLen]; got.Content != want {
			t.Errorf("content = %s, want %s", got.Content, want)
		}
	})
}

func TestOfErrors(t *testing.T) {
	r := newRepo(t, baseFiles())
	r.write("pkg/new/Dockerfile", "FROM scratch\n")
	if err := os.WriteFile(filepath.Join(r.dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := &testRepo{t: t, dir: t.TempDir()}
	empty.git("init", "-q")
	empty.write("d/x", "x\n")
	plain := t.TempDir()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		ctx     context.Context
		dir     string
		extra   []string
		wantIs  error
		wantMsg string
	}{
		{name: "not a repository", dir: plain, wantIs: ErrNotRepository},
		{name: "extra source not in a repository", dir: r.path("pkg/a"), extra: []string{plain}, wantIs: ErrNotRepository},
		{name: "inside .git", dir: r.path(".git/refs"), wantIs: ErrOutsideWorkTree},
		{name: "repository without commits", dir: empty.path("d"), wantIs: ErrNotCommitted},
		{name: "missing folder", dir: r.path("pkg/missing"), wantIs: fs.ErrNotExist},
		{name: "missing extra source", dir: r.path("pkg/a"), extra: []string{"../missing"}, wantIs: fs.ErrNotExist},
		{name: "a file", dir: r.path("file"), wantMsg: "not a directory"},
		{name: "cancelled", ctx: cancelled, dir: r.path("pkg/a"), wantIs: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			got, err := Of(ctx, tt.dir, tt.extra...)
			if err == nil {
				t.Fatalf("Of = %s, want an error", got)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %q", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
		})
	}

	t.Run("folder never committed", func(t *testing.T) {
		got, err := Of(context.Background(), r.path("pkg/new"))
		if err != nil {
			t.Fatal(err)
		}
		if got.Hash != EmptyTree || !got.Dirty || len(got.Content) != ContentLen {
			t.Errorf("Of(new folder) = %+v, want a dirty tag on the empty tree", got)
		}
		again, err := Of(context.Background(), r.path("pkg/new"))
		if err != nil || again != got {
			t.Errorf("Of(new folder) again = %+v, %v; want %+v", again, err, got)
		}
	})

	t.Run("git missing", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, err := Of(context.Background(), r.path("pkg/a"))
		if !errors.Is(err, ErrGitNotFound) {
			t.Errorf("error %v is not %v", err, ErrGitNotFound)
		}
	})
}

// TestFiles checks that Files lists exactly the files of the working tree the tag hashes: once
// that state is committed, the committed tree holds the same paths.
func TestFiles(t *testing.T) {
	files := func(t *testing.T, dir string) []string {
		t.Helper()
		got, err := Files(context.Background(), dir)
		if err != nil {
			t.Fatalf("Files(%s): %v", dir, err)
		}
		return got
	}
	// committedNames commits the working state and lists the folder's tree at HEAD.
	committedNames := func(r *testRepo, folder string) []string {
		r.commitAll("state")
		out := r.git("-c", "core.quotePath=false", "ls-tree", "-r", "--name-only", "HEAD:"+folder)
		if out == "" {
			return nil
		}
		return strings.Split(out, "\n")
	}

	r := newRepo(t, baseFiles())
	r.write("pkg/a/kept.log", "tracked although ignored\n")
	r.git("add", "-f", "pkg/a/kept.log")
	r.git("commit", "-q", "-m", "kept")
	r.write("pkg/a/new file", "untracked\n")  // untracked, not ignored: listed
	r.write("pkg/a/build.log", "ignored\n")   // ignored: not listed
	r.write("pkg/a/out/big.log", "ignored\n") // ignored folder contents: not listed
	r.write("pkg/a/staged", "staged\n")       // staged, then changed: listed
	r.git("add", "pkg/a/staged")
	r.write("pkg/a/staged", "changed\n")
	r.remove("pkg/a/sub/file")                          // deleted: not listed
	r.write("pkg/a/[lit]*/x", "a pathspec-like name\n") // taken literally
	if err := os.Symlink("Dockerfile", r.path("pkg/a/link")); err != nil {
		t.Fatal(err)
	}
	r.write("pkg/b/other", "another folder: not listed\n")

	want := []string{".gitignore", "Dockerfile", "[lit]*/x", "build.yml", "kept.log", "link", "new file", "staged"}
	got := files(t, r.path("pkg/a"))
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Files = %q, want %q", got, want)
	}
	top := files(t, r.dir)
	if !slices.Contains(top, "pkg/a/kept.log") || !slices.Contains(top, "pkg/b/other") || slices.Contains(top, "pkg/a/build.log") {
		t.Errorf("Files(top) = %q, want pkg/ paths with the same rules", top)
	}
	if r.git("status", "--porcelain", "--", "pkg/a/staged") != "AM pkg/a/staged" {
		t.Errorf("Files changed the repository's index")
	}
	if c := committedNames(r, "pkg/a"); strings.Join(c, "|") != strings.Join(want, "|") {
		t.Errorf("committed tree lists %q, Files listed %q", c, want)
	}

	t.Run("nothing recorded", func(t *testing.T) {
		r := newRepo(t, baseFiles())
		r.remove("pkg/b")
		r.write("pkg/b/x.log", "ignored\n")
		r.write(".git/info/exclude", "*.log\n")
		if got := files(t, r.path("pkg/b")); len(got) != 0 {
			t.Errorf("Files = %q, want none", got)
		}
	})
	t.Run("errors", func(t *testing.T) {
		if _, err := Files(context.Background(), t.TempDir()); !errors.Is(err, ErrNotRepository) {
			t.Errorf("Files(not a repository) error = %v, want %v", err, ErrNotRepository)
		}
		if _, err := Files(context.Background(), r.path("pkg/missing")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Files(missing) error = %v, want %v", err, fs.ErrNotExist)
		}
	})
}

func TestOfExclude(t *testing.T) {
	files := baseFiles()
	files["docs/guide.md"] = "guide\n"
	files["docs/more/notes.md"] = "notes\n"
	r := newRepo(t, files)
	// The same repository without docs/: the tree hash the tag must have.
	bare := newRepo(t, baseFiles())
	a := r.treeAtHead("pkg/a")
	sha := func(hexes ...string) string {
		sum := sha1.Sum([]byte(strings.Join(hexes, "")))
		return hex.EncodeToString(sum[:])
	}
	of := func(t *testing.T, exclude ...string) Tag {
		t.Helper()
		got, err := OfSources(context.Background(), r.path("pkg/a"), []Source{{Dir: "../..", Exclude: exclude}})
		if err != nil {
			t.Fatalf("OfSources(exclude %q): %v", exclude, err)
		}
		return got
	}

	want := sha(a, bare.treeAtHead(""))
	if got := of(t, "docs"); got.String() != want {
		t.Fatalf("tag without docs = %s, want %s (the tree of the same files without docs/)", got, want)
	}
	if got := of(t, "docs/"); got.String() != want {
		t.Errorf("tag without docs/ = %s, want %s", got, want)
	}
	if got := of(t); got.String() != sha(a, r.treeAtHead("")) {
		t.Errorf("tag with nothing excluded = %s, want the whole tree's", got)
	}

	t.Run("changes in an excluded folder do not count", func(t *testing.T) {
		r.write("docs/guide.md", "changed\n")
		r.write("docs/new.md", "untracked\n")
		r.remove("docs/more/notes.md")
		if got := of(t, "docs"); got.String() != want {
			t.Errorf("tag = %s, want %s (clean)", got, want)
		}
		if got := of(t); !got.Dirty {
			t.Errorf("tag with nothing excluded = %s, want dirty", got)
		}
		r.commitAll("docs")
		if got := of(t, "docs"); got.String() != want {
			t.Errorf("after a docs commit: tag = %s, want %s", got, want)
		}
	})

	t.Run("changes elsewhere do", func(t *testing.T) {
		r.write("README", "changed\n")
		got := of(t, "docs")
		if got.Hash != want || !got.Dirty {
			t.Fatalf("tag = %s, want %s-dirty-...", got, want)
		}
		bare.write("README", "changed\n")
		bare.commitAll("readme")
		if c := sha(a, bare.treeAtHead(""))[:ContentLen]; got.Content != c {
			t.Errorf("content = %s, want %s", got.Content, c)
		}
		r.commitAll("readme")
		if got := of(t, "docs"); got.String() != sha(a, bare.treeAtHead("")) {
			t.Errorf("committed: tag = %s, want %s", got, sha(a, bare.treeAtHead("")))
		}
	})

	t.Run("a file, and several paths", func(t *testing.T) {
		got := of(t, "docs", "README", "pkg/b/more")
		bare.remove("README")
		bare.remove("pkg/b/more")
		bare.commitAll("less")
		if w := sha(a, bare.treeAtHead("")); got.String() != w {
			t.Errorf("tag = %s, want %s", got, w)
		}
	})

	t.Run("Files leaves them out", func(t *testing.T) {
		got, err := Files(context.Background(), r.dir, "docs", "pkg/b")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range got {
			if strings.HasPrefix(f, "docs/") || strings.HasPrefix(f, "pkg/b/") {
				t.Errorf("Files lists %s, which is excluded", f)
			}
		}
		if !slices.Contains(got, "pkg/a/build.yml") || !slices.Contains(got, "README") {
			t.Errorf("Files = %q, want the rest of the tree", got)
		}
	})

	t.Run("a deleted path still excludes what HEAD has", func(t *testing.T) {
		before := of(t, "docs")
		r.remove("docs")
		t.Cleanup(func() { r.git("checkout", "-q", "HEAD", "--", "docs") })
		if got := of(t, "docs"); got != before {
			t.Errorf("tag with docs/ deleted = %s, want %s", got, before)
		}
	})

	t.Run("inside a folder that is not the top", func(t *testing.T) {
		got, err := OfSources(context.Background(), r.path("pkg/a"), []Source{{Dir: "../b", Exclude: []string{"more"}}})
		if err != nil {
			t.Fatal(err)
		}
		b := newRepo(t, map[string]string{"pkg/b/build.yml": "image: b\n", "pkg/b/Dockerfile": "FROM scratch\n"})
		if w := sha(a, b.treeAtHead("pkg/b")); got.String() != w {
			t.Errorf("tag = %s, want %s (pkg/b without more/)", got, w)
		}
	})

	if err := os.Symlink("pkg", r.path("link")); err != nil {
		t.Fatal(err)
	}
	t.Run("errors", func(t *testing.T) {
		for _, tt := range []struct {
			exclude string
			want    string
		}{
			{"doc", "names nothing git records"},
			{"pkg/a/.git", "names nothing git records"},
			{"link/x", "names nothing git records"}, // through a symbolic link
			{"../pkg", "not a path inside the folder"},
			{".", "not a path inside the folder"},
			{"/etc", "not a path inside the folder"},
		} {
			_, err := OfSources(context.Background(), r.path("pkg/a"), []Source{{Dir: "../..", Exclude: []string{tt.exclude}}})
			var xe *ExcludeError
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.exclude) ||
				!errors.As(err, &xe) || xe.Path != tt.exclude {
				t.Errorf("exclude %q: error = %v, want an *ExcludeError naming it and saying %q", tt.exclude, err, tt.want)
			}
			if _, err := Files(context.Background(), r.dir, tt.exclude); err == nil {
				t.Errorf("Files(exclude %q): no error", tt.exclude)
			}
		}
	})
}
