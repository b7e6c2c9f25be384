package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestListContainers(t *testing.T) {
	root := t.TempDir()
	configs := map[string]string{
		"onboot/000-first/config.json":   `{"process":{"args":["/bin/hello","one"]}}`,
		"onboot/001-second/config.json":  `{"process":{"args":["/bin/true"]}}`,
		"services/web/config.json":       `{"process":{"args":["/bin/hello","serve"]}}`,
		"services/broken/config.json":    `{"process":`,
		"services/noproc/config.json":    `{}`,
		"onshutdown/000-bye/config.json": `{"process":{"args":["/bin/hello","bye"]}}`,
	}
	for name, body := range configs {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "services", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	listContainers(&out, root)
	b := filepath.Join(root, "services")
	want := "kiln-demo: onboot/000-first: /bin/hello one\n" +
		"kiln-demo: onboot/001-second: /bin/true\n" +
		"kiln-demo: services/broken: " + b + "/broken/config.json: unexpected end of JSON input\n" +
		"kiln-demo: services/empty: open " + b + "/empty/config.json: no such file or directory\n" +
		"kiln-demo: services/noproc: " + b + "/noproc/config.json: no process\n" +
		"kiln-demo: services/web: /bin/hello serve\n" +
		"kiln-demo: onshutdown/000-bye: /bin/hello bye\n"
	if got := out.String(); got != want {
		t.Errorf("listContainers printed:\n%s\nwant:\n%s", got, want)
	}

	out.Reset()
	listContainers(&out, filepath.Join(root, "missing"))
	if out.Len() != 0 {
		t.Errorf("a missing /containers printed %q, want nothing", out.String())
	}
}
