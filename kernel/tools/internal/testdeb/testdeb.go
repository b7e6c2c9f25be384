// Package testdeb finds and unpacks Debian kernel packages (linux-image-*.deb) for the tests
// of the other packages, which check their work against real kernels. The packages are not
// part of the repository: the tests look in $KILN_KERNEL_DEBS (a folder), else in
// ~/.cache/kiln-demo/debs where the demo seed keeps the ones it downloaded, and skip when
// there is none for an architecture.
//
// It is for tests only.
package testdeb

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// Dir is the folder the packages are looked for in.
func Dir() string {
	if d := os.Getenv("KILN_KERNEL_DEBS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "kiln-demo", "debs")
}

// Find returns the path of the last (by name) linux-image package for arch, or skips the test.
func Find(t testing.TB, arch string) string {
	t.Helper()
	debs, _ := filepath.Glob(filepath.Join(Dir(), "linux-image-*_"+arch+".deb"))
	var kernels []string
	for _, d := range debs {
		if m, _ := filepath.Match("linux-image-[0-9]*", filepath.Base(d)); m {
			kernels = append(kernels, d)
		}
	}
	if len(kernels) == 0 {
		t.Skipf("no linux-image-*_%s.deb in %s (set KILN_KERNEL_DEBS to a folder holding one)", arch, Dir())
	}
	sort.Strings(kernels)
	return kernels[len(kernels)-1]
}

// Unpack unpacks the package Find returns for arch into a temporary folder (dpkg-deb -x) and
// returns the folder; it skips the test when dpkg-deb is missing.
func Unpack(t testing.TB, arch string) string {
	t.Helper()
	deb := Find(t, arch)
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb is not installed")
	}
	dir := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", deb, dir).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
	}
	return dir
}

// ModuleDir returns root's only lib/modules/VERSION folder and VERSION.
func ModuleDir(t testing.TB, root string) (string, string) {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(root, "lib", "modules", "*"))
	if len(dirs) != 1 {
		t.Fatalf("want one lib/modules/VERSION folder in %s, found %q", root, dirs)
	}
	return dirs[0], filepath.Base(dirs[0])
}
