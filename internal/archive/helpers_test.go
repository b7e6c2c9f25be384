package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// testEpoch stands in for SOURCE_DATE_EPOCH in tests.
var testEpoch = time.Unix(1700000000, 0)

// item is an entry plus its body, for tests.
type item struct {
	e    Entry
	body string
}

func reg(name string, mode int64, body string) item {
	return item{e: Entry{Header: &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}}, body: body}
}

func dir(name string, mode int64) item {
	return item{e: Entry{Header: &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}}
}

func symlink(name, target string) item {
	return item{e: Entry{Header: &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}}
}

func hardlink(name, target string) item {
	return item{e: Entry{Header: &tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target}}}
}

func device(typ byte, name string, mode, major, minor int64) item {
	return item{e: Entry{Header: &tar.Header{Typeflag: typ, Name: name, Mode: mode, Devmajor: major, Devminor: minor}}}
}

func fifo(name string, mode int64) item {
	return item{e: Entry{Header: &tar.Header{Typeflag: tar.TypeFifo, Name: name, Mode: mode}}}
}

func withLinks(it item, n int) item { it.e.Links = n; return it }

func withXattrs(it item, kv ...string) item {
	it.e.PAXRecords = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		it.e.PAXRecords[paxXattrPrefix+kv[i]] = kv[i+1]
	}
	return it
}

func withOwner(it item, uid, gid int) item {
	it.e.Uid, it.e.Gid = uid, gid
	it.e.Uname, it.e.Gname = "someone", "somegroup"
	it.e.ModTime = time.Unix(123456789, 5) // must be replaced by the writer's time
	it.e.AccessTime = time.Unix(5, 0)
	return it
}

// sampleItems covers every entry type, in an order valid for both writers.
func sampleItems() []item {
	long := "usr/share/" + strings.Repeat("long-directory-name/", 6) + "file.txt" // > 100 bytes: PAX in tar
	return []item{
		dir("bin", 0o755),
		withLinks(reg("bin/busybox", 0o755, "#!busybox\n"), 2),
		hardlink("bin/ls", "bin/busybox"),
		hardlink("bin/cat", "bin/ls"),
		symlink("bin/sh", "busybox"),
		reg("bin/su", 0o4755, "su"),
		dir("dev", 0o755),
		device(tar.TypeChar, "dev/console", 0o600, 5, 1),
		device(tar.TypeBlock, "dev/vda", 0o660, 254, 0),
		fifo("dev/initctl", 0o600),
		dir("etc", 0o755),
		withOwner(reg("etc/hosts", 0o644, "127.0.0.1 localhost\n"), 1000, 100),
		reg("etc/empty", 0o600, ""),
		dir("tmp", 0o1777),
		dir("usr", 0o755),
		dir("usr/bin", 0o755),
		withXattrs(reg("usr/bin/ping", 0o2755, "ping"), "security.capability", "\x01\x00\x00\x02", "user.b", "2", "user.a", "1"),
		reg(long, 0o644, strings.Repeat("0123456789abcdef", 100)),
		symlink("lib", "/usr/lib"),
	}
}

func writeAll(t testing.TB, w Writer, items []item) {
	t.Helper()
	for _, it := range items {
		var body io.Reader
		if it.e.Typeflag == tar.TypeReg {
			body = strings.NewReader(it.body)
		}
		if err := w.WriteEntry(it.e, body); err != nil {
			t.Fatalf("WriteEntry(%q): %v", it.e.Name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func cpioBytes(t testing.TB, items []item, opts ...Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	writeAll(t, NewCpioWriter(&buf, opts...), items)
	return buf.Bytes()
}

func tarBytes(t testing.TB, items []item, opts ...Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	writeAll(t, NewTarWriter(&buf, opts...), items)
	return buf.Bytes()
}

// readItem is what a reader returned for one entry.
type readItem struct {
	hdr  *tar.Header
	body string
}

func readCpio(t testing.TB, data []byte) []readItem {
	t.Helper()
	items, err := readCpioErr(data)
	if err != nil {
		t.Fatalf("reading cpio: %v", err)
	}
	return items
}

func readCpioErr(data []byte) ([]readItem, error) {
	r := NewCpioReader(bytes.NewReader(data))
	var out []readItem
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		body, err := io.ReadAll(r)
		if err != nil {
			return out, err
		}
		out = append(out, readItem{h, string(body)})
	}
}

func readTar(t testing.TB, data []byte) []readItem {
	t.Helper()
	r := tar.NewReader(bytes.NewReader(data))
	var out []readItem
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		body, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("reading tar body of %q: %v", h.Name, err)
		}
		out = append(out, readItem{h, string(body)})
	}
}

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Errorf("output differs from %s at byte %d (got %d bytes, want %d); run with -update if the change is intended", path, i, len(got), len(want))
	}
}
