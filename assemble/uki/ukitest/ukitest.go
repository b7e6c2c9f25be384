// Package ukitest makes stand-ins for systemd's EFI stubs, for the tests of the packages that
// write unified kernel images.
package ukitest

import "encoding/binary"

// Stub builds a small PE32+ EFI application with two sections (.text and .sdata), a
// symbol table after them and SizeOfHeaders 0x400, laid out as systemd's stubs are.
func Stub(machine uint16, signed bool) []byte {
	le := binary.LittleEndian
	b := make([]byte, 0x800)
	copy(b, "MZ")
	le.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	coff := 0x84
	le.PutUint16(b[coff:], machine)
	le.PutUint16(b[coff+2:], 2)
	le.PutUint32(b[coff+4:], 0x5eed)  // TimeDateStamp, kept
	le.PutUint32(b[coff+8:], 0x800)   // PointerToSymbolTable
	le.PutUint32(b[coff+12:], 1)      // NumberOfSymbols
	le.PutUint16(b[coff+16:], 240)    // SizeOfOptionalHeader
	le.PutUint16(b[coff+18:], 0x0022) // executable, large address aware
	opt := coff + 20
	le.PutUint16(b[opt:], 0x20b)
	le.PutUint32(b[opt+8:], 0x200)   // SizeOfInitializedData
	le.PutUint32(b[opt+16:], 0x1000) // AddressOfEntryPoint
	le.PutUint32(b[opt+32:], 0x1000) // SectionAlignment
	le.PutUint32(b[opt+36:], 0x200)  // FileAlignment
	le.PutUint32(b[opt+56:], 0x3000) // SizeOfImage
	le.PutUint32(b[opt+60:], 0x400)  // SizeOfHeaders
	le.PutUint32(b[opt+64:], 0x1234) // CheckSum
	le.PutUint16(b[opt+68:], 10)     // Subsystem: EFI application
	le.PutUint32(b[opt+108:], 16)    // NumberOfRvaAndSizes
	if signed {
		le.PutUint32(b[opt+112+4*8:], 0x800)
		le.PutUint32(b[opt+112+4*8+4:], 8)
	}
	table := opt + 240
	for i, s := range []struct {
		name     string
		vma, raw uint32
		chars    uint32
		fill     byte
	}{{".text", 0x1000, 0x400, 0x60000020, 0xc3}, {".sdata", 0x2000, 0x600, 0xc0000040, 0x5a}} {
		h := b[table+i*40:]
		copy(h, s.name)
		le.PutUint32(h[8:], 0x100)
		le.PutUint32(h[12:], s.vma)
		le.PutUint32(h[16:], 0x200)
		le.PutUint32(h[20:], s.raw)
		le.PutUint32(h[36:], s.chars)
		for j := range 0x100 {
			b[int(s.raw)+j] = s.fill
		}
	}
	return append(b, make([]byte, 18+4)...) // one symbol, an empty string table
}
