package pkgbuild

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGoModulesContext downloads a real module with the host's go command (from the module
// cache or the proxy) and checks the proxy layout the Dockerfile reads with GOPROXY=file://.
func TestGoModulesContext(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// golang.org/x/sync is in kiln's own go.sum, so the module cache or the proxy has it.
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gosum, err := os.ReadFile("../../go.sum")
	if err != nil {
		t.Fatal(err)
	}
	var sum []string
	for _, l := range strings.Split(string(gosum), "\n") {
		if strings.HasPrefix(l, "golang.org/x/sync ") {
			sum = append(sum, l)
		}
	}
	if len(sum) == 0 {
		t.Fatal("golang.org/x/sync is not in go.sum")
	}
	version := strings.Fields(sum[0])[1]
	version = strings.TrimSuffix(version, "/go.mod")
	write("go.mod", "module example.com/p\n\ngo 1.26\n\nrequire golang.org/x/sync "+version+"\n")
	write("go.sum", strings.Join(sum, "\n")+"\n")

	got, cleanup, err := goModules(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	for _, ext := range []string{".mod", ".zip", ".info"} {
		p := filepath.Join(got, "golang.org", "x", "sync", "@v", version+ext)
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
	cleanup()
	if _, err := os.Stat(got); !os.IsNotExist(err) {
		t.Errorf("cleanup left %s", got)
	}

	// No go.mod: no context.
	if got, _, err := goModules(ctx, t.TempDir()); err != nil || got != "" {
		t.Errorf("goModules(no go.mod) = %q, %v; want nothing", got, err)
	}
	// Several folders (a package and its extra sources): the modules of every go.mod, once
	// each; a folder without go.mod adds nothing.
	second := t.TempDir()
	for _, name := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "go.mod" {
			b = []byte(strings.Replace(string(b), "example.com/p", "example.com/q", 1))
		}
		if err := os.WriteFile(filepath.Join(second, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, cleanup, err = goModules(ctx, t.TempDir(), dir, second)
	if err != nil {
		t.Fatalf("goModules(no go.mod, two go.mod files needing the same module): %v", err)
	}
	defer cleanup()
	if _, err := os.Stat(filepath.Join(got, "golang.org", "x", "sync", "@v", version+".zip")); err != nil {
		t.Error(err)
	}
	// A module that does not exist: the go command's error, naming the folder.
	write("go.mod", "module example.com/p\n\ngo 1.26\n\nrequire example.invalid/nope v1.0.0\n")
	write("go.sum", "")
	t.Setenv("GOFLAGS", "-mod=mod")
	t.Setenv("GOPROXY", "off")
	if _, _, err := goModules(ctx, dir); err == nil || !strings.Contains(err.Error(), "example.invalid/nope") {
		t.Errorf("goModules(missing module) error = %v, want one naming the module", err)
	}
}
