package ktar

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// list returns "TYPE MODE UID:GID MTIME NAME SIZE" for each entry, and each file's body.
func list(t *testing.T, data []byte) ([]string, map[string]string) {
	t.Helper()
	var out []string
	bodies := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, bodies
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		bodies[h.Name] = string(b)
		out = append(out, fmt.Sprintf("%c %o %d:%d %d %s %d %q%q", h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime.Unix(), h.Name, h.Size, h.Uname, h.Gname))
	}
}

func TestWrite(t *testing.T) {
	src := filepath.Join(t.TempDir(), "a.ko")
	if err := os.WriteFile(src, []byte("module bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := "lib/modules/6.1.0-56-amd64/kernel/drivers/net/ethernet/mellanox/mlx5/core/" + strings.Repeat("x", 80) + ".ko"
	files := []File{
		{Name: "lib/modules/v/modules.dep", Data: []byte("kernel/a.ko:\n")},
		{Name: "lib/modules/v/kernel/a.ko", Src: src},
		{Name: "lib/modules/v/kernel-b.ko", Data: nil},
		{Name: long, Data: []byte("l")},
	}
	mtime := time.Unix(1700000000, 999)
	var b1, b2 bytes.Buffer
	if err := Write(&b1, files, mtime); err != nil {
		t.Fatal(err)
	}
	// The same files in another order give the same bytes.
	rev := []File{files[3], files[2], files[1], files[0]}
	if err := Write(&b2, rev, mtime); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Error("the order files are given in changes the archive")
	}
	got, bodies := list(t, b1.Bytes())
	d := func(n string) string { return "5 755 0:0 1700000000 " + n + "/ 0 \"\"\"\"" }
	want := []string{
		d("lib"), d("lib/modules"), d("lib/modules/6.1.0-56-amd64"), d("lib/modules/6.1.0-56-amd64/kernel"),
		d("lib/modules/6.1.0-56-amd64/kernel/drivers"), d("lib/modules/6.1.0-56-amd64/kernel/drivers/net"),
		d("lib/modules/6.1.0-56-amd64/kernel/drivers/net/ethernet"), d("lib/modules/6.1.0-56-amd64/kernel/drivers/net/ethernet/mellanox"),
		d("lib/modules/6.1.0-56-amd64/kernel/drivers/net/ethernet/mellanox/mlx5"), d("lib/modules/6.1.0-56-amd64/kernel/drivers/net/ethernet/mellanox/mlx5/core"),
		"0 644 0:0 1700000000 " + long + " 1 \"\"\"\"",
		d("lib/modules/v"),
		d("lib/modules/v/kernel"), // a prefix sorts first; then "-" sorts before "/"
		"0 644 0:0 1700000000 lib/modules/v/kernel-b.ko 0 \"\"\"\"",
		"0 644 0:0 1700000000 lib/modules/v/kernel/a.ko 12 \"\"\"\"",
		"0 644 0:0 1700000000 lib/modules/v/modules.dep 13 \"\"\"\"",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if bodies["lib/modules/v/kernel/a.ko"] != "module bytes" {
		t.Errorf("a.ko holds %q", bodies["lib/modules/v/kernel/a.ko"])
	}
	var b3 bytes.Buffer
	if err := Write(&b3, files, mtime.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(b1.Bytes(), b3.Bytes()) {
		t.Error("another mtime gives the same bytes")
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name    string
		files   []File
		wantErr string
	}{
		{"twice", []File{{Name: "a"}, {Name: "a"}}, "given twice"},
		{"absolute", []File{{Name: "/a"}}, "clean relative path"},
		{"unclean", []File{{Name: "a//b"}}, "clean relative path"},
		{"escapes", []File{{Name: "../a"}}, "clean relative path"},
		{"empty", []File{{Name: ""}}, "clean relative path"},
		{"file and folder", []File{{Name: "a"}, {Name: "a/b"}}, "both a file and a folder"},
		{"missing source", []File{{Name: "a", Src: "/nonexistent/file"}}, "no such file"},
		{"source is a folder", []File{{Name: "a", Src: os.TempDir()}}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Write(io.Discard, tt.files, time.Unix(0, 0))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
