package qemu

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// The kernel files below are made of real header layouts, only with nothing behind them:
// Inspect reads headers, and Args only needs files that exist.

// elfKernel returns a minimal 64-bit little-endian ELF executable for machine with one
// PT_NOTE segment holding the given notes.
func elfKernel(machine uint16, notes []byte) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	for _, v := range []any{
		uint16(2), machine, uint32(1), uint64(0x1000000), // type EXEC, machine, version, entry
		uint64(64), uint64(0), uint32(0), // phoff, shoff, flags
		uint16(64), uint16(56), uint16(1), uint16(64), uint16(0), uint16(0), // sizes and counts
		uint32(4), uint32(4), uint64(120), uint64(0), uint64(0), // PT_NOTE, flags, offset, vaddr, paddr
		uint64(len(notes)), uint64(len(notes)), uint64(4), // filesz, memsz, align
	} {
		_ = binary.Write(&b, le, v)
	}
	b.Write(notes)
	return b.Bytes()
}

// elfNote encodes one ELF note.
func elfNote(name string, typ uint32, desc []byte) []byte {
	var b bytes.Buffer
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	le := binary.LittleEndian
	_ = binary.Write(&b, le, uint32(len(name)+1))
	_ = binary.Write(&b, le, uint32(len(desc)))
	_ = binary.Write(&b, le, typ)
	b.WriteString(name + "\x00")
	pad()
	b.Write(desc)
	pad()
	return b.Bytes()
}

// withMagic returns size zero bytes with magic written at off.
func withMagic(size, off int, magic string) []byte {
	b := make([]byte, size)
	copy(b[off:], magic)
	return b
}

func gzipped(b []byte) []byte {
	var out bytes.Buffer
	z := gzip.NewWriter(&out)
	z.Write(b)
	z.Close()
	return out.Bytes()
}

// peFile returns a PE executable stub for the COFF machine.
func peFile(machine uint16) []byte {
	b := withMagic(0x200, 0, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x84:], machine)
	return b
}

var (
	pvhNote = elfNote("Xen", 18, []byte{0, 0, 0, 1})
	kernels = map[string][]byte{
		"vmlinux-pvh":    elfKernel(62, append(elfNote("GNU", 3, make([]byte, 20)), pvhNote...)),
		"vmlinux-nopvh":  elfKernel(62, elfNote("GNU", 3, make([]byte, 20))),
		"vmlinux-arm64":  elfKernel(183, nil),
		"vmlinux-s390x":  elfKernel(22, nil),
		"vmlinux-riscv":  elfKernel(243, nil),
		"bzImage":        withMagic(0x1000, 0x202, "HdrS"),
		"Image":          withMagic(0x1000, 0x38, "ARM\x64"),
		"Image.gz":       gzipped(withMagic(0x1000, 0x38, "ARM\x64")),
		"other.gz":       gzipped(make([]byte, 0x1000)),
		"image-s390x":    withMagic(0x10100, 0x10008, "S390EP"),
		"pe-amd64":       peFile(0x8664),
		"pe-arm64":       peFile(0xaa64),
		"pe-riscv":       peFile(0x5064),
		"random":         bytes.Repeat([]byte("kernel? "), 100),
		"short":          []byte("MZ"),
		"empty":          nil,
		"initrd.img":     []byte("initrd"),
		"disk.img":       nil,
		"disk,comma.img": nil,
	}
)

// writeKernels writes every file of kernels into a new folder and returns it.
func writeKernels(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range kernels {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
