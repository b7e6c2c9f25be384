package assemble

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/internal/ocicache"
	"github.com/kiln-os/kiln/internal/testutil"
)

// TestBuildPullsFromRegistry builds with an empty cache: the references are pulled from a real
// registry on loopback, and the second build needs no registry at all.
func TestBuildPullsFromRegistry(t *testing.T) {
	host := testutil.StartRegistry(t)
	src := seedCache(t)
	ctx := context.Background()
	for _, name := range []string{"kiln/test-init:v1", "kiln/test-app:v1"} {
		d, err := src.Resolve(name)
		if err != nil {
			t.Fatal(err)
		}
		remote := host + "/" + name
		if err := src.Tag(remote, d); err != nil {
			t.Fatal(err)
		}
		if err := src.Push(ctx, remote, ocicache.Insecure()); err != nil {
			t.Fatal(err)
		}
	}
	yml := writeYAML(t, "init:\n  - "+host+"/kiln/test-init:v1\nservices:\n  - name: app\n    image: "+host+"/kiln/test-app:v1\n")
	empty, err := ocicache.Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	tarOnly, _ := LookupFormats("tar")

	_, err = build(t, Options{Files: []string{yml}, Dir: t.TempDir(), Cache: empty, Formats: tarOnly})
	if err == nil || !strings.Contains(err.Error(), "pulling is off") {
		t.Fatalf("without -pull the build must fail naming the cache, got %v", err)
	}
	out := t.TempDir()
	if _, err := build(t, Options{Files: []string{yml}, Dir: out, Cache: empty, Formats: tarOnly, Pull: true}); err != nil {
		t.Fatal(err)
	}
	names, _ := listTar(t, filepath.Join(out, TarFile("system")))
	if len(names) == 0 {
		t.Fatal("empty tar")
	}
	// Now everything is cached: a build without pulling works.
	if _, err := build(t, Options{Files: []string{yml}, Dir: t.TempDir(), Cache: empty, Formats: tarOnly}); err != nil {
		t.Fatal(err)
	}
}
