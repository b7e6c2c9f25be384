// Package bzimage takes the uncompressed kernel (vmlinux, an ELF file) out of an x86 bzImage,
// so that QEMU can boot it directly through its PVH entry point, skipping the bzImage's own
// decompression (much faster under emulation).
//
// The bzImage's setup header says where the compressed kernel lies; Debian compresses it with
// xz (with the x86 branch filter), others use gzip. Both are handled; lzma, bzip2, lzo, lz4 and
// zstd payloads are recognised and refused with their name.
//
// It does not read arm64 or s390x images, and it does not relocate or strip the kernel.
package bzimage

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Setup header fields (Documentation/arch/x86/boot.rst), as offsets into the file.
const (
	offSetupSects    = 0x1f1 // number of 512-byte setup sectors after the boot sector (0 means 4)
	offHeaderMagic   = 0x202 // "HdrS"
	offVersion       = 0x206 // boot protocol version
	offPayloadOffset = 0x248 // compressed kernel offset from the start of the protected-mode code
	offPayloadLength = 0x24c
	minVersion       = 0x208 // the first protocol version with the payload fields
)

// Payload returns the compressed kernel inside bz and the name of its format ("xz", "gzip",
// ...). The bytes include the 4-byte uncompressed size that the kernel's build appends.
func Payload(bz []byte) (data []byte, format string, err error) {
	if len(bz) < offPayloadLength+4 || string(bz[offHeaderMagic:offHeaderMagic+4]) != "HdrS" {
		return nil, "", errors.New("not an x86 bzImage: no HdrS setup header")
	}
	if v := binary.LittleEndian.Uint16(bz[offVersion:]); v < minVersion {
		return nil, "", fmt.Errorf("bzImage boot protocol %d.%02d is older than 2.08 and does not say where the kernel is", v>>8, v&0xff)
	}
	sects := int(bz[offSetupSects])
	if sects == 0 {
		sects = 4
	}
	start := (sects+1)*512 + int(binary.LittleEndian.Uint32(bz[offPayloadOffset:]))
	end := start + int(binary.LittleEndian.Uint32(bz[offPayloadLength:]))
	if start < 0 || end > len(bz) || end-start < 8 {
		return nil, "", fmt.Errorf("bzImage payload %d..%d lies outside the %d-byte file", start, end, len(bz))
	}
	data = bz[start:end]
	return data, formatOf(data), nil
}

// formatOf names a compressed stream by its magic number.
func formatOf(b []byte) string {
	for _, f := range []struct {
		magic, name string
	}{
		{"\x1f\x8b", "gzip"},
		{"\xfd7zXZ\x00", "xz"},
		{"\x28\xb5\x2f\xfd", "zstd"},
		{"\x5d\x00\x00", "lzma"},
		{"BZh", "bzip2"},
		{"\x89LZO", "lzo"},
		{"\x02\x21\x4c\x18", "lz4"},
	} {
		if bytes.HasPrefix(b, []byte(f.magic)) {
			return f.name
		}
	}
	return "unknown"
}

// Vmlinux returns the uncompressed kernel of bz. It checks the result is an ELF file of the
// length the bzImage announces.
func Vmlinux(bz []byte) ([]byte, error) {
	payload, format, err := Payload(bz)
	if err != nil {
		return nil, err
	}
	// The kernel's build appends the uncompressed size, little endian, after the stream.
	size := int(binary.LittleEndian.Uint32(payload[len(payload)-4:]))
	stream := payload[:len(payload)-4]
	var out []byte
	switch format {
	case "xz":
		out, err = decodeXZ(stream, size)
	case "gzip":
		out, err = decodeGzip(stream, size)
	default:
		return nil, fmt.Errorf("the bzImage's kernel is compressed with %s, which this tool does not decode (it reads xz and gzip)", format)
	}
	if err != nil {
		return nil, fmt.Errorf("decompressing the bzImage's %s payload: %w", format, err)
	}
	if len(out) != size {
		return nil, fmt.Errorf("the bzImage's kernel is %d bytes uncompressed, its header says %d", len(out), size)
	}
	if !bytes.HasPrefix(out, []byte(elf.ELFMAG)) {
		return nil, errors.New("the bzImage's payload is not an ELF file")
	}
	return out, nil
}

func decodeGzip(stream []byte, size int) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(stream))
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	buf := bytes.NewBuffer(make([]byte, 0, size))
	if _, err := io.Copy(buf, zr); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Xen ELF note types (xen/include/public/elfnote.h).
const (
	xenNoteName       = "Xen"
	xenPhys32EntryTyp = 18 // XEN_ELFNOTE_PHYS32_ENTRY: the PVH entry point
)

// PVHEntry returns the 32-bit physical entry point of a vmlinux from its Xen PHYS32_ENTRY
// note, which is what QEMU's direct boot of an ELF kernel needs; ok is false without one.
func PVHEntry(vmlinux []byte) (entry uint32, ok bool, err error) {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return 0, false, fmt.Errorf("not an ELF file: %w", err)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data, err := io.ReadAll(p.Open())
		if err != nil {
			return 0, false, fmt.Errorf("reading a note segment: %w", err)
		}
		for len(data) >= 12 {
			nameLen := f.ByteOrder.Uint32(data[0:])
			descLen := f.ByteOrder.Uint32(data[4:])
			typ := f.ByteOrder.Uint32(data[8:])
			nameEnd := 12 + align4(nameLen)
			descEnd := nameEnd + align4(descLen)
			if descEnd > uint64(len(data)) || descEnd < nameEnd {
				break
			}
			name := string(bytes.TrimRight(data[12:12+uint64(nameLen)], "\x00"))
			if name == xenNoteName && typ == xenPhys32EntryTyp && descLen >= 4 {
				return f.ByteOrder.Uint32(data[nameEnd:]), true, nil
			}
			data = data[descEnd:]
		}
	}
	return 0, false, nil
}

func align4(n uint32) uint64 { return (uint64(n) + 3) &^ 3 }
