package pkgbuild

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	// Keep the user's and the system's git configuration out of the tests, for the fixtures
	// and for the code under test (which runs git too).
	os.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	os.Exit(m.Run())
}

// commitTime is the author and committer date of every fixture commit, so SOURCE_DATE_EPOCH
// (the commit time) is the same in every run.
const (
	commitTime  = "2024-01-02T03:04:05Z"
	commitEpoch = 1704164645
)

// testRepo is a git repository in a temporary folder holding package fixtures.
type testRepo struct {
	t   *testing.T
	dir string
}

// newRepo makes a repository holding files (slash-separated path: contents) in one commit.
func newRepo(t *testing.T, files map[string]string) *testRepo {
	t.Helper()
	r := &testRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	r.writeFiles(files)
	r.commit("fixtures")
	return r
}

// path returns the absolute path of name (slash-separated, relative to the repository).
func (r *testRepo) path(name string) string {
	return filepath.Join(r.dir, filepath.FromSlash(name))
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

// writeFiles writes files in a fixed order (map order must not matter, but sorted is easier
// to debug).
func (r *testRepo) writeFiles(files map[string]string) {
	r.t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r.write(n, files[n])
	}
}

// commit commits everything in the work tree and returns the commit hash.
func (r *testRepo) commit(msg string) string {
	r.t.Helper()
	r.git("add", "-A")
	r.git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

func (r *testRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", r.dir}, args...)...)
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_DATE="+commitTime, "GIT_COMMITTER_DATE="+commitTime,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		r.t.Fatalf("git %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// treeRef returns the image reference a package in folder (of org/image) has at HEAD.
func (r *testRepo) treeRef(org, image, folder string) string {
	r.t.Helper()
	return org + "/" + image + ":" + r.git("rev-parse", "HEAD:"+folder)
}

// envOf returns a Getenv function reading only m, so tests never see the process
// environment (SOURCE_DATE_EPOCH in particular).
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}
