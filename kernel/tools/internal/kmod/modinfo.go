// Package kmod reads a tree of Linux kernel modules (lib/modules/VERSION with uncompressed
// .ko files) and writes the text indexes the module tools read: modules.dep in depmod's exact
// format and order, plus modules.alias, modules.softdep and modules.order. It can narrow a
// tree to the modules an image asks for plus everything they depend on.
//
// Dependencies come from each module's own .modinfo section (the depends= line the kernel's
// build writes), read with debug/elf, so modules of any architecture and byte order work
// without running anything built for it. Their order follows the module's symbol table, as
// depmod's does: depmod lists a module's dependencies in an order that comes from the first
// symbol the module uses from each of them, and matching it byte for byte needs that order.
//
// It is not depmod: it resolves no symbols, writes none of depmod's binary .bin indexes, and
// reads no compressed (.ko.xz, .ko.zst, .ko.gz) modules.
package kmod

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Field is one key=value line of a module's .modinfo section.
type Field struct {
	Key, Value string
}

// ParseModinfo splits the contents of a .modinfo section into its fields, in the order they
// appear. The section holds NUL-terminated "key=value" strings, with NUL padding between
// some of them; strings without "=" are not fields and are skipped.
func ParseModinfo(data []byte) []Field {
	var fields []Field
	for _, s := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(s), "=")
		if !ok || k == "" {
			continue
		}
		fields = append(fields, Field{Key: k, Value: v})
	}
	return fields
}

// ReadModinfo returns the fields of the .modinfo section of a module file (an ELF relocatable
// object of any class and byte order).
func ReadModinfo(r io.ReaderAt) ([]Field, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("not an ELF file: %w", err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section: not a kernel module")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .modinfo: %w", err)
	}
	return ParseModinfo(data), nil
}

// object is what Load needs from one module file.
type object struct {
	fields []Field
	// undefined lists the symbols the module takes from elsewhere, in symbol table order.
	undefined []string
	// exports lists the symbols it exports (its __ksymtab_strings section).
	exports []string
}

// readObject reads the .modinfo fields, undefined symbols and exports of a module file.
func readObject(name string) (object, error) {
	file, err := os.Open(name)
	if err != nil {
		return object{}, err
	}
	defer file.Close()
	f, err := elf.NewFile(file)
	if err != nil {
		return object{}, fmt.Errorf("%s: not an ELF file: %w", name, err)
	}
	var o object
	sec := f.Section(".modinfo")
	if sec == nil {
		return object{}, fmt.Errorf("%s: no .modinfo section: not a kernel module", name)
	}
	data, err := sec.Data()
	if err != nil {
		return object{}, fmt.Errorf("%s: reading .modinfo: %w", name, err)
	}
	o.fields = ParseModinfo(data)
	syms, err := f.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return object{}, fmt.Errorf("%s: reading the symbol table: %w", name, err)
	}
	for _, s := range syms {
		if s.Section == elf.SHN_UNDEF && s.Name != "" {
			o.undefined = append(o.undefined, s.Name)
		}
	}
	if sec := f.Section("__ksymtab_strings"); sec != nil {
		data, err := sec.Data()
		if err != nil {
			return object{}, fmt.Errorf("%s: reading __ksymtab_strings: %w", name, err)
		}
		for _, s := range bytes.Split(data, []byte{0}) {
			if len(s) > 0 {
				o.exports = append(o.exports, string(s))
			}
		}
	}
	return o, nil
}

// values returns the values of every field named key, in order.
func values(fields []Field, key string) []string {
	var out []string
	for _, f := range fields {
		if f.Key == key {
			out = append(out, f.Value)
		}
	}
	return out
}
