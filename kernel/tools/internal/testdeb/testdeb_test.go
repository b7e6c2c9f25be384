package testdeb

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"kiln.example/kerneltools/internal/testenv"
)

func TestParseDepends(t *testing.T) {
	tests := []struct {
		name, out, want string
	}{
		{"host", "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n", "6.1.0-57-amd64"},
		{"foreign", "linux-image-s390x:s390x\n  Depends: linux-image-6.1.0-50-s390x:s390x\n", "6.1.0-50-s390x"},
		{"signed first", "linux-image-arm64:arm64\n  Depends: linux-image-arm64-signed-template\n  Depends: linux-image-6.1.0-57-arm64:arm64\n", "6.1.0-57-arm64"},
		{"none", "linux-image-amd64\n  Depends: linux-base\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDepends([]byte(tt.out))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("parseDepends = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseDepends = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestFindDownloads points the package folder at an empty one: Find must download the host's
// kernel package there with apt, leave nothing else behind but the lock file, and find the
// same file again without downloading.
func TestFindDownloads(t *testing.T) {
	testenv.Short(t, "downloads a kernel package")
	dir := t.TempDir()
	t.Setenv(DebsEnv, dir)
	arch := runtime.GOARCH // Go's names for amd64, arm64 and s390x are Debian's too
	deb := Find(t, arch)
	if filepath.Dir(deb) != dir || !strings.HasPrefix(filepath.Base(deb), "linux-image-") || !strings.HasSuffix(deb, "_"+arch+".deb") {
		t.Fatalf("Find = %s, want %s/linux-image-*_%s.deb", deb, dir, arch)
	}
	if fi, err := os.Stat(deb); err != nil || fi.Size() < 1<<20 {
		t.Fatalf("the downloaded package: %v, %v", fi, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{lockName, filepath.Base(deb)}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("the folder holds %q, want %q", names, want)
	}
	t.Setenv("PATH", "") // no apt: a second download would fail
	if again := Find(t, arch); again != deb {
		t.Errorf("Find again = %s, want %s", again, deb)
	}
}
