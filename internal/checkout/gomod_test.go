package checkout

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root returns the top of the checkout.
func root(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestOneGoVersion: every go.mod in the checkout names the same go version, and it is the
// one the tools/go package builds, so every Go package is compiled by the toolchain its module
// asks for.
func TestOneGoVersion(t *testing.T) {
	r := root(t)
	df, err := os.ReadFile(filepath.Join(r, "tools/go/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)$`).FindSubmatch(df)
	if m == nil {
		t.Fatal("tools/go/Dockerfile: no ARG GO_VERSION= line")
	}
	want := string(m[1])
	out, err := exec.Command("git", "-C", r, "ls-files", "--", "go.mod", "*/go.mod").Output()
	if err != nil {
		t.Fatal(err)
	}
	mods := strings.Fields(string(out))
	if len(mods) < 2 {
		t.Fatalf("found only %v", mods)
	}
	for _, mod := range mods {
		f, err := os.Open(filepath.Join(r, mod))
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		s := bufio.NewScanner(f)
		for s.Scan() {
			if v, ok := strings.CutPrefix(s.Text(), "go "); ok {
				got = strings.TrimSpace(v)
			}
		}
		f.Close()
		if got != want {
			t.Errorf("%s: go %q, want %q (tools/go builds Go %s)", mod, got, want, want)
		}
	}
}
