package qemutest

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/internal/archive"
	"github.com/kiln-os/kiln/internal/testenv"
)

func TestParseDepends(t *testing.T) {
	cases := []struct{ in, want string }{
		{"linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n", "6.1.0-56-amd64"},
		{"linux-image-s390x:s390x\n  Depends: linux-image-6.1.0-50-s390x:s390x\n", "6.1.0-50-s390x"},
		{"x\n  Depends: linux-image-unsigned\n  Depends: linux-image-6.1.0-1-arm64:arm64\n", "6.1.0-1-arm64"},
		{"linux-image-amd64\n  Recommends: firmware\n", ""},
	}
	for _, tc := range cases {
		got, err := parseDepends([]byte(tc.in))
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("parseDepends(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// bzImage lays out an x86 boot sector and setup header (protocol 2.15) followed by payload.
func bzImage(payload []byte) []byte {
	const setupSects = 4
	b := make([]byte, (setupSects+1)*512)
	b[0x1f1] = setupSects
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x20f)
	binary.LittleEndian.PutUint32(b[0x248:], 0x40) // payload offset inside the protected-mode part
	binary.LittleEndian.PutUint32(b[0x24c:], uint32(len(payload)))
	return append(append(b, make([]byte, 0x40)...), payload...)
}

func TestBzImageToVmlinux(t *testing.T) {
	exe, err := os.Executable() // any ELF file will do
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(self)
	w.Close()
	z.Write([]byte{1, 2, 3, 4}) // the kernel build appends the uncompressed size
	dir := t.TempDir()
	cases := []struct {
		name    string
		file    []byte
		wantErr string
	}{
		{"gzip payload", bzImage(z.Bytes()), ""},
		{"not a bzImage", make([]byte, 4096), "not an x86 bzImage"},
		{"lz4 payload", bzImage([]byte{0x02, 0x21, 0x4c, 0x18, 0, 0}), "other than xz or gzip"},
		{"payload past the end", bzImage(nil)[:0x600], "outside the file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in, out := filepath.Join(dir, tc.name), filepath.Join(dir, tc.name+".elf")
			if err := os.WriteFile(in, tc.file, 0o644); err != nil {
				t.Fatal(err)
			}
			err := bzImageToVmlinux(t.Context(), in, out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, self) {
				t.Fatalf("extracted %d bytes, want the %d of the original", len(got), len(self))
			}
		})
	}
}

// TestMarkerInitrd checks the initrd's members and that /init is a static executable for the
// architecture asked for.
func TestMarkerInitrd(t *testing.T) {
	testenv.Short(t, "builds a Go program")
	f, err := os.Open(MarkerInitrd(t, "s390x", "m"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	r := archive.NewCpioReader(z)
	var names []string
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name != "init" {
			continue
		}
		body, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		e, err := elf.NewFile(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if e.Machine != elf.EM_S390 || h.Mode&0o111 == 0 {
			t.Errorf("init: machine %v, mode %o; want EM_S390 and executable", e.Machine, h.Mode)
		}
		for _, p := range e.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("init has an interpreter: not static")
			}
		}
	}
	if got := strings.Join(names, " "); got != "dev dev/console init" {
		t.Errorf("initrd members %q, want dev dev/console init", got)
	}
}
