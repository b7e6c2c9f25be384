package uki

import (
	"bytes"
	"debug/pe"
	"io"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/assemble/uki/ukitest"
)

func build(t *testing.T, arch string, stub []byte, secs []Section) ([]byte, error) {
	t.Helper()
	var out bytes.Buffer
	err := Write(&out, arch, bytes.NewReader(stub), int64(len(stub)), secs)
	return out.Bytes(), err
}

func TestWrite(t *testing.T) {
	stub := ukitest.Stub(pe.IMAGE_FILE_MACHINE_AMD64, false)
	kernel := bytes.Repeat([]byte("K"), 70000)
	initrd := bytes.Repeat([]byte("I"), 5000)
	osrel := []byte("ID=kiln\nNAME=kiln\n")
	cmdline := []byte("console=ttyS0 panic=1")
	secs := Sections(osrel, cmdline, bytes.NewReader(kernel), int64(len(kernel)), bytes.NewReader(initrd), int64(len(initrd)))
	got, err := build(t, "amd64", stub, secs)
	if err != nil {
		t.Fatal(err)
	}
	f, err := pe.NewFile(bytes.NewReader(got))
	if err != nil {
		t.Fatalf("the UKI is not a PE file: %v", err)
	}
	oh := f.OptionalHeader.(*pe.OptionalHeader64)
	if f.NumberOfSymbols != 0 || f.PointerToSymbolTable != 0 {
		t.Errorf("symbols left: %d at %#x", f.NumberOfSymbols, f.PointerToSymbolTable)
	}
	if f.TimeDateStamp != 0x5eed || oh.CheckSum != 0 {
		t.Errorf("time stamp %#x (want the stub's), checksum %#x (want 0)", f.TimeDateStamp, oh.CheckSum)
	}
	want := map[string][]byte{".osrel": osrel, ".cmdline": cmdline, ".linux": kernel, ".initrd": initrd}
	var names []string
	prevEnd := uint32(0)
	for _, s := range f.Sections {
		names = append(names, s.Name)
		if s.VirtualAddress < prevEnd {
			t.Errorf("section %s at %#x overlaps the one before (ends %#x)", s.Name, s.VirtualAddress, prevEnd)
		}
		prevEnd = s.VirtualAddress + max(s.VirtualSize, s.Size)
		if s.Offset%oh.FileAlignment != 0 || s.VirtualAddress%oh.SectionAlignment != 0 {
			t.Errorf("section %s: offset %#x or address %#x not aligned", s.Name, s.Offset, s.VirtualAddress)
		}
		data, err := io.ReadAll(s.Open())
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := want[s.Name]; ok {
			if s.VirtualSize != uint32(len(w)) || !bytes.Equal(data[:s.VirtualSize], w) {
				t.Errorf("section %s: %d bytes, not what was given (%d)", s.Name, s.VirtualSize, len(w))
			}
			if s.VirtualAddress%vmaAlign != 0 || s.Characteristics != scnData {
				t.Errorf("section %s: address %#x, characteristics %#x", s.Name, s.VirtualAddress, s.Characteristics)
			}
		}
	}
	if strings.Join(names, " ") != ".text .sdata .osrel .cmdline .linux .initrd" {
		t.Errorf("sections %q", names)
	}
	if oh.SizeOfImage < prevEnd || oh.SizeOfImage%oh.SectionAlignment != 0 {
		t.Errorf("SizeOfImage %#x, last section ends at %#x", oh.SizeOfImage, prevEnd)
	}
	if !bytes.Equal(got[0x400:0x800], stub[0x400:0x800]) {
		t.Error("the stub's own sections changed")
	}
	if last := f.Sections[len(f.Sections)-1]; int64(len(got)) != int64(last.Offset)+int64(last.Size) {
		t.Errorf("file is %d bytes, the last section ends at %d", len(got), last.Offset+last.Size)
	}
	// The same inputs, the same bytes.
	again, err := build(t, "amd64", stub, Sections(osrel, cmdline, bytes.NewReader(kernel), int64(len(kernel)), bytes.NewReader(initrd), int64(len(initrd))))
	if err != nil || !bytes.Equal(got, again) {
		t.Errorf("a second build differs (err %v)", err)
	}
}

func TestWriteErrors(t *testing.T) {
	amd := ukitest.Stub(pe.IMAGE_FILE_MACHINE_AMD64, false)
	one := []Section{{Name: ".linux", Size: 3, Body: strings.NewReader("abc")}}
	tests := []struct {
		name, arch string
		stub       []byte
		secs       []Section
		want       string
	}{
		{"s390x", "s390x", amd, one, `no EFI stub for architecture "s390x"`},
		{"wrong machine", "arm64", amd, one, "not arm64"},
		{"not PE", "amd64", []byte("hello, this is not a PE file at all, sorry"), one, "not a PE file"},
		{"signed", "amd64", ukitest.Stub(pe.IMAGE_FILE_MACHINE_AMD64, true), one, "is signed"},
		{"short body", "amd64", amd, []Section{{Name: ".linux", Size: 10, Body: strings.NewReader("abc")}}, "got 3 bytes, want 10"},
		{"name clash", "amd64", amd, []Section{{Name: ".text", Size: 1, Body: strings.NewReader("a")}}, "has a .text section already"},
		{"long name", "amd64", amd, []Section{{Name: ".toolongname", Size: 1, Body: strings.NewReader("a")}}, "want 1 to 8 bytes"},
		{"no room", "amd64", amd, make([]Section, 20), "no room for 20 more section headers"},
		{"nothing to add", "amd64", amd, nil, "no sections to append"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := build(t, tt.arch, tt.stub, tt.secs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestSize: Size says how many bytes Write writes, and fails as Write does.
func TestSize(t *testing.T) {
	stub := ukitest.Stub(pe.IMAGE_FILE_MACHINE_AMD64, false)
	secs := func() []Section {
		return Sections([]byte("ID=kiln\n"), []byte("console=ttyS0"), strings.NewReader("KERNEL"), 6, strings.NewReader(strings.Repeat("i", 5000)), 5000)
	}
	n, err := Size("amd64", bytes.NewReader(stub), int64(len(stub)), secs())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Write(&out, "amd64", bytes.NewReader(stub), int64(len(stub)), secs()); err != nil {
		t.Fatal(err)
	}
	if n != int64(out.Len()) {
		t.Errorf("Size %d, Write wrote %d", n, out.Len())
	}
	if _, err := Size("s390x", bytes.NewReader(stub), int64(len(stub)), secs()); err == nil {
		t.Error("Size took s390x")
	}
}
