package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-os/kiln/internal/ocicache"
	"github.com/kiln-os/kiln/internal/testenv"
	"github.com/kiln-os/kiln/internal/testutil"
)

// world is what every end-to-end test shares: one kiln binary, one cache holding the Debian
// seed, and one local builder. Making the seed takes minutes, so it is made once.
type world struct {
	root  string // the checkout
	kiln  string // kiln built from it
	work  string // cache/ and builder/ live here
	env   []string
	cache *ocicache.Cache
}

var (
	worldOnce sync.Once
	shared    *world
	worldErr  string
	worldDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		cmd := exec.Command(shared.kiln, "builder", "stop")
		cmd.Env = shared.env
		_ = cmd.Run()
	}
	if worldDir != "" {
		os.RemoveAll(worldDir)
	}
	os.Exit(code)
}

// setup returns the shared world, making it on first use: it skips the test in -short mode
// and when a tool is missing outside CI (under CI both are failures, see testenv).
func setup(t *testing.T) *world {
	t.Helper()
	testenv.Short(t, "end-to-end tests take minutes; run without -short")
	need(t, "mmdebstrap", "git", "go")
	if os.Getenv("GOPROXY_URL") == "" {
		testenv.SkipOrFail(t, "GOPROXY_URL is not set (the Makefile sets it from go env GOPROXY; run through make)")
	}
	buildkitd, runc := testutil.BuildkitdBinaries(t)
	worldOnce.Do(func() {
		w := &world{root: testutil.ModuleRoot(t)}
		w.work = os.Getenv("KILN_E2E_DIR")
		if w.work == "" {
			d, err := os.MkdirTemp("", "kiln-e2e-")
			if err != nil {
				worldErr = err.Error()
				return
			}
			w.work, worldDir = d, d
		}
		bin := filepath.Join(w.work, "kiln")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/kiln")
		cmd.Dir = w.root
		if out, err := cmd.CombinedOutput(); err != nil {
			worldErr = "building kiln: " + err.Error() + "\n" + string(out)
			return
		}
		w.kiln = bin
		w.env = append(os.Environ(),
			"KILN_CACHE="+filepath.Join(w.work, "cache"),
			"KILN_BUILDER_ROOT="+filepath.Join(w.work, "builder"),
			"KILN_BUILDKITD="+buildkitd,
			"KILN_RUNC="+runc,
			"KILN="+bin,
		)
		c, err := ocicache.Open(filepath.Join(w.work, "cache"))
		if err != nil {
			worldErr = err.Error()
			return
		}
		w.cache = c
		if _, err := c.Resolve("kiln/debian-seed:bookworm"); err != nil {
			if _, err := w.run(t, filepath.Join(w.root, "tools/debian-base/seed.sh")); err != nil {
				worldErr = err.Error()
				return
			}
		}
		shared = w
	})
	if worldErr != "" {
		t.Fatal(worldErr)
	}
	return shared
}

// run runs a command in the checkout with the world's environment and returns its standard
// output; the error holds the end of its standard error. It logs how long it took.
func (w *world) run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = w.root, w.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s %s: %s", filepath.Base(name), strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond))
	if err != nil {
		return out.String(), &cmdError{name + " " + strings.Join(args, " "), err, tail(errb.String(), 60)}
	}
	return out.String(), nil
}

// must is run that fails the test on error.
func (w *world) must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := w.run(t, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type cmdError struct {
	cmd    string
	err    error
	stderr string
}

func (e *cmdError) Error() string { return e.cmd + ": " + e.err.Error() + "\n" + e.stderr }
func (e *cmdError) Unwrap() error { return e.err }

// pkgBuild builds packages and returns each reference's index digest as kiln printed it.
func (w *world) pkgBuild(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := w.must(t, w.kiln, append([]string{"pkg", "build", "-progress", "plain"}, dirs...)...)
	digests := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			digests[f[0]] = f[1]
		}
	}
	return digests
}
