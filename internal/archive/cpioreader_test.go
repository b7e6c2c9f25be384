package archive

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestCpioReaderMalformed(t *testing.T) {
	// One file "a" holding "hello": header 0-110, name 110-112, data 112-117, padding to 120,
	// trailer header at 120, its name 230-241, padding to 244, zeros to 512.
	valid := cpioBytes(t, []item{reg("a", 0o644, "hello")})
	if _, err := readCpioErr(valid); err != nil {
		t.Fatalf("valid archive: %v", err)
	}
	set := func(off int, s string) []byte {
		b := bytes.Clone(valid)
		copy(b[off:], s)
		return b
	}
	nulInName := set(6+8*11, "00000003")
	nulInName[112] = 0
	field := func(i int) int { return 6 + 8*i } // offset of header field i (0 = c_ino)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"bad magic", set(0, "123456"), `offset 0: bad magic "123456"`},
		{"odc magic", set(0, "070707"), "offset 0: old portable (odc, 070707)"},
		{"crc magic", set(0, "070702"), "070702"},
		{"non-hex mode", set(field(1)+3, "g"), `offset 14: field c_mode is not hexadecimal: "000g81A4"`},
		{"non-hex check", set(field(12), " "), "offset 102: field c_check is not hexadecimal"},
		{"name size too big", set(field(11), "00001001"), "offset 94: name size 4097 out of range 1..4096"},
		{"name size zero", set(field(11), "00000000"), "offset 94: name size 0 out of range"},
		{"name without NUL", set(111, "b"), "offset 110: name is not NUL-terminated"},
		{"NUL inside name", nulInName, "offset 111: NUL byte inside name"},
		{"truncated header", valid[:50], "offset 50: truncated header"},
		{"truncated name", valid[:111], "offset 111: truncated name"},
		{"truncated data", valid[:115], "offset 115: truncated file data"},
		{"missing trailer", valid[:120], "offset 120: truncated archive (no TRAILER!!!)"},
		{"non-zero data padding", set(117, "x"), "offset 117: non-zero padding after file data"},
		{"socket", set(field(1), "0000C1A4"), `offset 0: entry "a" is a socket`},
		{"unknown type", set(field(1), "0000F1A4"), "offset 14: entry \"a\" has unknown file type 0170000"},
		{"directory with data", set(field(1), "000041ED"), `offset 54: entry "a" of type '5' has 5 bytes of data`},
		{"empty symlink", set(field(1), "0000A1FF"+"00000000"+"00000000"+"00000001"+"00000000"+"00000000"), `symlink "a" target length 0 out of range`},
		{"trailer with data", set(120+field(6), "00000001"), "offset 120: trailer with 1 bytes of data"},
		{"junk after trailer", append(bytes.Clone(valid), strings.Repeat("junk", 30)...), `offset 512: bad magic "junkju"`},
		{"short junk after trailer", append(bytes.Clone(valid), "junk"...), "offset 516: truncated header"},
		{"misaligned second archive", append(append(bytes.Clone(valid), 0, 0, 0, 0, 0), valid...), "offset 517: entry header is not 4-byte aligned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readCpioErr(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v does not wrap ErrFormat", err)
			}
		})
	}
}

func TestCpioReaderAcceptsLowerCaseAndPadding(t *testing.T) {
	valid := cpioBytes(t, []item{reg("a", 0o644, "hello")})
	lower := bytes.Clone(valid)
	copy(lower[6+8:], "000081a4")
	data := append(append(make([]byte, 8), lower...), make([]byte, 3)...)
	got, err := readCpioErr(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].hdr.Name != "a" || got[0].hdr.Mode != 0o644 || got[0].body != "hello" {
		t.Fatalf("got %+v", got)
	}
	if got, err := readCpioErr(nil); err != nil || len(got) != 0 {
		t.Fatalf("empty input: %v, %v", got, err)
	}
}

// TestCpioReaderErrorIsSticky checks that Next and Read keep failing after an error.
func TestCpioReaderErrorIsSticky(t *testing.T) {
	valid := cpioBytes(t, []item{reg("a", 0o644, "hello")})
	r := NewCpioReader(bytes.NewReader(valid[:114]))
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadAll = %v, want unexpected EOF", err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrFormat) {
		t.Fatalf("Next after error = %v", err)
	}
}
