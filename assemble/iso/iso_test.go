package iso

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-os/kiln/internal/testenv"
)

func testFiles() []File {
	loader := bytes.Repeat([]byte{0xEE}, 4096)
	return []File{
		{Path: "BOOT/KERNEL", Size: 100000, Body: bytes.NewReader(bytes.Repeat([]byte("K"), 100000))},
		{Path: "BOOT/INITRD.IMG", Data: []byte("initrd")},
		{Path: "ISOLINUX/ISOLINUX.BIN", Data: loader},
		{Path: "ISOLINUX/ISOLINUX.CFG", Data: []byte("DEFAULT kiln\n")},
		{Path: "BOOT/EFIBOOT.IMG", Data: bytes.Repeat([]byte{0xFA}, 3*SectorSize)},
		{Path: "README.TXT", Data: nil},
	}
}

func testOptions() Options {
	// A date long past: xorriso, like ls, prints the year (which TestImage checks) only for a
	// date more than six months from now.
	return Options{
		VolumeID: "KILN_TEST", ModTime: time.Date(2024, 5, 6, 11, 22, 33, 0, time.UTC), Seed: []byte("seed"),
		Boot: []Boot{
			{Platform: PlatformBIOS, Path: "ISOLINUX/ISOLINUX.BIN", LoadSectors: 4, InfoTable: true},
			{Platform: PlatformEFI, Path: "BOOT/EFIBOOT.IMG"},
		},
		MBR: &MBR{Code: bytes.Repeat([]byte{0x90}, 440), BootFile: "ISOLINUX/ISOLINUX.BIN", EFIImage: "BOOT/EFIBOOT.IMG"},
	}
}

func write(t *testing.T, opt Options, files []File) (string, *Image, []byte) {
	t.Helper()
	im, err := New(opt, files)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	n, err := im.WriteTo(&b)
	if err != nil {
		t.Fatal(err)
	}
	if n != im.Size() || int64(b.Len()) != im.Size() {
		t.Fatalf("wrote %d bytes, Size says %d", n, im.Size())
	}
	p := filepath.Join(t.TempDir(), "test.iso")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, im, b.Bytes()
}

// xorriso reads the image back: its files, its El Torito catalog; the boot information table
// and the hybrid MBR hold what ISOLINUX and a BIOS read.
func TestImage(t *testing.T) {
	files := testFiles()
	p, im, img := write(t, testOptions(), files)
	le := binary.LittleEndian

	loaderLBA := im.LBA("ISOLINUX/ISOLINUX.BIN")
	loader := img[loaderLBA*SectorSize : loaderLBA*SectorSize+4096]
	if le.Uint32(loader[8:]) != 16 || int64(le.Uint32(loader[12:])) != loaderLBA || le.Uint32(loader[16:]) != 4096 {
		t.Errorf("boot information table: %x", loader[8:24])
	}
	var sum uint32
	for i := 64; i < len(loader); i += 4 {
		sum += le.Uint32(loader[i:])
	}
	if le.Uint32(loader[20:]) != sum {
		t.Error("boot information table checksum")
	}
	if int64(le.Uint32(img[432:])) != loaderLBA*4 || img[510] != 0x55 || img[446] != 0x80 || img[450] != 0x17 || img[466] != 0xEF {
		t.Errorf("hybrid MBR: %x", img[432:512])
	}
	if im.Size()%(1<<20) != 0 {
		t.Errorf("a hybrid image of %d bytes is not whole MiBs", im.Size())
	}

	again := testFiles()
	_, _, img2 := write(t, testOptions(), again)
	if !bytes.Equal(img, img2) {
		t.Error("two writes differ")
	}

	testenv.NeedTool(t, "xorriso", "xorriso")
	out, err := exec.Command("xorriso", "-indev", p, "-report_el_torito", "plain", "-find", "/", "-exec", "lsdl").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	for _, want := range []string{"El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4", "El Torito boot img :   2  UEFI  y   none  0x0000  0x00     12",
		"El Torito img opts :   1  boot-info-table", "'/ISOLINUX/ISOLINUX.CFG'", "'/README.TXT'", "Volume id    : 'KILN_TEST'",
		"100000 May  6  2024 '/BOOT/KERNEL'"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("xorriso lacks %q:\n%s", want, out)
		}
	}
	dir := t.TempDir()
	if out, err := exec.Command("xorriso", "-osirrox", "on", "-indev", p, "-extract", "/", dir).CombinedOutput(); err != nil {
		t.Fatalf("xorriso -extract: %v\n%s", err, out)
	}
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(dir, strings.ToLower(f.Path)))
		if err != nil {
			got, err = os.ReadFile(filepath.Join(dir, f.Path))
		}
		want := f.Data
		if f.Path == "BOOT/KERNEL" {
			want = bytes.Repeat([]byte("K"), 100000)
		}
		if f.Path == "ISOLINUX/ISOLINUX.BIN" {
			want = loader
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes read back, want %d (%v)", f.Path, len(got), len(want), err)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opt   Options
		files []File
		want  string
	}{
		{"volume ID", Options{VolumeID: "kiln"}, nil, `volume ID "kiln"`},
		{"lower case", Options{}, []File{{Path: "boot/kernel"}}, "file name \"kernel\""},
		{"long name", Options{}, []File{{Path: "VERYLONGNAME"}}, "8.3 names"},
		{"dotted folder", Options{}, []File{{Path: "A.B/C"}}, "folder name"},
		{"twice", Options{}, []File{{Path: "A"}, {Path: "A"}}, "appears twice"},
		{"file and folder", Options{}, []File{{Path: "A"}, {Path: "A/B"}}, "is a file and a folder"},
		{"no body", Options{}, []File{{Path: "A", Size: 3}}, "a body for them"},
		{"boot missing", Options{Boot: []Boot{{Path: "NOPE"}}}, nil, "boot image NOPE is not a file"},
		{"info table streamed", Options{Boot: []Boot{{Path: "A", InfoTable: true}}}, []File{{Path: "A", Size: 100, Body: bytes.NewReader(make([]byte, 100))}}, "needs its bytes"},
		{"short MBR", Options{MBR: &MBR{Code: make([]byte, 10)}}, nil, "MBR code of 10 bytes"},
		{"catalog full", Options{Boot: make([]Boot, 40)}, nil, "40 boot entries; one catalog sector holds 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opt, tc.files); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
