package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzCpioReader feeds arbitrary bytes to the reader. Seeds stay small: the fuzzer's input
// minimisation is quadratic in the input size, and multi-kilobyte seeds make it stall.
func FuzzCpioReader(f *testing.F) {
	var small []item
	for _, it := range sampleItems() {
		if len(it.body) < 100 {
			small = append(small, it)
		}
	}
	all := cpioBytes(f, small)
	f.Add(all) // every entry type
	one := cpioBytes(f, []item{withLinks(reg("a", 0o644, "x"), 1), hardlink("b", "a"), symlink("c", "a")})
	f.Add(one)
	f.Add(append(append(bytes.Clone(one), make([]byte, 8)...), one...)) // concatenation
	f.Add(one[:300])
	f.Add(bytes.ReplaceAll(one, []byte("070701"), []byte("070707")))
	f.Add([]byte{})
	f.Add([]byte("070701"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewCpioReader(bytes.NewReader(data))
		seen := map[string]bool{}
		var total int64
		for {
			h, err := r.Next()
			if errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "offset ") {
					t.Fatalf("error without ErrFormat or offset: %v", err)
				}
				if _, err2 := r.Next(); err2 == nil {
					t.Fatal("Next succeeded after an error")
				}
				return
			}
			if h.Name == "" || strings.IndexByte(h.Name, 0) >= 0 || len(h.Name) >= 4096 {
				t.Fatalf("bad name %q", h.Name)
			}
			if h.Typeflag == tar.TypeLink && !seen[h.Linkname] {
				t.Fatalf("link %q to %q, which was not returned before", h.Name, h.Linkname)
			}
			seen[h.Name] = true
			n, err := io.Copy(io.Discard, r)
			if err != nil {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("body error without ErrFormat: %v", err)
				}
				return
			}
			if n != h.Size {
				t.Fatalf("entry %q: read %d bytes, header says %d", h.Name, n, h.Size)
			}
			total += n
			if total > int64(len(data)) {
				t.Fatalf("read %d bytes of data from %d bytes of input", total, len(data))
			}
		}
	})
}

// fuzzEntry builds the entries for one fuzz case: the entry under test, preceded by a hard
// link target when it is a hard link.
func fuzzEntry(name string, typ byte, mode int64, uid int, link string, xkey, xval string, body []byte) []item {
	h := &tar.Header{Name: name, Typeflag: typ, Mode: mode, Uid: uid, Linkname: link, Size: int64(len(body))}
	if typ == tar.TypeChar || typ == tar.TypeBlock {
		h.Devmajor, h.Devminor = int64(uid&0xfff), mode&0xfffff
	}
	if xkey != "" {
		h.PAXRecords = map[string]string{paxXattrPrefix + xkey: xval}
	}
	it := item{e: Entry{Header: h}, body: string(body)}
	if typ == tar.TypeLink && checkName(link) == nil && link != name {
		return []item{withLinks(reg(link, 0o644, "target"), 1), it}
	}
	return []item{it}
}

// writeFuzz writes items to w; it reports false when the writer refused an entry, after
// checking that the refusal names the entry.
func writeFuzz(t *testing.T, w Writer, items []item) bool {
	for _, it := range items {
		err := w.WriteEntry(it.e, strings.NewReader(it.body))
		if err != nil {
			if !strings.Contains(err.Error(), it.e.Name) && !strings.Contains(err.Error(), "entry \"") {
				t.Fatalf("error does not name the entry: %v", err)
			}
			return false
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close after accepted entries: %v", err)
	}
	return true
}

func addRoundTripSeeds(f *testing.F) {
	f.Add("etc/hosts", byte(tar.TypeReg), int64(0o644), 0, "", "", "", []byte("127.0.0.1 localhost\n"))
	f.Add("usr/bin/ping", byte(tar.TypeReg), int64(0o4755), 1000, "", "security.capability", "\x01\x00", []byte("x"))
	f.Add("bin", byte(tar.TypeDir), int64(0o1777), 0, "", "", "", []byte(nil))
	f.Add("bin/sh", byte(tar.TypeSymlink), int64(0o777), 0, "busybox", "", "", []byte(nil))
	f.Add("bin/ls", byte(tar.TypeLink), int64(0), 0, "bin/busybox", "", "", []byte(nil))
	f.Add("dev/console", byte(tar.TypeChar), int64(0o600), 5, "", "", "", []byte(nil))
	f.Add("dev/vda", byte(tar.TypeBlock), int64(0o660), 254, "", "", "", []byte(nil))
	f.Add("run/fifo", byte(tar.TypeFifo), int64(0o600), 0, "", "", "", []byte(nil))
	f.Add("../escape", byte(tar.TypeReg), int64(0o644), 0, "", "", "", []byte(nil))
	f.Add(strings.Repeat("long/", 40)+"x", byte(tar.TypeReg), int64(0o644), 1<<30, "", "user.é", "ü", []byte("é"))
}

func FuzzTarRoundTrip(f *testing.F) {
	addRoundTripSeeds(f)
	f.Fuzz(func(t *testing.T, name string, typ byte, mode int64, uid int, link, xkey, xval string, body []byte) {
		items := fuzzEntry(name, typ, mode, uid, link, xkey, xval, body)
		var buf bytes.Buffer
		if !writeFuzz(t, NewTarWriter(&buf, WithModTime(testEpoch)), items) {
			return
		}
		got := readTar(t, buf.Bytes())
		if len(got) != len(items) {
			t.Fatalf("read %d entries, wrote %d", len(got), len(items))
		}
		h, e := got[len(got)-1].hdr, items[len(items)-1].e
		wantName := e.Name
		if e.Typeflag == tar.TypeDir {
			wantName += "/"
		}
		wantType := e.Typeflag
		if wantType == tar.TypeRegA { // normalised to TypeReg
			wantType = tar.TypeReg
		}
		if h.Name != wantName || h.Typeflag != wantType || h.Mode != e.Mode&0o7777 || h.Uid != e.Uid || !h.ModTime.Equal(testEpoch) {
			t.Fatalf("got %+v\nwrote %+v", *h, *e.Header)
		}
		if (wantType == tar.TypeSymlink || wantType == tar.TypeLink) && h.Linkname != e.Linkname {
			t.Fatalf("link %q, want %q", h.Linkname, e.Linkname)
		}
		if wantType == tar.TypeReg && got[len(got)-1].body != string(body) {
			t.Fatalf("body differs")
		}
		if xkey != "" && h.PAXRecords[paxXattrPrefix+xkey] != xval {
			t.Fatalf("xattr %q = %q, want %q", xkey, h.PAXRecords[paxXattrPrefix+xkey], xval)
		}
	})
}

func FuzzCpioRoundTrip(f *testing.F) {
	addRoundTripSeeds(f)
	f.Fuzz(func(t *testing.T, name string, typ byte, mode int64, uid int, link, xkey, xval string, body []byte) {
		items := fuzzEntry(name, typ, mode, uid, link, xkey, xval, body)
		var buf bytes.Buffer
		if !writeFuzz(t, NewCpioWriter(&buf, WithModTime(testEpoch)), items) {
			return
		}
		got := readCpio(t, buf.Bytes())
		if len(got) != len(items) {
			t.Fatalf("read %d entries, wrote %d", len(got), len(items))
		}
		h, e := got[len(got)-1].hdr, items[len(items)-1].e
		wantType, wantMode := e.Typeflag, e.Mode&0o7777
		switch wantType {
		case tar.TypeRegA: // normalised to TypeReg
			wantType = tar.TypeReg
		case tar.TypeLink:
			wantMode = 0o644 // the target's
		}
		if h.Name != e.Name || h.Typeflag != wantType || h.Mode != wantMode || !h.ModTime.Equal(testEpoch) {
			t.Fatalf("got %+v\nwrote %+v", *h, *e.Header)
		}
		if wantType != tar.TypeLink && h.Uid != e.Uid {
			t.Fatalf("uid %d, want %d", h.Uid, e.Uid)
		}
		if (wantType == tar.TypeSymlink || wantType == tar.TypeLink) && h.Linkname != e.Linkname {
			t.Fatalf("link %q, want %q", h.Linkname, e.Linkname)
		}
		if wantType == tar.TypeReg && got[len(got)-1].body != string(body) {
			t.Fatalf("body differs")
		}
	})
}
