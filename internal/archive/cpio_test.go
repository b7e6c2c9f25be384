package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawCpio is one newc record as parsed by the test's own minimal parser.
type rawCpio struct {
	off  int
	f    cpioHeader
	name string
	data string
}

// parseRawCpio splits a single newc archive into records, checking alignment as it goes.
func parseRawCpio(t *testing.T, b []byte) []rawCpio {
	t.Helper()
	var out []rawCpio
	off := 0
	for {
		if off%4 != 0 {
			t.Fatalf("record at unaligned offset %d", off)
		}
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at offset %d", off)
		}
		var v [13]uint32
		for i := range v {
			s := string(b[off+6+8*i : off+14+8*i])
			if strings.ToUpper(s) != s {
				t.Errorf("field %d at %d is not upper-case hex: %q", i, off, s)
			}
			n, err := strconv.ParseUint(s, 16, 32)
			if err != nil {
				t.Fatalf("field %d at %d: %v", i, off, err)
			}
			v[i] = uint32(n)
		}
		f := cpioHeader{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12]}
		nameEnd := off + 110 + int(f.namesize)
		if b[nameEnd-1] != 0 {
			t.Fatalf("name at %d not NUL-terminated", off)
		}
		name := string(b[off+110 : nameEnd-1])
		dataOff := (nameEnd + 3) &^ 3
		// The kernel computes the same with N_ALIGN: ((namesize+1)&~3)+2 bytes after the header.
		if want := off + 110 + ((int(f.namesize)+1)&^3 + 2); dataOff != want {
			t.Fatalf("data of %q at %d, kernel expects %d", name, dataOff, want)
		}
		for _, c := range b[nameEnd:dataOff] {
			if c != 0 {
				t.Fatalf("non-zero name padding at %d", off)
			}
		}
		data := string(b[dataOff : dataOff+int(f.filesize)])
		out = append(out, rawCpio{off, f, name, data})
		off = (dataOff + int(f.filesize) + 3) &^ 3
		if name == "TRAILER!!!" {
			if len(b)%512 != 0 {
				t.Errorf("archive length %d is not a multiple of 512", len(b))
			}
			for i, c := range b[off:] {
				if c != 0 {
					t.Fatalf("non-zero byte after trailer at %d", off+i)
				}
			}
			return out
		}
	}
}

func TestCpioEntryTypes(t *testing.T) {
	mtime := uint32(testEpoch.Unix())
	tests := []struct {
		name  string
		items []item // the last one is checked
		want  cpioHeader
		data  string
	}{
		{"directory", []item{dir("etc", 0o755)},
			cpioHeader{ino: 1, mode: 0o40755, nlink: 2, mtime: mtime}, ""},
		{"sticky directory", []item{dir("tmp", 0o1777)},
			cpioHeader{ino: 1, mode: 0o41777, nlink: 2, mtime: mtime}, ""},
		{"regular file", []item{withOwner(reg("a", 0o644, "hello"), 1000, 100)},
			cpioHeader{ino: 1, mode: 0o100644, uid: 1000, gid: 100, nlink: 1, mtime: mtime, filesize: 5}, "hello"},
		{"setuid file", []item{reg("su", 0o4755, "x")},
			cpioHeader{ino: 1, mode: 0o104755, nlink: 1, mtime: mtime, filesize: 1}, "x"},
		{"setgid file, type bits in Mode ignored", []item{reg("p", 0o100000|0o2711, "")},
			cpioHeader{ino: 1, mode: 0o102711, nlink: 1, mtime: mtime}, ""},
		{"empty file", []item{reg("e", 0o600, "")},
			cpioHeader{ino: 1, mode: 0o100600, nlink: 1, mtime: mtime}, ""},
		{"second link of three", []item{withLinks(reg("f", 0o755, "abc"), 2), hardlink("g", "f"), hardlink("h", "f")},
			cpioHeader{ino: 1, mode: 0o100755, nlink: 3, mtime: mtime}, ""},
		{"hard link", []item{dir("d", 0o755), withOwner(withLinks(reg("d/f", 0o750, "abc"), 1), 7, 8), hardlink("g", "d/f")},
			cpioHeader{ino: 2, mode: 0o100750, uid: 7, gid: 8, nlink: 2, mtime: mtime}, ""},
		{"symlink", []item{symlink("bin/sh", "busybox")},
			cpioHeader{ino: 1, mode: 0o120777, nlink: 1, mtime: mtime, filesize: 7}, "busybox"},
		{"char device", []item{device(tar.TypeChar, "dev/console", 0o600, 5, 1)},
			cpioHeader{ino: 1, mode: 0o20600, nlink: 1, mtime: mtime, rdevmajor: 5, rdevminor: 1}, ""},
		{"block device", []item{device(tar.TypeBlock, "dev/vda", 0o660, 254, 16)},
			cpioHeader{ino: 1, mode: 0o60660, nlink: 1, mtime: mtime, rdevmajor: 254, rdevminor: 16}, ""},
		{"hard-linked device", []item{withLinks(device(tar.TypeChar, "null", 0o666, 1, 3), 1), hardlink("null2", "null")},
			cpioHeader{ino: 1, mode: 0o20666, nlink: 2, mtime: mtime, rdevmajor: 1, rdevminor: 3}, ""},
		{"fifo", []item{fifo("run/initctl", 0o600)},
			cpioHeader{ino: 1, mode: 0o10600, nlink: 1, mtime: mtime}, ""},
		{"xattrs dropped", []item{withXattrs(reg("ping", 0o755, "p"), "security.capability", "x")},
			cpioHeader{ino: 1, mode: 0o100755, nlink: 1, mtime: mtime, filesize: 1}, "p"},
		{"inodes count up", []item{dir("a", 0o755), dir("a/b", 0o755), reg("a/b/c", 0o644, "")},
			cpioHeader{ino: 3, mode: 0o100644, nlink: 1, mtime: mtime}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := parseRawCpio(t, cpioBytes(t, tt.items, WithModTime(testEpoch)))
			if len(recs) != len(tt.items)+1 {
				t.Fatalf("got %d records, want %d entries and a trailer", len(recs), len(tt.items))
			}
			got := recs[len(recs)-2]
			last := tt.items[len(tt.items)-1].e
			tt.want.namesize = uint32(len(last.Name) + 1)
			if got.name != last.Name || got.f != tt.want || got.data != tt.data {
				t.Errorf("got %q %+v data %q\nwant %q %+v data %q", got.name, got.f, got.data, last.Name, tt.want, tt.data)
			}
			for _, r := range recs[:len(recs)-1] {
				if r.f.ino == got.f.ino && r.f.nlink != got.f.nlink {
					t.Errorf("%q and %q share inode %d but have nlink %d and %d", r.name, got.name, r.f.ino, r.f.nlink, got.f.nlink)
				}
			}
			trailer := recs[len(recs)-1]
			if want := (cpioHeader{nlink: 1, namesize: 11}); trailer.name != "TRAILER!!!" || trailer.f != want {
				t.Errorf("trailer %q %+v, want %+v", trailer.name, trailer.f, want)
			}
		})
	}
}

func TestCpioDroppedXattrs(t *testing.T) {
	var buf bytes.Buffer
	w := NewCpioWriter(&buf)
	it := withXattrs(reg("a", 0o644, "x"), "user.a", "1", "user.b", "2")
	it.e.Xattrs = map[string]string{"user.a": "1", "user.c": "3"}
	writeAll(t, w, []item{it, reg("b", 0o644, "")})
	if got := w.(*CpioWriter).DroppedXattrs(); got != 3 {
		t.Errorf("DroppedXattrs = %d, want 3 (user.a, user.b, user.c)", got)
	}
}

func TestCpioModTimeDefault(t *testing.T) {
	recs := parseRawCpio(t, cpioBytes(t, []item{dir("a", 0o755)}))
	if recs[0].f.mtime != 0 {
		t.Errorf("default mtime = %d, want 0", recs[0].f.mtime)
	}
}

func TestCpioWriterErrors(t *testing.T) {
	big := reg("big", 0o644, "")
	big.e.Size = 1 << 32
	tests := []struct {
		name  string
		opts  []Option
		items []item // the last one must fail
		want  string
	}{
		{"absolute name", nil, []item{reg("/etc/x", 0o644, "")}, `"/etc/x" is absolute`},
		{"dot-slash name", nil, []item{reg("./etc", 0o644, "")}, "not clean"},
		{"trailing slash", nil, []item{dir("etc/", 0o755)}, "not clean"},
		{"dot-dot", nil, []item{reg("../x", 0o644, "")}, "leaves the archive root"},
		{"root", nil, []item{dir(".", 0o755)}, "archive root itself"},
		{"empty name", nil, []item{reg("", 0o644, "")}, "empty name"},
		{"NUL in name", nil, []item{reg("a\x00b", 0o644, "")}, "NUL"},
		{"name too long", nil, []item{reg(strings.Repeat("a", 4096), 0o644, "")}, "at most 4095"},
		{"short body", nil, []item{{e: reg("f", 0o644, "abcd").e, body: "ab"}}, `entry "f": body has 2 bytes, header says 4`},
		{"long body", nil, []item{{e: reg("f", 0o644, "ab").e, body: "abcd"}}, "body is longer than the 2 bytes"},
		{"too big", nil, []item{big}, "does not fit newc"},
		{"unsupported type", nil, []item{{e: Entry{Header: &tar.Header{Typeflag: tar.TypeGNUSparse, Name: "s"}}}}, "unsupported type"},
		{"link to unknown", nil, []item{hardlink("b", "a")}, `"a" was not written earlier`},
		{"link without Links", nil, []item{reg("a", 0o644, ""), hardlink("b", "a")}, `"a" was not written earlier in this archive as a file that announced hard links`},
		{"link to a name written again without Links", nil, []item{withLinks(reg("a", 0o644, ""), 1), reg("a", 0o644, "new"), hardlink("b", "a")},
			`"a" was not written earlier in this archive as a file that announced hard links`},
		{"one link too many", nil, []item{withLinks(reg("a", 0o644, ""), 1), hardlink("b", "a"), hardlink("c", "a")}, "announced 1 hard links; this is one more"},
		{"link to directory", nil, []item{dir("d", 0o755), hardlink("b", "d")}, "not written earlier"},
		{"links on a symlink", nil, []item{withLinks(symlink("s", "x"), 1)}, "only regular files, devices and FIFOs"},
		{"links on a link", nil, []item{withLinks(reg("a", 0o644, ""), 2), withLinks(hardlink("b", "a"), 1)}, "cannot announce Links"},
		{"empty symlink", nil, []item{symlink("s", "")}, "symlink without a target"},
		{"long symlink", nil, []item{symlink("s", strings.Repeat("x", 4096))}, "at most 4095"},
		{"device major", nil, []item{device(tar.TypeChar, "c", 0o600, 4096, 0)}, "does not fit the kernel's encoding"},
		{"negative uid", nil, []item{withOwner(reg("a", 0o644, ""), -1, 0)}, "does not fit newc"},
		{"time before 1970", []Option{WithModTime(time.Unix(-1, 0))}, []item{dir("a", 0o755)}, "1970 to 2106"},
		{"time after 2106", []Option{WithModTime(time.Unix(1<<32, 0))}, []item{dir("a", 0o755)}, "1970 to 2106"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewCpioWriter(io.Discard, tt.opts...)
			for i, it := range tt.items {
				var body io.Reader
				if it.e.Typeflag == tar.TypeReg {
					body = strings.NewReader(it.body)
				}
				err := w.WriteEntry(it.e, body)
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

func TestCpioNilBody(t *testing.T) {
	w := NewCpioWriter(io.Discard)
	if err := w.WriteEntry(reg("a", 0o644, "xy").e, nil); err == nil || !strings.Contains(err.Error(), "no body") {
		t.Fatalf("error = %v, want no body", err)
	}
	if err := w.WriteEntry(reg("b", 0o644, "").e, nil); err == nil || !strings.Contains(err.Error(), "already failed") {
		t.Fatalf("after a failed body the writer must refuse: %v", err)
	}
	w = NewCpioWriter(io.Discard)
	if err := w.WriteEntry(reg("a", 0o644, "").e, nil); err != nil {
		t.Fatalf("empty file with nil body: %v", err)
	}
	if err := w.WriteEntry(dir("d", 0o755).e, strings.NewReader("ignored")); err != nil {
		t.Fatalf("directory with a body: %v", err)
	}
}

func TestCpioMissingLinksAtClose(t *testing.T) {
	var buf bytes.Buffer
	w := NewCpioWriter(&buf)
	for _, it := range []item{withLinks(reg("a", 0o644, ""), 2), hardlink("b", "a"), withLinks(reg("c", 0o644, ""), 1)} {
		if err := w.WriteEntry(it.e, strings.NewReader("")); err != nil {
			t.Fatal(err)
		}
	}
	err := w.Close()
	if err == nil || !strings.Contains(err.Error(), `2 announced hard links were not written: "a" (1 of 2), "c" (0 of 1)`) {
		t.Fatalf("Close error = %v", err)
	}
	if recs := parseRawCpio(t, buf.Bytes()); recs[len(recs)-1].name != "TRAILER!!!" {
		t.Error("no trailer after the error")
	}
	if err := w.Close(); err == nil {
		t.Error("second Close succeeded")
	}
}

// TestCpioRoundTrip writes every entry type and reads it back.
func TestCpioRoundTrip(t *testing.T) {
	items := sampleItems()
	got := readCpio(t, cpioBytes(t, items, WithModTime(testEpoch)))
	if len(got) != len(items) {
		t.Fatalf("read %d entries, wrote %d", len(got), len(items))
	}
	for i, it := range items {
		h, e := got[i].hdr, it.e
		want := tar.Header{
			Name: e.Name, Typeflag: e.Typeflag, Mode: e.Mode, Uid: e.Uid, Gid: e.Gid,
			ModTime: testEpoch, Linkname: e.Linkname, Devmajor: e.Devmajor, Devminor: e.Devminor,
		}
		if e.Typeflag == tar.TypeReg {
			want.Size = e.Size
		}
		if e.Typeflag == tar.TypeLink {
			// Links come back naming the first entry of the inode, and with its metadata.
			want.Linkname = "bin/busybox"
			want.Mode = 0o755
		}
		if !h.ModTime.Equal(want.ModTime) || h.Name != want.Name || h.Typeflag != want.Typeflag || h.Mode != want.Mode ||
			h.Uid != want.Uid || h.Gid != want.Gid || h.Linkname != want.Linkname || h.Size != want.Size ||
			h.Devmajor != want.Devmajor || h.Devminor != want.Devminor {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, *h, want)
		}
		if got[i].body != it.body {
			t.Errorf("entry %q: body %q, want %q", e.Name, got[i].body, it.body)
		}
	}
}

func TestCpioGolden(t *testing.T) {
	golden(t, "small.cpio", cpioBytes(t, sampleItems(), WithModTime(testEpoch)))
}

func TestCpioDeterministic(t *testing.T) {
	a := cpioBytes(t, sampleItems(), WithModTime(testEpoch))
	b := cpioBytes(t, sampleItems(), WithModTime(testEpoch))
	if !bytes.Equal(a, b) {
		t.Fatal("two runs differ")
	}
	if c := cpioBytes(t, sampleItems(), WithModTime(testEpoch.Add(time.Second))); bytes.Equal(a, c) {
		t.Fatal("the modification time does not reach the output")
	}
}

// TestCpioConcatenation reads two archives laid end to end with zero padding between them,
// as the kernel accepts, and checks that hard links do not cross the trailer.
func TestCpioConcatenation(t *testing.T) {
	first := cpioBytes(t, []item{dir("lib", 0o755), withLinks(reg("lib/a", 0o644, "A"), 1), hardlink("lib/b", "lib/a")})
	second := cpioBytes(t, []item{withLinks(reg("kernel/x", 0o644, "X"), 1), hardlink("kernel/y", "kernel/x")})
	data := append(append(append([]byte{}, first...), make([]byte, 1024)...), second...)
	got := readCpio(t, data)
	var names []string
	for _, it := range got {
		names = append(names, string(it.hdr.Typeflag)+":"+it.hdr.Name+">"+it.hdr.Linkname+"="+it.body)
	}
	want := []string{"5:lib>=", "0:lib/a>=A", "1:lib/b>lib/a=", "0:kernel/x>=X", "1:kernel/y>kernel/x="}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("got %q\nwant %q", names, want)
	}
	// Both archives number inodes from 1: the second "kernel/x" reuses inode 2 of "lib/a" and
	// must not be taken for a link to it, since the trailer resets the table.
	if recs := parseRawCpio(t, second); recs[0].f.ino != 1 {
		t.Errorf("second archive starts at inode %d", recs[0].f.ino)
	}
}

func TestCpioReaderPartialBodies(t *testing.T) {
	// Next skips unread data, including partly read bodies.
	data := cpioBytes(t, []item{reg("a", 0o644, "hello world"), reg("b", 0o644, "xyz")})
	r := NewCpioReader(bytes.NewReader(data))
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "hel" {
		t.Fatalf("read %q, %v", buf, err)
	}
	h, err := r.Next()
	if err != nil || h.Name != "b" {
		t.Fatalf("Next = %v, %v", h, err)
	}
	if body, err := io.ReadAll(r); err != nil || string(body) != "xyz" {
		t.Fatalf("body %q, %v", body, err)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next at end = %v, want io.EOF", err)
	}
}
