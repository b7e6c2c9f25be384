package archive

import (
	"archive/tar"
	"bytes"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestTarEntryTypes(t *testing.T) {
	long := strings.Repeat("d/", 60) + "f" // 121 bytes: USTAR splits it into prefix and name
	longer := strings.Repeat("x", 120)     // no slash to split at: needs PAX
	tests := []struct {
		name   string
		items  []item // the last one is checked
		want   tar.Header
		body   string
		format tar.Format
	}{
		{"directory", []item{dir("etc", 0o755)},
			tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755}, "", tar.FormatUSTAR},
		{"sticky directory", []item{dir("tmp", 0o1777)},
			tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}, "", tar.FormatUSTAR},
		{"regular file, owner names dropped", []item{withOwner(reg("etc/hosts", 0o644, "hi"), 1000, 100)},
			tar.Header{Typeflag: tar.TypeReg, Name: "etc/hosts", Mode: 0o644, Uid: 1000, Gid: 100, Size: 2}, "hi", tar.FormatUSTAR},
		{"setuid file, type bits in Mode ignored", []item{reg("su", 0o100000|0o4755, "x")},
			tar.Header{Typeflag: tar.TypeReg, Name: "su", Mode: 0o4755, Size: 1}, "x", tar.FormatUSTAR},
		{"empty file", []item{reg("e", 0o600, "")},
			tar.Header{Typeflag: tar.TypeReg, Name: "e", Mode: 0o600}, "", tar.FormatUSTAR},
		{"hard link", []item{withLinks(reg("a", 0o755, "abc"), 1), hardlink("b", "a")},
			tar.Header{Typeflag: tar.TypeLink, Name: "b", Linkname: "a"}, "", tar.FormatUSTAR},
		{"symlink", []item{symlink("bin/sh", "busybox")},
			tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/sh", Linkname: "busybox", Mode: 0o777}, "", tar.FormatUSTAR},
		{"char device", []item{device(tar.TypeChar, "dev/console", 0o600, 5, 1)},
			tar.Header{Typeflag: tar.TypeChar, Name: "dev/console", Mode: 0o600, Devmajor: 5, Devminor: 1}, "", tar.FormatUSTAR},
		{"block device", []item{device(tar.TypeBlock, "dev/vda", 0o660, 254, 16)},
			tar.Header{Typeflag: tar.TypeBlock, Name: "dev/vda", Mode: 0o660, Devmajor: 254, Devminor: 16}, "", tar.FormatUSTAR},
		{"fifo", []item{fifo("run/initctl", 0o600)},
			tar.Header{Typeflag: tar.TypeFifo, Name: "run/initctl", Mode: 0o600}, "", tar.FormatUSTAR},
		{"long name split by USTAR", []item{reg(long, 0o644, "")},
			tar.Header{Typeflag: tar.TypeReg, Name: long, Mode: 0o644}, "", tar.FormatUSTAR},
		{"long name needs PAX", []item{reg(longer, 0o644, "")},
			tar.Header{Typeflag: tar.TypeReg, Name: longer, Mode: 0o644}, "", tar.FormatPAX},
		{"big uid needs PAX", []item{withOwner(reg("u", 0o644, ""), 1<<22, 0)},
			tar.Header{Typeflag: tar.TypeReg, Name: "u", Mode: 0o644, Uid: 1 << 22}, "", tar.FormatPAX},
		{"xattrs need PAX", []item{withXattrs(reg("ping", 0o755, "p"), "security.capability", "\x01\x02")},
			tar.Header{Typeflag: tar.TypeReg, Name: "ping", Mode: 0o755, Size: 1,
				PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "\x01\x02"}}, "p", tar.FormatPAX},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readTar(t, tarBytes(t, tt.items, WithModTime(testEpoch)))
			if len(got) != len(tt.items) {
				t.Fatalf("read %d entries, wrote %d", len(got), len(tt.items))
			}
			h := got[len(got)-1].hdr
			w := tt.want
			if h.Typeflag != w.Typeflag || h.Name != w.Name || h.Mode != w.Mode || h.Uid != w.Uid || h.Gid != w.Gid ||
				h.Size != w.Size || h.Linkname != w.Linkname || h.Devmajor != w.Devmajor || h.Devminor != w.Devminor {
				t.Errorf("got  %+v\nwant %+v", *h, w)
			}
			if !h.ModTime.Equal(testEpoch) || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() || h.Uname != "" || h.Gname != "" {
				t.Errorf("not normalised: mtime %v atime %v ctime %v uname %q gname %q", h.ModTime, h.AccessTime, h.ChangeTime, h.Uname, h.Gname)
			}
			if h.Format != tt.format {
				t.Errorf("format %v, want %v", h.Format, tt.format)
			}
			for k, v := range w.PAXRecords {
				if h.PAXRecords[k] != v {
					t.Errorf("PAX record %q = %q, want %q", k, h.PAXRecords[k], v)
				}
			}
			if got[len(got)-1].body != tt.body {
				t.Errorf("body %q, want %q", got[len(got)-1].body, tt.body)
			}
		})
	}
}

// TestTarXattrOrder checks that PAX records come out sorted whatever the map order, and that
// PAX records other than xattrs are dropped.
func TestTarXattrOrder(t *testing.T) {
	it := reg("f", 0o644, "")
	it.e.PAXRecords = map[string]string{"comment": "drop me", "mtime": "12.5", "LIBARCHIVE.creationtime": "1"}
	keys := []string{}
	for i := range 20 {
		k := "user.k" + strconv.Itoa(i)
		it.e.PAXRecords[paxXattrPrefix+k] = "v"
		keys = append(keys, paxXattrPrefix+k)
	}
	it.e.Xattrs = map[string]string{"user.zz": "from Xattrs"}
	keys = append(keys, paxXattrPrefix+"user.zz")
	slices.Sort(keys)

	data := tarBytes(t, []item{it})
	// The PAX header's body follows the first 512-byte block: "NN key=value\n" records.
	size, err := strconv.ParseInt(strings.Trim(string(data[124:136]), "\x00 "), 8, 64)
	if err != nil || data[156] != tar.TypeXHeader {
		t.Fatalf("first block is not a PAX header (size %v, type %q)", err, data[156])
	}
	var order []string
	for _, line := range strings.Split(string(data[512:512+size]), "\n") {
		if _, rec, ok := strings.Cut(line, " "); ok {
			k, _, _ := strings.Cut(rec, "=")
			order = append(order, k)
		}
	}
	if !slices.Equal(order, keys) {
		t.Errorf("PAX records %q\nwant %q", order, keys)
	}
	h := readTar(t, data)[0].hdr
	if got := slices.Sorted(maps.Keys(h.PAXRecords)); !slices.Equal(got, keys) {
		t.Errorf("read back PAX records %q", got)
	}
	if !h.ModTime.Equal(time.Unix(0, 0)) {
		t.Errorf("mtime %v, want the epoch", h.ModTime)
	}
}

func TestTarWriterErrors(t *testing.T) {
	tests := []struct {
		name  string
		items []item // the last one must fail
		want  string
	}{
		{"absolute name", []item{reg("/etc/x", 0o644, "")}, "is absolute"},
		{"dot-slash name", []item{reg("./etc", 0o644, "")}, "not clean"},
		{"trailing slash", []item{dir("etc/", 0o755)}, "not clean"},
		{"dot-dot inside", []item{reg("a/../../b", 0o644, "")}, "not clean"},
		{"dot-dot", []item{reg("../b", 0o644, "")}, "leaves the archive root"},
		{"NUL in name", []item{reg("a\x00", 0o644, "")}, "NUL"},
		{"short body", []item{{e: reg("f", 0o644, "abcd").e, body: "abc"}}, `entry "f": body has 3 bytes, header says 4`},
		{"long body", []item{{e: reg("f", 0o644, "").e, body: "a"}}, "body is longer than the 0 bytes"},
		{"unsupported type", []item{{e: Entry{Header: &tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "g"}}}}, "unsupported type"},
		{"link to unknown", []item{hardlink("b", "a")}, `"a" was not written earlier`},
		{"link to directory", []item{dir("d", 0o755), hardlink("b", "d")}, "not written earlier"},
		{"empty symlink", []item{symlink("s", "")}, "symlink without a target"},
		{"empty xattr name", []item{withXattrs(reg("f", 0o644, ""), "", "v")}, "empty name"},
		{"negative size", []item{{e: Entry{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "n", Size: -1}}}}, "negative size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewTarWriter(io.Discard)
			for i, it := range tt.items {
				err := w.WriteEntry(it.e, strings.NewReader(it.body))
				if i < len(tt.items)-1 {
					if err != nil {
						t.Fatalf("entry %d: %v", i, err)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.want)
				}
				if !strings.Contains(err.Error(), strconv.Quote(it.e.Name)) {
					t.Errorf("error %q does not name the entry %q", err, it.e.Name)
				}
			}
		})
	}
}

func TestTarRoundTrip(t *testing.T) {
	items := sampleItems()
	got := readTar(t, tarBytes(t, items, WithModTime(testEpoch)))
	if len(got) != len(items) {
		t.Fatalf("read %d entries, wrote %d", len(got), len(items))
	}
	for i, it := range items {
		h, e := got[i].hdr, it.e
		name := e.Name
		if e.Typeflag == tar.TypeDir {
			name += "/"
		}
		if h.Name != name || h.Typeflag != e.Typeflag || h.Mode != e.Mode || h.Linkname != e.Linkname ||
			h.Uid != e.Uid || h.Gid != e.Gid || h.Devmajor != e.Devmajor || h.Devminor != e.Devminor || !h.ModTime.Equal(testEpoch) {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, *h, *e.Header)
		}
		if got[i].body != it.body {
			t.Errorf("entry %q: body %q, want %q", e.Name, got[i].body, it.body)
		}
	}
}

func TestTarGolden(t *testing.T) {
	golden(t, "small.tar", tarBytes(t, sampleItems(), WithModTime(testEpoch)))
}

func TestTarDeterministic(t *testing.T) {
	a := tarBytes(t, sampleItems(), WithModTime(testEpoch))
	b := tarBytes(t, sampleItems(), WithModTime(testEpoch))
	if !bytes.Equal(a, b) {
		t.Fatal("two runs differ")
	}
	if c := tarBytes(t, sampleItems()); bytes.Equal(a, c) {
		t.Fatal("the modification time does not reach the output")
	}
}

func TestTarCloseTwice(t *testing.T) {
	var buf bytes.Buffer
	w := NewTarWriter(&buf)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 1024 {
		t.Errorf("empty archive is %d bytes, want two zero blocks", buf.Len())
	}
	if err := w.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	if err := w.WriteEntry(dir("a", 0o755).e, nil); err == nil {
		t.Error("WriteEntry after Close succeeded")
	}
}
