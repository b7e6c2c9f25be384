// Command pkgbench measures a no-op `kiln pkg build`: N packages (default 20) in a fresh git
// repository whose images are all in the cache, so kiln only computes each package's tag and
// looks it up. The builder is pointed at a buildkitd binary that does not exist, so a package
// that kiln tried to build would fail the run. `make bench` runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kiln-os/kiln/internal/ocicache"
)

func main() {
	kiln := flag.String("kiln", "bin/kiln", "the kiln binary to measure")
	n := flag.Int("packages", 20, "number of packages")
	runs := flag.Int("runs", 5, "runs (the median and best are reported)")
	flag.Parse()
	if err := run(*kiln, *n, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "pkgbench:", err)
		os.Exit(1)
	}
}

func run(kiln string, n, runs int) error {
	kiln, err := filepath.Abs(kiln)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kiln-pkgbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	repo := filepath.Join(dir, "repo")
	var dirs []string
	for i := range n {
		d := filepath.Join(repo, "pkgs", fmt.Sprintf("p%02d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		yml := fmt.Sprintf("image: p%02d\narches: [amd64, arm64, s390x]\n", i)
		df := fmt.Sprintf("FROM scratch\nCOPY build.yml /p%02d\n", i)
		if i > 0 { // a chain of dependencies, so ordering is measured too
			df = fmt.Sprintf("FROM @pkg:../p%02d\nCOPY build.yml /p%02d\n", i-1, i)
		}
		if err := os.WriteFile(filepath.Join(d, "build.yml"), []byte(yml), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, "Dockerfile"), []byte(df), 0o644); err != nil {
			return err
		}
		dirs = append(dirs, filepath.Join("pkgs", fmt.Sprintf("p%02d", i)))
	}
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", append([]string{"-c", "user.name=bench", "-c", "user.email=bench@kiln.invalid"}, args...)...)
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	for _, a := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-qm", "packages"}} {
		if _, err := git(a...); err != nil {
			return err
		}
	}
	env := append(os.Environ(),
		"KILN_CACHE="+filepath.Join(dir, "cache"),
		"KILN_BUILDER_ROOT="+filepath.Join(dir, "builder"),
		"KILN_BUILDKITD="+filepath.Join(dir, "no-buildkitd"),
		"KILN_BUILDERS=",
	)
	// Seed the cache: each package's reference, as kiln computes it, names a 3-arch index.
	cmd := exec.Command(kiln, append([]string{"pkg", "show-tag"}, dirs...)...)
	cmd.Dir, cmd.Env = repo, env
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("kiln pkg show-tag: %w", err)
	}
	cache, err := ocicache.Open(filepath.Join(dir, "cache"))
	if err != nil {
		return err
	}
	for _, ref := range strings.Fields(string(out)) {
		if err := seed(cache, ref); err != nil {
			return err
		}
	}
	var times []time.Duration
	for range runs {
		cmd := exec.Command(kiln, append([]string{"pkg", "build", "-progress", "quiet"}, dirs...)...)
		cmd.Dir, cmd.Env = repo, env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		if err != nil {
			return fmt.Errorf("kiln pkg build: %w\n%s", err, out)
		}
		if c := strings.Count(string(out), ": cached ("); c != n {
			return fmt.Errorf("kiln pkg build reported %d cached packages, want %d:\n%s", c, n, out)
		}
		times = append(times, took)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	fmt.Printf("pkgbench: no-op kiln pkg build of %d cached packages (3 arches each): median %s, best %s (%d runs)\n",
		n, times[len(times)/2].Round(time.Millisecond), times[0].Round(time.Millisecond), runs)
	return nil
}

// seed names a small index with linux/amd64, arm64 and s390x images as ref.
func seed(c *ocicache.Cache, ref string) error {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64", "s390x"} {
		img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: arch})
		if err != nil {
			return err
		}
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	_, err := c.WriteIndex(ref, idx)
	return err
}
