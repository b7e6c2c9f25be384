package vdisk

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-os/kiln/internal/testenv"
)

// QEMU reads both kinds of VHD back as the raw image, at its size.
func TestVHD(t *testing.T) {
	testenv.NeedTool(t, "qemu-img", "qemu-utils")
	mtime := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	raw, _ := rawImage(t, 8<<20, 0, 3<<20+512, 8<<20-512)
	f, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		name  string
		write func(*bytes.Buffer) error
		max   int
	}{
		{"fixed", func(b *bytes.Buffer) error { return VHDFixed(b, f, 8<<20, []byte("id"), mtime) }, 8<<20 + 512},
		{"dynamic", func(b *bytes.Buffer) error { return VHDDynamic(b, f, 8<<20, []byte("id"), mtime) }, 3*(2<<20+512) + 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := tc.write(&out); err != nil {
				t.Fatal(err)
			}
			if out.Len() > tc.max {
				t.Errorf("%d bytes, want at most %d", out.Len(), tc.max)
			}
			v := filepath.Join(t.TempDir(), "disk.vhd")
			if err := os.WriteFile(v, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			info, err := exec.Command("qemu-img", "info", "-f", "vpc", v).CombinedOutput()
			if err != nil || !strings.Contains(string(info), "file format: vpc") || !strings.Contains(string(info), "virtual size: 8 MiB (8388608 bytes)") {
				t.Errorf("qemu-img info: %v\n%s", err, info)
			}
			if b, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "vpc", raw, v).CombinedOutput(); err != nil {
				t.Errorf("qemu-img compare: %v\n%s", err, b)
			}
			var again bytes.Buffer
			if err := tc.write(&again); err != nil || !bytes.Equal(out.Bytes(), again.Bytes()) {
				t.Errorf("a second write differs (%v)", err)
			}
		})
	}
	if err := VHDFixed(&bytes.Buffer{}, f, 3<<20+512, nil, mtime); err == nil || !strings.Contains(err.Error(), "whole number of MiB") {
		t.Errorf("odd size: %v", err)
	}
}

// The geometry is the VHD specification's: 17 sectors per track for small disks, 255 at the
// top, never more sectors than the disk has.
func TestVHDGeometry(t *testing.T) {
	for _, tc := range []struct {
		sectors int64
		c       uint16
		h, s    uint8
	}{
		{16384, 240, 4, 17},    // 8 MiB
		{260096, 1019, 15, 17}, // 127 MiB
		{65535 * 16 * 255, 65535, 16, 255},
	} {
		c, h, s := vhdGeometry(tc.sectors)
		if c != tc.c || h != tc.h || s != tc.s || int64(c)*int64(h)*int64(s) > tc.sectors {
			t.Errorf("%d sectors: %d/%d/%d, want %d/%d/%d", tc.sectors, c, h, s, tc.c, tc.h, tc.s)
		}
	}
}
