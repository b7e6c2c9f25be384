package qemu

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// KernelFormat names the kind of kernel file Inspect found.
type KernelFormat string

// The kernel files Inspect recognises.
const (
	// FormatELF is an uncompressed ELF vmlinux. On amd64 QEMU boots it through its PVH entry
	// point, which needs the kernel built with CONFIG_PVH (KernelInfo.PVH).
	FormatELF KernelFormat = "elf"
	// FormatBzImage is an x86 bzImage (the "HdrS" setup header).
	FormatBzImage KernelFormat = "bzimage"
	// FormatARM64Image is an arm64 Image ("ARM\x64" at offset 0x38), possibly gzip-compressed.
	FormatARM64Image KernelFormat = "arm64-image"
	// FormatS390Image is an s390 kernel image ("S390EP" at offset 0x10008).
	FormatS390Image KernelFormat = "s390-image"
	// FormatPE is some other EFI (PE/COFF) executable, such as a compressed arm64 zboot image.
	FormatPE KernelFormat = "pe"
)

// KernelInfo is what Inspect learnt from a kernel file's headers.
type KernelInfo struct {
	Arch   string // GOARCH name: amd64, arm64 or s390x
	Format KernelFormat
	// PVH reports an ELF kernel carrying the Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY),
	// the only way QEMU boots an uncompressed x86 vmlinux.
	PVH bool
}

// ErrUnknownKernel is returned by Inspect for a file it cannot tell the architecture of.
var ErrUnknownKernel = errors.New("not a kernel image kiln recognises (ELF vmlinux, x86 bzImage, arm64 Image, s390 image or EFI executable)")

// Inspect reads the headers of the kernel file at path and reports its architecture and
// format. It trusts magic numbers, never file names. An error wrapping ErrUnknownKernel means
// the file is readable but not recognised.
func Inspect(path string) (KernelInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return KernelInfo{}, fmt.Errorf("reading kernel: %w", err)
	}
	defer f.Close()
	head := make([]byte, 0x10010)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return KernelInfo{}, fmt.Errorf("reading kernel %s: %w", path, err)
	}
	head = head[:n]
	info, err := inspect(f, head)
	if err != nil {
		return KernelInfo{}, fmt.Errorf("kernel %s: %w", path, err)
	}
	return info, nil
}

// inspect looks at the first bytes of a kernel file (head) and, for ELF, at the whole file r.
func inspect(r io.ReaderAt, head []byte) (KernelInfo, error) {
	at := func(off int, magic string) bool {
		return len(head) >= off+len(magic) && string(head[off:off+len(magic)]) == magic
	}
	switch {
	case at(0, "\x7fELF"):
		return inspectELF(r)
	case at(0x202, "HdrS"):
		return KernelInfo{Arch: "amd64", Format: FormatBzImage}, nil
	case at(0x38, "ARM\x64"):
		return KernelInfo{Arch: "arm64", Format: FormatARM64Image}, nil
	case at(0x10008, "S390EP"):
		return KernelInfo{Arch: "s390x", Format: FormatS390Image}, nil
	case at(0, "\x1f\x8b"):
		// A gzip-compressed Image (QEMU's arm64 loader decompresses it): peek at the header.
		z, err := gzip.NewReader(bytes.NewReader(head))
		if err != nil {
			return KernelInfo{}, fmt.Errorf("gzip-compressed file: %w", err)
		}
		inner := make([]byte, 0x40)
		if _, err := io.ReadFull(z, inner); err == nil && string(inner[0x38:0x3c]) == "ARM\x64" {
			return KernelInfo{Arch: "arm64", Format: FormatARM64Image}, nil
		}
		return KernelInfo{}, fmt.Errorf("gzip-compressed file without an arm64 Image inside: %w", ErrUnknownKernel)
	case at(0, "MZ") && len(head) >= 0x40:
		pe := int(binary.LittleEndian.Uint32(head[0x3c:]))
		if pe > 0 && pe+6 <= len(head) && string(head[pe:pe+4]) == "PE\x00\x00" {
			switch binary.LittleEndian.Uint16(head[pe+4:]) {
			case 0x8664:
				return KernelInfo{Arch: "amd64", Format: FormatPE}, nil
			case 0xaa64:
				return KernelInfo{Arch: "arm64", Format: FormatPE}, nil
			}
		}
	}
	return KernelInfo{}, ErrUnknownKernel
}

func inspectELF(r io.ReaderAt) (KernelInfo, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return KernelInfo{}, fmt.Errorf("ELF file: %w", err)
	}
	info := KernelInfo{Format: FormatELF}
	switch f.Machine {
	case elf.EM_X86_64:
		info.Arch = "amd64"
	case elf.EM_AARCH64:
		info.Arch = "arm64"
	case elf.EM_S390:
		info.Arch = "s390x"
	default:
		return KernelInfo{}, fmt.Errorf("ELF file for machine %v: %w", f.Machine, ErrUnknownKernel)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		notes, err := io.ReadAll(io.LimitReader(p.Open(), 1<<20))
		if err != nil {
			return KernelInfo{}, fmt.Errorf("reading ELF notes: %w", err)
		}
		if hasPVHNote(notes, f.ByteOrder) {
			info.PVH = true
			break
		}
	}
	return info, nil
}

// xenElfnotePhys32Entry is the note type of the PVH entry point, owned by "Xen".
const xenElfnotePhys32Entry = 18

// hasPVHNote reports whether an ELF note segment holds the Xen PVH entry note.
func hasPVHNote(b []byte, bo binary.ByteOrder) bool {
	align4 := func(n uint32) int { return int((n + 3) &^ 3) }
	for len(b) >= 12 {
		namesz, descsz, typ := bo.Uint32(b), bo.Uint32(b[4:]), bo.Uint32(b[8:])
		b = b[12:]
		if align4(namesz) > len(b) {
			return false
		}
		name := b[:namesz]
		b = b[align4(namesz):]
		if align4(descsz) > len(b) {
			return false
		}
		b = b[align4(descsz):]
		if typ == xenElfnotePhys32Entry && string(bytes.TrimRight(name, "\x00")) == "Xen" {
			return true
		}
	}
	return false
}
