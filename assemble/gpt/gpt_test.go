package gpt

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/internal/testenv"
)

func TestGUIDText(t *testing.T) {
	g, err := ParseGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	if err != nil {
		t.Fatal(err)
	}
	// The stored bytes of the ESP type, as the UEFI specification lists them.
	want := []byte{0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B}
	if !bytes.Equal(g[:], want) || g.String() != "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" {
		t.Errorf("%x %s", g[:], g)
	}
	for _, bad := range []string{"", "C12A7328F81F11D2BA4B00A0C93EC93B", "C12A7328-F81F-11D2-BA4B-00A0C93EC93G"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func disk(t *testing.T, d Disk) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, d); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func testDisk() Disk {
	return Disk{
		Seed:     []byte("sha256:1234"),
		BootCode: []byte{0xFA, 0xF4},
		Partitions: []Partition{
			{Name: "EFI system", Type: TypeESP, Size: 3 << 20, Body: bytes.NewReader(bytes.Repeat([]byte("E"), 3<<20))},
			{Name: "kiln-state", Type: TypeLinux, Attributes: AttrLegacyBIOSBootable, Size: 512, Body: strings.NewReader("short")},
		},
	}
}

// The tables are where they belong, their CRCs hold, the backup mirrors the primary, the
// partitions hold their content, and sgdisk finds nothing wrong.
func TestWrite(t *testing.T) {
	d := testDisk()
	img := disk(t, d)
	l, err := Plan(d)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(img)) != l.Sectors*SectorSize || len(img)%(1<<20) != 0 {
		t.Fatalf("%d bytes, plan says %d sectors", len(img), l.Sectors)
	}
	le := binary.LittleEndian
	sector := func(n int64) []byte { return img[n*SectorSize : (n+1)*SectorSize] }
	if mbr := sector(0); mbr[0] != 0xFA || mbr[450] != 0xEE || mbr[510] != 0x55 || mbr[511] != 0xAA {
		t.Errorf("protective MBR: %x", mbr[446:462])
	}
	last := l.Sectors - 1
	for _, hdrAt := range []int64{1, last} {
		h := append([]byte(nil), sector(hdrAt)[:headerBytes]...)
		if string(h[:8]) != "EFI PART" {
			t.Fatalf("no header at sector %d", hdrAt)
		}
		crc := le.Uint32(h[16:])
		le.PutUint32(h[16:], 0)
		if crc32.ChecksumIEEE(h) != crc {
			t.Errorf("header at %d: bad CRC", hdrAt)
		}
		at := int64(le.Uint64(h[72:]))
		table := img[at*SectorSize : (at+entrySecs)*SectorSize]
		if crc32.ChecksumIEEE(table) != le.Uint32(h[88:]) {
			t.Errorf("table of header %d: bad CRC", hdrAt)
		}
	}
	if start := l.Start[0] * SectorSize; !bytes.Equal(img[start:start+3<<20], bytes.Repeat([]byte("E"), 3<<20)) {
		t.Error("partition 1 does not hold its content")
	}
	if start := l.Start[1] * SectorSize; string(img[start:start+6]) != "short\x00" {
		t.Errorf("partition 2: %q", img[start:start+6])
	}
	if l.Start[0] != 2048 || l.Start[1] != 2048+3*2048 {
		t.Errorf("starts %v, want 1 MiB aligned", l.Start)
	}
	// The same disk again: the same bytes; another seed: other GUIDs.
	if again := disk(t, testDisk()); !bytes.Equal(img, again) {
		t.Error("a second write differs")
	}
	other := testDisk()
	other.Seed = []byte("sha256:5678")
	if l2, _ := Plan(other); l2.Disk == l.Disk || l2.GUIDs[0] == l.GUIDs[0] {
		t.Error("another seed gave the same GUIDs")
	}

	testenv.NeedTool(t, "sgdisk", "gdisk")
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sgdisk", "-v", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	out, err = exec.Command("sgdisk", "-p", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "EFI system") || !strings.Contains(string(out), "kiln-state") ||
		!strings.Contains(string(out), l.Disk.String()) {
		t.Errorf("sgdisk -p: %v\n%s", err, out)
	}
}

func TestPlanErrors(t *testing.T) {
	ok := Partition{Name: "p", Type: TypeLinux, Size: 512}
	for _, tc := range []struct {
		name string
		d    Disk
		want string
	}{
		{"none", Disk{Seed: []byte("s")}, "0 partitions"},
		{"no seed", Disk{Partitions: []Partition{ok}}, "no seed"},
		{"odd size", Disk{Seed: []byte("s"), Partitions: []Partition{{Size: 100}}}, "size 100 is not"},
		{"long name", Disk{Seed: []byte("s"), Partitions: []Partition{{Name: strings.Repeat("n", 37), Size: 512}}}, "longer than 36"},
		{"small disk", Disk{Seed: []byte("s"), Size: 1 << 20, Partitions: []Partition{ok}}, "need a disk of"},
		{"boot code", Disk{Seed: []byte("s"), BootCode: make([]byte, 441), Partitions: []Partition{ok}}, "at most 440"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Plan(tc.d); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	big := testDisk()
	big.Partitions[1].Body = strings.NewReader(strings.Repeat("x", 513))
	if err := Write(&bytes.Buffer{}, big); err == nil || !strings.Contains(err.Error(), "larger than its 512 bytes") {
		t.Errorf("oversized body: %v", err)
	}
}
