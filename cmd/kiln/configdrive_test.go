package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/internal/testenv"
)

// -data FILE makes a drive whose user-data is the file and whose meta-data names an instance
// derived from it; -data DIR takes the folder's files as they are; a subfolder, a missing path
// or a special file are errors naming the path. Read back with mtools.
func TestConfigDrive(t *testing.T) {
	testenv.NeedTool(t, "mtype", "mtools")
	mtype := func(img, name string) string {
		t.Helper()
		b, err := exec.Command("mtype", "-i", img, "::"+name).CombinedOutput()
		if err != nil {
			t.Fatalf("mtype %s: %v\n%s", name, err, b)
		}
		return string(b)
	}
	dir := t.TempDir()
	ud := filepath.Join(dir, "ud.yml")
	if err := os.WriteFile(ud, []byte("#cloud-config\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := configDrive(ud)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(img)
	if got := mtype(img, "user-data"); got != "#cloud-config\n" {
		t.Errorf("user-data %q", got)
	}
	meta := mtype(img, "meta-data")
	if !strings.HasPrefix(meta, "instance-id: kiln-") {
		t.Errorf("meta-data %q", meta)
	}
	again, err := configDrive(ud)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(again)
	a, _ := os.ReadFile(img)
	b, _ := os.ReadFile(again)
	if string(a) != string(b) {
		t.Error("the same -data FILE gave two different drives")
	}

	seed := filepath.Join(dir, "seed")
	if err := os.Mkdir(seed, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"meta-data": "instance-id: mine\n", "network-config": "version: 2\n"} {
		if err := os.WriteFile(filepath.Join(seed, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img2, err := configDrive(seed)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(img2)
	if got := mtype(img2, "meta-data"); got != "instance-id: mine\n" {
		t.Errorf("a folder's own meta-data was replaced: %q", got)
	}
	if got := mtype(img2, "network-config"); got != "version: 2\n" {
		t.Errorf("network-config %q", got)
	}

	if err := os.Mkdir(filepath.Join(seed, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		seed:                       "sub is not a regular file",
		filepath.Join(dir, "nope"): "-data: stat",
		"/dev/null":                "want a file (the user-data) or a folder",
	} {
		if _, err := configDrive(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}
