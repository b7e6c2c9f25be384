// Package testko writes tiny kernel module files for tests: ELF relocatable objects of a
// chosen class and byte order holding just what module tools read (a .modinfo section, the
// symbols the module exports in __ksymtab_strings, and a symbol table with the symbols it
// uses). They cannot be loaded into a kernel.
//
// It is for tests only.
package testko

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
)

// Module describes one file.
type Module struct {
	Modinfo []string // "key=value" strings; nil writes no .modinfo section
	Exports []string // exported symbol names
	Uses    []string // undefined symbols, in symbol table order
	// Class is elf.ELFCLASS64 (the default) or elf.ELFCLASS32; Order is binary.LittleEndian
	// (the default) or binary.BigEndian (as on s390x).
	Class elf.Class
	Order binary.ByteOrder
}

// Bytes returns the ELF file.
func (m Module) Bytes() []byte {
	class, order := m.Class, m.Order
	if class == elf.ELFCLASSNONE {
		class = elf.ELFCLASS64
	}
	if order == nil {
		order = binary.LittleEndian
	}
	is64 := class == elf.ELFCLASS64

	// binary.Write of fixed-size values into a bytes.Buffer cannot fail.
	strtab := []byte{0}
	var symtab bytes.Buffer
	sym := func(name uint32, info byte, shndx uint16) {
		if is64 {
			_ = binary.Write(&symtab, order, elf.Sym64{Name: name, Info: info, Shndx: shndx})
		} else {
			_ = binary.Write(&symtab, order, elf.Sym32{Name: name, Info: info, Shndx: shndx})
		}
	}
	sym(0, 0, 0)
	for _, u := range m.Uses {
		off := uint32(len(strtab))
		strtab = append(append(strtab, u...), 0)
		sym(off, elf.ST_INFO(elf.STB_GLOBAL, elf.STT_NOTYPE), uint16(elf.SHN_UNDEF))
	}
	join := func(ss []string) []byte {
		var b []byte
		for _, s := range ss {
			b = append(append(b, s...), 0)
		}
		return b
	}
	type section struct {
		name    string
		typ     elf.SectionType
		data    []byte
		link    uint32
		info    uint32
		entsize uint64
	}
	entsize := uint64(24)
	if !is64 {
		entsize = 16
	}
	secs := []section{{name: ""}}
	if m.Modinfo != nil {
		secs = append(secs, section{name: ".modinfo", typ: elf.SHT_PROGBITS, data: join(m.Modinfo)})
	}
	strtabIndex := uint32(len(secs) + 2)
	secs = append(secs,
		section{name: "__ksymtab_strings", typ: elf.SHT_PROGBITS, data: join(m.Exports)},
		section{name: ".symtab", typ: elf.SHT_SYMTAB, data: symtab.Bytes(), link: strtabIndex, info: 1, entsize: entsize},
		section{name: ".strtab", typ: elf.SHT_STRTAB, data: strtab},
		section{name: ".shstrtab", typ: elf.SHT_STRTAB},
	)
	shstrtab := []byte{0}
	names := make([]uint32, len(secs))
	for i, s := range secs {
		if s.name != "" {
			names[i] = uint32(len(shstrtab))
			shstrtab = append(append(shstrtab, s.name...), 0)
		}
	}
	secs[len(secs)-1].data = shstrtab

	ehsize, shentsize := 64, 64
	if !is64 {
		ehsize, shentsize = 52, 40
	}
	var body bytes.Buffer
	offs := make([]int, len(secs))
	for i, s := range secs {
		for (ehsize+body.Len())%8 != 0 {
			body.WriteByte(0)
		}
		offs[i] = ehsize + body.Len()
		body.Write(s.data)
	}
	for (ehsize+body.Len())%8 != 0 {
		body.WriteByte(0)
	}
	shoff := ehsize + body.Len()

	var out bytes.Buffer
	ident := [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(class), 0, byte(elf.EV_CURRENT)}
	if order == binary.BigEndian {
		ident[elf.EI_DATA] = byte(elf.ELFDATA2MSB)
	} else {
		ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	}
	if is64 {
		_ = binary.Write(&out, order, elf.Header64{Ident: ident, Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64),
			Version: uint32(elf.EV_CURRENT), Shoff: uint64(shoff), Ehsize: uint16(ehsize), Shentsize: uint16(shentsize),
			Shnum: uint16(len(secs)), Shstrndx: uint16(len(secs) - 1)})
	} else {
		_ = binary.Write(&out, order, elf.Header32{Ident: ident, Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_386),
			Version: uint32(elf.EV_CURRENT), Shoff: uint32(shoff), Ehsize: uint16(ehsize), Shentsize: uint16(shentsize),
			Shnum: uint16(len(secs)), Shstrndx: uint16(len(secs) - 1)})
	}
	out.Write(body.Bytes())
	for i, s := range secs {
		if i == 0 {
			out.Write(make([]byte, shentsize))
			continue
		}
		if is64 {
			_ = binary.Write(&out, order, elf.Section64{Name: names[i], Type: uint32(s.typ), Off: uint64(offs[i]),
				Size: uint64(len(s.data)), Link: s.link, Info: s.info, Addralign: 1, Entsize: s.entsize})
		} else {
			_ = binary.Write(&out, order, elf.Section32{Name: names[i], Type: uint32(s.typ), Off: uint32(offs[i]),
				Size: uint32(len(s.data)), Link: s.link, Info: s.info, Addralign: 1, Entsize: uint32(s.entsize)})
		}
	}
	return out.Bytes()
}

// WriteFile writes the module to name, creating its folder.
func (m Module) WriteFile(name string) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	return os.WriteFile(name, m.Bytes(), 0o644)
}
