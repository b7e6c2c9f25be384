package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-os/kiln/internal/atomicfile"
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
		// make test after make demo starts from the demo's images (KILN_E2E_CACHE_FROM, set
		// by the Makefile when _out/demo/cache exists): the packages the demo built for this
		// machine are not built again.
		if from := os.Getenv("KILN_E2E_CACHE_FROM"); from != "" {
			if err := seedCache(from, filepath.Join(w.work, "cache")); err != nil {
				worldErr = err.Error()
				return
			}
		}
		c, err := ocicache.Open(filepath.Join(w.work, "cache"))
		if err != nil {
			worldErr = err.Error()
			return
		}
		w.cache = c
		// The seed for every architecture the tests build (a demo's cache has only its own).
		if missing := seedMissing(c); len(missing) > 0 {
			if _, err := w.run(t, filepath.Join(w.root, "tools/debian-base/seed.sh"), missing...); err != nil {
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

// seedMissing lists the architectures of e2eArches that the cache's Debian seed
// lacks (all three when there is no seed).
func seedMissing(c *ocicache.Cache) []string {
	missing := slices.Clone(e2eArches)
	idx, err := c.Index("kiln/debian-seed:bookworm")
	if err != nil {
		return missing
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return missing
	}
	for _, m := range im.Manifests {
		if m.Platform != nil {
			missing = slices.DeleteFunc(missing, func(a string) bool { return a == m.Platform.Architecture })
		}
	}
	return missing
}

// seedCache fills the empty image cache dst with the images of the cache src: its blobs as
// hard links (blobs are immutable and written by rename, so neither cache can change the
// other's), copied when dst is on another file system, and its index.json and oci-layout as
// copies. A dst that already has an index is left alone, and so is a src without one.
func seedCache(src, dst string) error {
	if _, err := os.Stat(filepath.Join(dst, "index.json")); err == nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(src, "index.json")); err != nil {
		return nil
	}
	blobs := filepath.Join(src, "blobs", "sha256")
	entries, err := os.ReadDir(blobs)
	if err != nil {
		return fmt.Errorf("seeding the e2e cache from %s: %w", src, err)
	}
	to := filepath.Join(dst, "blobs", "sha256")
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		from, target := filepath.Join(blobs, e.Name()), filepath.Join(to, e.Name())
		if err := os.Link(from, target); err != nil {
			if err := copyFile(from, target); err != nil {
				return fmt.Errorf("seeding the e2e cache from %s: %w", src, err)
			}
		}
	}
	// index.json last: until it is there, the cache is empty to every reader.
	for _, name := range []string{"oci-layout", "index.json"} {
		if err := copyFile(filepath.Join(src, name), filepath.Join(dst, name)); err != nil {
			return fmt.Errorf("seeding the e2e cache from %s: %w", src, err)
		}
	}
	return nil
}

// copyFile copies a file, streamed, written atomically (internal/atomicfile).
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.WriteFile(to, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
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

// combined runs a command as must does and returns its stdout and stderr together (BuildKit's
// progress is on stderr).
func (w *world) combined(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = w.root, w.env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("%s %s: %s", filepath.Base(name), strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond))
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(string(out), 60))
	}
	return string(out)
}

type cmdError struct {
	cmd    string
	err    error
	stderr string
}

func (e *cmdError) Error() string { return e.cmd + ": " + e.err.Error() + "\n" + e.stderr }
func (e *cmdError) Unwrap() error { return e.err }

// pkgBuild builds packages for e2eArches and returns each reference's index digest as kiln
// printed it.
func (w *world) pkgBuild(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := w.must(t, w.kiln, append([]string{"pkg", "build", "-progress", "plain", "-platforms", strings.Join(allArches, ",")}, dirs...)...)
	digests := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			digests[f[0]] = f[1]
		}
	}
	return digests
}
