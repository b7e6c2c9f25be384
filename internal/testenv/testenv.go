// Package testenv decides, for every kiln test, whether a missing tool or input skips the test
// or fails it. Outside CI a test that cannot run skips with the reason; under CI (the CI
// variable set to "true" or "1", which .ci/run exports itself) the same test fails, so CI can
// never go green by running less than it should.
//
// The file is the only copy: the nested modules (init, kernel/tools) link to it from their own
// internal/testenv folder, since a module cannot import another module's internal packages.
// It uses the standard library only.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether this is a CI run, where nothing may skip.
func InCI() bool {
	v := os.Getenv("CI")
	return v == "true" || v == "1"
}

// SkipOrFail stops the test because something it needs is missing: a skip outside CI, a
// failure under CI. The message should say what is missing and how to provide it.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("missing under CI (nothing may skip): "+format, args...)
	}
	t.Skipf(format, args...)
}

// NeedTool stops the test (SkipOrFail) when the program name is not on PATH, naming the
// Debian package that has it.
func NeedTool(t testing.TB, name, debianPackage string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		SkipOrFail(t, "%s is missing (apt-get install %s; scripts/deps.sh installs it)", name, debianPackage)
	}
}

// NeedFile stops the test (SkipOrFail) when the file is missing, naming the Debian package
// that has it.
func NeedFile(t testing.TB, path, debianPackage string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		SkipOrFail(t, "%s is missing (apt-get install %s; scripts/deps.sh installs it)", path, debianPackage)
	}
}

// Short skips the test in -short mode (never the case under CI, which runs everything).
func Short(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		if InCI() {
			t.Fatalf("-short under CI would skip: %s", why)
		}
		t.Skip(why + "; skipped with -short")
	}
}
