// Package uki writes unified kernel images: one EFI executable that holds a Linux kernel, its
// initramfs and its command line, which UEFI firmware (or a boot manager) starts directly.
//
// A UKI is an EFI stub (systemd's linuxx64.efi.stub or linuxaa64.efi.stub, from kiln's
// bootloader package, never from the host) with sections appended: .osrel (an os-release
// file), .cmdline, .linux and .initrd. At boot the stub finds them by name in its own loaded
// image, hands the initrd to the kernel and starts it with the command line.
//
// Write streams: the section bodies are read once, in order, after the headers, which are
// computed from the sizes given. The result depends on nothing but its inputs: the stub's
// own time stamp is kept, the PE checksum is zero (UEFI does not check it; a signing tool
// sets its own), and the stub's symbol table is dropped. A signature on the stub would not
// cover the new sections, so a signed stub is refused: sign the UKI instead.
//
// The package does not sign, and does not know where the stub comes from.
package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/kiln-os/kiln/internal/streamio"
)

// Section is one section to append. Size is the exact number of bytes Body gives.
type Section struct {
	Name string // at most 8 bytes, such as ".linux"
	Size int64
	Body io.Reader
}

// Sections returns the sections of a UKI in the order systemd's stub knows them: the
// os-release text, the command line, the kernel and the initramfs.
func Sections(osrel, cmdline []byte, kernel io.Reader, kernelSize int64, initrd io.Reader, initrdSize int64) []Section {
	return []Section{
		{Name: ".osrel", Size: int64(len(osrel)), Body: bytes.NewReader(osrel)},
		{Name: ".cmdline", Size: int64(len(cmdline)), Body: bytes.NewReader(cmdline)},
		{Name: ".linux", Size: kernelSize, Body: kernel},
		{Name: ".initrd", Size: initrdSize, Body: initrd},
	}
}

const (
	sectionHeaderSize = 40
	// vmaAlign places each new section on a 64 KiB boundary in memory, which satisfies every
	// kernel's own section alignment when the stub runs the kernel in place.
	vmaAlign = 0x10000
	// scnData is IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ.
	scnData = 0x40000040
	// Offsets in the PE32+ optional header.
	optSizeOfInitializedData = 8
	optSizeOfImage           = 56
	optCheckSum              = 64
	optDataDirectory         = 112
	dirSecurity              = 4
	// EFI application subsystem.
	subsystemEFIApplication = 10
)

// Machines are the stub architectures a UKI can be made for, by GOARCH name.
var Machines = map[string]uint16{
	"amd64": pe.IMAGE_FILE_MACHINE_AMD64,
	"arm64": pe.IMAGE_FILE_MACHINE_ARM64,
}

// placed is a new section with where it goes.
type placed struct {
	Section
	raw, vma, rawSize int64
}

// layout is what Write writes: the stub's headers and section data changed (hdr), the new
// sections after it, and the whole size.
type layout struct {
	hdr  []byte
	add  []placed
	end  int64 // len(hdr)
	size int64
}

// Size is the size of the UKI that Write makes of these parts (or Write's error), so that
// the UKI can be streamed into a file system that needs its size first.
func Size(arch string, stub io.ReaderAt, stubSize int64, sections []Section) (int64, error) {
	l, err := plan(arch, stub, stubSize, sections)
	if err != nil {
		return 0, err
	}
	return l.size, nil
}

// plan checks the stub and lays the sections out after it.
func plan(arch string, stub io.ReaderAt, stubSize int64, sections []Section) (layout, error) {
	if len(sections) == 0 {
		return layout{}, errors.New("uki: no sections to append")
	}
	machine, ok := Machines[arch]
	if !ok {
		return layout{}, fmt.Errorf("uki: no EFI stub for architecture %q: UKIs are made for amd64 and arm64", arch)
	}
	f, err := pe.NewFile(stub)
	if err != nil {
		return layout{}, fmt.Errorf("uki: the EFI stub is not a PE file: %w", err)
	}
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok {
		return layout{}, errors.New("uki: the EFI stub is not a 64-bit (PE32+) image")
	}
	if f.Machine != machine {
		return layout{}, fmt.Errorf("uki: the EFI stub is for machine %#x, not %s (%#x)", f.Machine, arch, machine)
	}
	if oh.Subsystem != subsystemEFIApplication {
		return layout{}, fmt.Errorf("uki: the EFI stub's subsystem is %d, not an EFI application (10)", oh.Subsystem)
	}
	if len(oh.DataDirectory) > dirSecurity && oh.DataDirectory[dirSecurity].Size != 0 {
		return layout{}, errors.New("uki: the EFI stub is signed; its signature would not cover the kernel: use an unsigned stub and sign the UKI")
	}
	fileAlign, secAlign := int64(oh.FileAlignment), int64(oh.SectionAlignment)
	if fileAlign == 0 || secAlign == 0 || fileAlign&(fileAlign-1) != 0 || secAlign&(secAlign-1) != 0 || vmaAlign%secAlign != 0 {
		return layout{}, fmt.Errorf("uki: the EFI stub's alignments (file %#x, section %#x) are not usable", fileAlign, secAlign)
	}

	// Where the headers are.
	var lfanew [4]byte
	if _, err := stub.ReadAt(lfanew[:], 0x3c); err != nil {
		return layout{}, fmt.Errorf("uki: reading the EFI stub: %w", err)
	}
	coff := int64(binary.LittleEndian.Uint32(lfanew[:])) + 4
	opt := coff + 20
	table := opt + int64(f.SizeOfOptionalHeader)
	tableEnd := table + int64(len(f.Sections)+len(sections))*sectionHeaderSize
	headers := int64(oh.SizeOfHeaders)
	firstRaw := headers
	end := int64(0) // the end of the stub's section data: what is kept
	vmaEnd := int64(0)
	for _, s := range f.Sections {
		if s.Size > 0 {
			firstRaw = min(firstRaw, int64(s.Offset))
			end = max(end, int64(s.Offset)+int64(s.Size))
		}
		vmaEnd = max(vmaEnd, int64(s.VirtualAddress)+int64(max(s.VirtualSize, s.Size)))
	}
	if tableEnd > firstRaw {
		return layout{}, fmt.Errorf("uki: the EFI stub's headers have no room for %d more section headers", len(sections))
	}
	if end > stubSize || headers > stubSize {
		return layout{}, errors.New("uki: the EFI stub is truncated")
	}
	end = max(end, headers)

	// The new section headers.
	var add []placed
	raw := alignUp(end, fileAlign)
	vma := alignUp(vmaEnd, vmaAlign)
	var addedData int64
	for _, s := range sections {
		if len(s.Name) == 0 || len(s.Name) > 8 {
			return layout{}, fmt.Errorf("uki: section name %q: want 1 to 8 bytes", s.Name)
		}
		if s.Size < 0 || s.Size > 0xffffffff {
			return layout{}, fmt.Errorf("uki: section %s: %d bytes does not fit a PE section", s.Name, s.Size)
		}
		for _, old := range f.Sections {
			if old.Name == s.Name {
				return layout{}, fmt.Errorf("uki: the EFI stub has a %s section already", s.Name)
			}
		}
		p := placed{Section: s, raw: raw, vma: vma, rawSize: alignUp(s.Size, fileAlign)}
		add = append(add, p)
		raw += p.rawSize
		vma = alignUp(vma+max(s.Size, 1), vmaAlign)
		addedData += p.rawSize
	}
	if raw > 0xffffffff || vma > 0xffffffff {
		return layout{}, errors.New("uki: the kernel and initramfs are too large for one PE image (4 GiB)")
	}
	last := add[len(add)-1]
	sizeOfImage := alignUp(last.vma+max(last.Size, 1), secAlign)

	// The stub's headers, changed.
	hdr := make([]byte, end)
	if _, err := stub.ReadAt(hdr, 0); err != nil {
		return layout{}, fmt.Errorf("uki: reading the EFI stub: %w", err)
	}
	le := binary.LittleEndian
	le.PutUint16(hdr[coff+2:], uint16(len(f.Sections)+len(sections)))
	le.PutUint32(hdr[coff+8:], 0)  // PointerToSymbolTable: the symbols are dropped
	le.PutUint32(hdr[coff+12:], 0) // NumberOfSymbols
	le.PutUint32(hdr[opt+optSizeOfInitializedData:], oh.SizeOfInitializedData+uint32(addedData))
	le.PutUint32(hdr[opt+optSizeOfImage:], uint32(sizeOfImage))
	le.PutUint32(hdr[opt+optCheckSum:], 0)
	if oh.NumberOfRvaAndSizes > dirSecurity {
		d := opt + optDataDirectory + dirSecurity*8
		le.PutUint64(hdr[d:], 0)
	}
	at := table + int64(len(f.Sections))*sectionHeaderSize
	for _, p := range add {
		h := hdr[at : at+sectionHeaderSize]
		clear(h)
		copy(h[0:8], p.Name)
		le.PutUint32(h[8:], uint32(p.Size))     // VirtualSize
		le.PutUint32(h[12:], uint32(p.vma))     // VirtualAddress
		le.PutUint32(h[16:], uint32(p.rawSize)) // SizeOfRawData
		le.PutUint32(h[20:], uint32(p.raw))     // PointerToRawData
		le.PutUint32(h[36:], scnData)
		at += sectionHeaderSize
	}

	return layout{hdr: hdr, add: add, end: end, size: raw}, nil
}

// Write writes the stub (stubSize bytes read through stub) with sections appended to w.
// arch (a GOARCH name) is the architecture the stub must be for.
func Write(w io.Writer, arch string, stub io.ReaderAt, stubSize int64, sections []Section) error {
	l, err := plan(arch, stub, stubSize, sections)
	if err != nil {
		return err
	}
	hdr, add, end, raw := l.hdr, l.add, l.end, l.size
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	written := end
	for _, p := range add {
		if err := streamio.Zeros(w, p.raw-written); err != nil {
			return err
		}
		n, err := io.Copy(w, io.LimitReader(p.Body, p.Size))
		if err != nil {
			return fmt.Errorf("uki: writing section %s: %w", p.Name, err)
		}
		if n != p.Size {
			return fmt.Errorf("uki: section %s: got %d bytes, want %d", p.Name, n, p.Size)
		}
		written = p.raw + p.Size
	}
	return streamio.Zeros(w, raw-written)
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }
