package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kiln-os/kiln/internal/ocicache"
	"github.com/kiln-os/kiln/internal/testutil"
)

// bootstrapPackages are built, in this order of dependency, from the seed.
var bootstrapPackages = []string{"tools/debian-base", "tools/go", "services/hello"}

var allArches = []string{"linux/amd64", "linux/arm64", "linux/s390x"}

// TestBootstrapReproducible makes the Debian seed from Debian's packages (no base image),
// builds the bootstrap packages and a Go service for amd64, arm64 and s390x with `kiln pkg
// build`, then wipes BuildKit's state and the packages' images and builds them again: every
// index digest must be the same. It takes minutes (mmdebstrap under emulation, the s390x Go
// toolchain compiled from source), so -short skips it. KILN_E2E_DIR keeps the seed and the
// first build between runs (a developer's shortcut; CI starts empty).
func TestBootstrapReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("the bootstrap takes minutes; run without -short")
	}
	need(t, "mmdebstrap", "git")
	if os.Getenv("GOPROXY_URL") == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("GOPROXY_URL is not set (the Makefile sets it from go env GOPROXY)")
		}
		t.Skip("GOPROXY_URL is not set; run through make")
	}
	buildkitd, runc := testutil.BuildkitdBinaries(t)
	root := testutil.ModuleRoot(t)
	kiln := buildKiln(t, root)

	work := os.Getenv("KILN_E2E_DIR")
	if work == "" {
		work = t.TempDir()
	}
	env := append(os.Environ(),
		"KILN_CACHE="+filepath.Join(work, "cache"),
		"KILN_BUILDER_ROOT="+filepath.Join(work, "builder"),
		"KILN_BUILDKITD="+buildkitd,
		"KILN_RUNC="+runc,
		"KILN="+kiln,
	)
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = root, env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		err := cmd.Run()
		t.Logf("%s %s: %s", filepath.Base(name), strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond))
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(errb.String(), 60))
		}
		return out.String()
	}
	t.Cleanup(func() {
		cmd := exec.Command(kiln, "builder", "stop")
		cmd.Env = env
		_ = cmd.Run()
	})

	cache, err := ocicache.Open(filepath.Join(work, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Resolve("kiln/debian-seed:bookworm"); err != nil {
		run(filepath.Join(root, "tools/debian-base/seed.sh"))
	}
	checkPlatforms(t, cache, "kiln/debian-seed:bookworm")

	build := func() map[string]string {
		out := run(kiln, append([]string{"pkg", "build", "-progress", "plain"}, bootstrapPackages...)...)
		digests := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 {
				digests[f[0]] = f[1]
			}
		}
		if len(digests) != len(bootstrapPackages) {
			t.Fatalf("kiln pkg build printed %q, want one line per package", out)
		}
		return digests
	}
	first := build()
	for ref := range first {
		checkPlatforms(t, cache, ref)
	}

	// From clean state: no BuildKit cache, none of the packages' images.
	run(kiln, "builder", "stop")
	if err := os.RemoveAll(filepath.Join(work, "builder")); err != nil {
		t.Fatal(err)
	}
	refs := sortedKeys(first)
	run(kiln, append([]string{"cache", "rm"}, refs...)...)
	second := build()
	for _, ref := range refs {
		if first[ref] != second[ref] {
			t.Errorf("%s: first build %s, second build from clean state %s", ref, first[ref], second[ref])
		} else {
			t.Logf("reproducible: %s %s", ref, first[ref])
		}
	}
}

// checkPlatforms checks that ref names an index of exactly the three architectures.
func checkPlatforms(t *testing.T, c *ocicache.Cache, ref string) {
	t.Helper()
	idx, err := c.Index(ref)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			t.Fatalf("%s: child %s has no platform", ref, m.Digest)
		}
		got = append(got, m.Platform.OS+"/"+m.Platform.Architecture)
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != m.Platform.Architecture {
			t.Errorf("%s: index says %s, the image's config says %s", ref, m.Platform.Architecture, cf.Architecture)
		}
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(allArches, ",") {
		b, _ := json.Marshal(im)
		t.Fatalf("%s: platforms %v, want %v\n%s", ref, got, allArches, b)
	}
}

func buildKiln(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kiln")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kiln")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building kiln: %v\n%s", err, out)
	}
	return bin
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing (.ci/run installs it)", tool)
			}
			t.Skipf("%s is missing", tool)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
