package fatimg

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-os/kiln/internal/testenv"
)

// pattern is n bytes that differ from position to position, so a misplaced cluster shows.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i/7) ^ seed
	}
	return b
}

func volumeFile(t *testing.T, opt Options, entries []Entry) (string, *Volume) {
	t.Helper()
	v, err := New(opt, entries)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "vol.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := v.WriteTo(f)
	if err != nil {
		t.Fatal(err)
	}
	if n != v.Size() {
		t.Fatalf("wrote %d bytes, Size says %d", n, v.Size())
	}
	return p, v
}

// Volumes of every FAT type, with folders, long names and files over many clusters, are
// clean to dosfstools and read back byte for byte by mtools.
func TestVolumeReadBack(t *testing.T) {
	testenv.NeedTool(t, "fsck.fat", "dosfstools")
	testenv.NeedTool(t, "mcopy", "mtools")
	files := map[string][]byte{
		"EFI/BOOT/BOOTX64.EFI":     pattern(300_000, 1),
		"EFI/BOOT/grub.cfg":        []byte("set timeout=0\n"),
		"loader/entries/kiln.conf": []byte("title kiln\n"),
		"kiln/a file with spaces":  pattern(4096, 2),
		"kiln/empty":               nil,
		"kiln/Very Long Name Of A File That Needs Several Entries.txt": pattern(10, 3),
	}
	for _, tc := range []struct {
		name  string
		opt   Options
		typ   string
		bytes int64
	}{
		{"FAT12 smallest", Options{Label: "KILN"}, "12 bit", 0},
		{"FAT16 sized", Options{Label: "ESP", Size: 64 << 20}, "16 bit", 64 << 20},
		{"FAT32 smallest", Options{Bits: 32, Label: "EFI-SYSTEM"}, "32 bit", 0},
		{"FAT32 sized", Options{Bits: 32, Size: 300 << 20, HiddenSectors: 2048}, "32 bit", 300 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var entries []Entry
			for p, b := range files {
				entries = append(entries, Entry{Path: p, Size: int64(len(b)), Body: bytes.NewReader(b)})
			}
			entries = append(entries, Entry{Path: "empty-folder", Dir: true})
			opt := tc.opt
			opt.ModTime = time.Date(2026, 12, 2, 10, 20, 30, 0, time.UTC)
			img, v := volumeFile(t, opt, entries)
			if tc.bytes != 0 && v.Size() != tc.bytes {
				t.Errorf("size %d, want %d", v.Size(), tc.bytes)
			}
			if got := out(t, "fsck.fat", "-n", "-v", img); !strings.Contains(got, tc.typ+" entries") {
				t.Errorf("fsck.fat:\n%s", got)
			}
			dir := t.TempDir()
			out(t, "mcopy", "-s", "-n", "-i", img, "::", dir)
			for p, want := range files {
				got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: %d bytes read back, want %d (%v)", p, len(got), len(want), err)
				}
			}
			if st, err := os.Stat(filepath.Join(dir, "empty-folder")); err != nil || !st.IsDir() {
				t.Errorf("empty-folder: %v", err)
			}
			if list := out(t, "mdir", "-i", img, "::EFI/BOOT"); !strings.Contains(list, "2026-12-02") {
				t.Errorf("mdir shows no 2026-12-02 time stamp:\n%s", list)
			}
			if opt.Label != "" {
				if got := out(t, "mlabel", "-s", "-i", img, "::"); !strings.Contains(got, strings.ToUpper(opt.Label)) {
					t.Errorf("mlabel: %q", got)
				}
			}
		})
	}
}

// The same entries give the same bytes, in any order; another file's size gives others.
func TestVolumeReproducible(t *testing.T) {
	sum := func(entries []Entry) [32]byte {
		v, err := New(Options{Bits: 32, Label: "ESP"}, entries)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := v.WriteTo(h); err != nil {
			t.Fatal(err)
		}
		return [32]byte(h.Sum(nil))
	}
	mk := func(order []string, size int) []Entry {
		var e []Entry
		for _, p := range order {
			e = append(e, Entry{Path: p, Size: int64(size), Body: bytes.NewReader(pattern(size, 9))})
		}
		return e
	}
	a := sum(mk([]string{"a/x", "b/y", "c"}, 5000))
	b := sum(mk([]string{"c", "b/y", "a/x"}, 5000))
	c := sum(mk([]string{"c", "b/y", "a/x"}, 5001))
	if a != b {
		t.Error("the order of the entries changed the bytes")
	}
	if a == c {
		t.Error("another size gave the same bytes")
	}
}

func TestVolumeErrors(t *testing.T) {
	body := func(n int) Entry { return Entry{Path: "f", Size: int64(n), Body: bytes.NewReader(make([]byte, n))} }
	big := body(2 << 20)
	for _, tc := range []struct {
		name    string
		opt     Options
		entries []Entry
		want    string
	}{
		{"too small", Options{Size: 1 << 20}, []Entry{big}, "a 1024 KiB FAT12 volume holds"},
		{"odd size", Options{Size: 1000}, nil, "not a whole number of 512-byte sectors"},
		{"FAT13", Options{Bits: 13}, nil, "FAT13: want 12, 16 or 32"},
		{"FAT16 too small", Options{Bits: 16, Size: 1 << 20}, nil, "make no FAT16 volume"},
		{"file and folder", Options{}, []Entry{{Path: "a"}, {Path: "a/b"}}, `"a" is a file and a folder`},
		{"case", Options{}, []Entry{{Path: "EFI/boot"}, {Path: "efi/BOOT"}}, "appears twice"},
		{"unclean", Options{}, []Entry{{Path: "a/../b"}}, "not a clean relative path"},
		{"bad name", Options{}, []Entry{{Path: "a/b:c"}}, "FAT file names cannot hold"},
		{"no body", Options{}, []Entry{{Path: "a", Size: 3}}, "3 bytes and no body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opt, tc.entries)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// A body shorter than its size fails the write.
	v, err := New(Options{}, []Entry{{Path: "a", Size: 10, Body: strings.NewReader("abc")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteTo(io.Discard); err == nil || !strings.Contains(err.Error(), "got 3 bytes, want 10") {
		t.Errorf("short body: %v", err)
	}
}

func ExampleNew() {
	v, err := New(Options{Bits: 32, Label: "ESP"}, []Entry{{Path: "EFI/BOOT/BOOTX64.EFI", Size: 3, Body: strings.NewReader("abc")}})
	if err != nil {
		panic(err)
	}
	fmt.Println(v.Bits(), v.Size()>>20, "MiB")
	// Output: 32 32 MiB
}

// At every size, the cluster count is what readers derive from the geometry, and the FAT
// has an entry for each cluster (a reader refuses a volume otherwise).
func TestVolumeGeometry(t *testing.T) {
	for _, bits := range []int{0, 12, 16, 32} {
		for size := int64(1 << 20); size <= 600<<20; size = size*5/4/512*512 + 512*7 {
			v, err := New(Options{Bits: bits, Size: size}, nil)
			if err != nil {
				continue // a size this type cannot have
			}
			got := (v.totalSectors - v.reserved - v.rootSectors - 2*v.fatSectors) / v.spc
			if got != v.clusters || v.fatSectors*sectorSize*8/v.bits-2 < v.clusters {
				t.Errorf("FAT%d, %d bytes: %d clusters by the geometry, %d counted, FAT of %d sectors", v.bits, size, got, v.clusters, v.fatSectors)
			}
		}
	}
}

// A generated alias never takes the short name of another file in the folder.
func TestVolumeAliasCollision(t *testing.T) {
	testenv.NeedTool(t, "mtype", "mtools")
	files := map[string]string{"AB+C": "generated alias", "AB_C~1": "exact name"}
	var entries []Entry
	for n, b := range files {
		entries = append(entries, Entry{Path: n, Size: int64(len(b)), Body: strings.NewReader(b)})
	}
	img, _ := volumeFile(t, Options{}, entries)
	for n, want := range files {
		if got := out(t, "mtype", "-i", img, "::"+n); got != want {
			t.Errorf("%s: %q, want %q", n, got, want)
		}
	}
	if _, err := New(Options{Label: "bad label"}, nil); err == nil {
		t.Error("a bad label was accepted by New")
	}
}
