package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/internal/ocicache"
	"github.com/kiln-os/kiln/internal/testenv"
)

// bootstrapPackages are built, in this order of dependency, from the seed.
var bootstrapPackages = []string{"tools/debian-base", "tools/go", "services/hello"}

// allArches are e2eArches as platforms.
var allArches = func() []string {
	var out []string
	for _, a := range e2eArches {
		out = append(out, "linux/"+a)
	}
	return out
}()

// TestBootstrapReproducible makes the Debian seed from Debian's packages (no base image),
// builds the bootstrap packages and a Go service for e2eArches (s390x in make test-heavy) with `kiln pkg
// build`, then wipes BuildKit's state and the packages' images and builds them again: every
// index digest must be the same. It takes minutes (mmdebstrap under emulation, the s390x Go
// toolchain compiled from source), so -short skips it. KILN_E2E_DIR keeps the seed and the
// first build between runs (a developer's shortcut). After make demo, the first build starts
// from the demo's amd64 images and builds arm64 and s390x beside them (KILN_E2E_CACHE_FROM);
// the second builds all three at once, so the two must agree on the merged indexes too.
func TestBootstrapReproducible(t *testing.T) {
	w := setup(t)
	checkPlatforms(t, w.cache, "kiln/debian-seed:bookworm")

	first := w.pkgBuild(t, bootstrapPackages...)
	if len(first) != len(bootstrapPackages) {
		t.Fatalf("kiln pkg build printed %v, want one line per package", first)
	}
	for ref := range first {
		checkPlatforms(t, w.cache, ref)
	}

	// From clean state: no BuildKit cache, none of the packages' images.
	w.must(t, w.kiln, "builder", "stop")
	if err := os.RemoveAll(filepath.Join(w.work, "builder")); err != nil {
		t.Fatal(err)
	}
	refs := sortedKeys(first)
	w.must(t, w.kiln, append([]string{"cache", "rm"}, refs...)...)
	second := w.pkgBuild(t, bootstrapPackages...)
	for _, ref := range refs {
		if first[ref] != second[ref] {
			t.Errorf("%s: first build %s, second build from clean state %s", ref, first[ref], second[ref])
		} else {
			t.Logf("reproducible: %s %s", ref, first[ref])
		}
	}
}

// checkPlatforms checks that ref names an index of exactly the architectures of e2eArches.
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

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.SkipOrFail(t, "%s is not on PATH (make installs the Debian tools it needs, scripts/deps.sh): %v", tool, err)
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
