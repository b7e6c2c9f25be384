package ipl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// kernel makes a fake s390 kernel image of size bytes: the magic, a command line limit and a
// built-in command line, as Debian's have, and a recognisable byte everywhere else.
func kernel(size int, limit uint64) []byte {
	k := bytes.Repeat([]byte{0xA5}, size)
	copy(k[8:], magic)
	binary.BigEndian.PutUint64(k[maxCmdlineOff:], limit)
	copy(k[cmdlineOff:], "root=/dev/ram0 ro\x00")
	return k
}

func TestWrite(t *testing.T) {
	k := kernel(cmdlineOff+4096+100, 4096) // not a multiple of 4 KiB: padded
	initrd := []byte("070701 the initramfs")
	var out bytes.Buffer
	n, err := Write(&out, bytes.NewReader(k), int64(len(k)), bytes.NewReader(initrd), int64(len(initrd)), "console=ttysclp0 kiln.x=1")
	if err != nil {
		t.Fatal(err)
	}
	img := out.Bytes()
	padded := (len(k) + 4095) / 4096 * 4096
	if n != int64(len(img)) || len(img) != padded+len(initrd) || Size(int64(len(k)), int64(len(initrd))) != n {
		t.Fatalf("wrote %d bytes (returned %d), want %d", len(img), n, padded+len(initrd))
	}
	if got := binary.BigEndian.Uint64(img[initrdStartOff:]); got != uint64(padded) {
		t.Errorf("initrd offset %#x, want %#x", got, padded)
	}
	if got := binary.BigEndian.Uint64(img[initrdSizeOff:]); got != uint64(len(initrd)) {
		t.Errorf("initrd size %d, want %d", got, len(initrd))
	}
	area := img[cmdlineOff : cmdlineOff+4096]
	if want := "console=ttysclp0 kiln.x=1"; string(area[:len(want)]) != want || strings.Trim(string(area[len(want):]), "\x00") != "" {
		t.Errorf("the command line area starts %q and is not cleared after it", area[:40])
	}
	if !bytes.Equal(img[cmdlineOff+4096:len(k)], k[cmdlineOff+4096:]) || !bytes.Equal(img[:initrdStartOff], k[:initrdStartOff]) {
		t.Error("the kernel's other bytes changed")
	}
	if strings.Trim(string(img[len(k):padded]), "\x00") != "" {
		t.Error("the padding is not zeros")
	}
	if !bytes.Equal(img[padded:], initrd) {
		t.Error("the initramfs does not follow at the offset")
	}
}

func TestWriteLegacyLimit(t *testing.T) {
	k := kernel(cmdlineOff+legacyCmdline, 0) // a kernel without the field: 896 bytes
	var out bytes.Buffer
	if _, err := Write(&out, bytes.NewReader(k), int64(len(k)), strings.NewReader(""), 0, strings.Repeat("x", legacyCmdline-1)); err != nil {
		t.Fatal(err)
	}
	_, err := Write(&out, bytes.NewReader(k), int64(len(k)), strings.NewReader(""), 0, strings.Repeat("x", legacyCmdline))
	if err == nil || !strings.Contains(err.Error(), "at most 895") {
		t.Errorf("an 896-byte command line: %v", err)
	}
}

func TestWriteRefuses(t *testing.T) {
	good := kernel(cmdlineOff+4096, 4096)
	notS390 := append([]byte(nil), good...)
	copy(notS390[8:], "MZ not this")
	cases := []struct {
		name    string
		kernel  []byte
		size    int64
		cmdline string
		want    string
	}{
		{"x86 kernel", notS390, int64(len(notS390)), "", "not an s390 Linux kernel"},
		{"tiny", good[:100], 100, "", "not an s390 Linux kernel"},
		{"limit past the end", kernel(cmdlineOff+1000, 4096), cmdlineOff + 1000, "", "cannot hold"},
		{"NUL", good, int64(len(good)), "a\x00b", "NUL"},
		{"short kernel", kernel(cmdlineOff+8192, 4096)[:cmdlineOff+8182], cmdlineOff + 8192, "", "shorter than its size"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Write(&bytes.Buffer{}, bytes.NewReader(c.kernel), c.size, strings.NewReader("i"), 1, c.cmdline)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
			if strings.Contains(c.want, "s390") && !errors.Is(err, ErrNotS390) {
				t.Errorf("%v is not ErrNotS390", err)
			}
		})
	}
}
