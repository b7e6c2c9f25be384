package bzimage

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"kiln.example/kerneltools/internal/testdeb"
	"kiln.example/kerneltools/internal/testenv"
)

// makeBzImage wraps payload (a compressed stream) in a minimal bzImage: a boot sector with the
// setup header, setupSects sectors of setup code, then the payload followed by size.
func makeBzImage(setupSects byte, version uint16, payload []byte, size uint32) []byte {
	sects := int(setupSects)
	if sects == 0 {
		sects = 4
	}
	b := make([]byte, (sects+1)*512+16)
	b[offSetupSects] = setupSects
	copy(b[offHeaderMagic:], "HdrS")
	binary.LittleEndian.PutUint16(b[offVersion:], version)
	binary.LittleEndian.PutUint32(b[offPayloadOffset:], 16)
	binary.LittleEndian.PutUint32(b[offPayloadLength:], uint32(len(payload)+4))
	b = append(b, payload...)
	return binary.LittleEndian.AppendUint32(b, size)
}

// sample is some x86 machine code (this test binary on an amd64 machine) that starts like an
// ELF file, so it passes Vmlinux's checks.
func sample(t *testing.T, n int) []byte {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > n {
		data = data[:n]
	}
	return data
}

func TestPayloadFormat(t *testing.T) {
	tests := []struct {
		name    string
		bz      []byte
		format  string
		wantErr string
	}{
		{"xz", makeBzImage(27, 0x20f, []byte("\xfd7zXZ\x00rest"), 1), "xz", ""},
		{"gzip, 4 setup sectors written as 0", makeBzImage(0, 0x20f, []byte("\x1f\x8b\x08\x00rest"), 1), "gzip", ""},
		{"zstd", makeBzImage(3, 0x20f, []byte("\x28\xb5\x2f\xfdrest"), 1), "zstd", ""},
		{"lz4", makeBzImage(3, 0x20f, []byte("\x02\x21\x4c\x18rest"), 1), "lz4", ""},
		{"unknown", makeBzImage(3, 0x20f, []byte("whatever"), 1), "unknown", ""},
		{"old boot protocol", makeBzImage(3, 0x207, []byte("\xfd7zXZ\x00rest"), 1), "", "older than 2.08"},
		{"not a bzImage", make([]byte, 4096), "", "no HdrS"},
		{"too short", []byte("HdrS"), "", "no HdrS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, format, err := Payload(tt.bz)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || format != tt.format {
				t.Fatalf("format %q, err %v; want %q", format, err, tt.format)
			}
		})
	}
	truncated := makeBzImage(3, 0x20f, []byte("\xfd7zXZ\x00rest"), 1)
	if _, _, err := Payload(truncated[:len(truncated)-6]); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("a payload past the end of the file: err = %v", err)
	}
}

func TestVmlinuxGzip(t *testing.T) {
	want := sample(t, 256<<10)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(want)
	zw.Close()
	got, err := Vmlinux(makeBzImage(30, 0x20f, z.Bytes(), uint32(len(want))))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("gzip payload decoded to different bytes")
	}
	if _, err := Vmlinux(makeBzImage(30, 0x20f, z.Bytes(), uint32(len(want)+1))); err == nil || !strings.Contains(err.Error(), "header says") {
		t.Errorf("a wrong size in the bzImage: err = %v", err)
	}
	if _, err := Vmlinux(makeBzImage(30, 0x20f, []byte("\x28\xb5\x2f\xfdrest"), 4)); err == nil || !strings.Contains(err.Error(), "zstd") {
		t.Errorf("a zstd payload: err = %v, want one naming zstd", err)
	}
}

// TestDecodeXZ compresses data with the xz command (the reference implementation) in the
// variants the kernel and others use, and checks decodeXZ gives the data back.
func TestDecodeXZ(t *testing.T) {
	xz, err := exec.LookPath("xz")
	if err != nil {
		testenv.SkipOrFail(t, "the xz command is missing (apt-get install xz-utils): %v", err)
	}
	data := sample(t, 3<<20)
	// Make sure the x86 filter has work to do and history to keep: runs of E8/E9 bytes close
	// together, with targets of every kind.
	extra := []byte{0xe8, 0, 0, 0, 0, 0xe8, 0xe9, 0xff, 0xff, 0xff, 0xe8, 1, 2, 3, 0xff, 0xe9, 0xe8, 0, 0, 0, 0, 0xe8}
	for i := 0; i < 200; i++ {
		data = append(data, extra...)
		data = append(data, byte(i), 0xe8, byte(i*7), 0x00, 0xff, 0x00)
	}
	tests := []struct {
		name string
		args []string
	}{
		{"kernel: x86 then LZMA2, CRC32", []string{"--check=crc32", "--x86", "--lzma2=dict=32MiB"}},
		{"LZMA2 only, CRC64", []string{"--check=crc64", "--lzma2=preset=6"}},
		{"x86, SHA-256, several blocks", []string{"--check=sha256", "--block-size=1MiB", "--x86", "--lzma2=dict=1MiB"}},
		{"no check", []string{"--check=none", "--x86", "--lzma2=preset=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(xz, append([]string{"-c", "-T1", "--format=xz"}, tt.args...)...)
			cmd.Stdin = bytes.NewReader(data)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("xz: %v: %s", err, stderr.String())
			}
			got, err := decodeXZ(out, len(data))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("decoded %d bytes differ from the %d compressed", len(got), len(data))
			}
			// A flipped bit in the compressed data must not go unnoticed.
			bad := append([]byte(nil), out...)
			bad[len(bad)/2] ^= 0x10
			if got, err := decodeXZ(bad, len(data)); err == nil && bytes.Equal(got, data) {
				t.Fatal("corrupt input decoded to the original")
			} else if err == nil && !strings.Contains(tt.name, "no check") {
				t.Fatal("corrupt input decoded without an error")
			}
		})
	}
	// A filter this decoder does not know is named in the error.
	cmd := exec.Command(xz, "-c", "--format=xz", "--arm64", "--lzma2=preset=1")
	cmd.Stdin = bytes.NewReader(data[:4096])
	if out, err := cmd.Output(); err == nil { // older xz lacks --arm64
		if _, err := decodeXZ(out, 4096); err == nil || !strings.Contains(err.Error(), "filter 0xa") {
			t.Errorf("arm64 filter: err = %v, want one naming filter 0xa", err)
		}
	}
}

// TestDebianBzImage takes vmlinux out of Debian's amd64 kernel and checks it is the ELF kernel
// QEMU can boot through PVH.
func TestDebianBzImage(t *testing.T) {
	testenv.Short(t, "unpacks a kernel package")
	root := testdeb.Unpack(t, "amd64")
	imgs, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(imgs) != 1 {
		t.Fatalf("want one boot/vmlinuz-*, found %q", imgs)
	}
	bz, err := os.ReadFile(imgs[0])
	if err != nil {
		t.Fatal(err)
	}
	_, format, err := Payload(bz)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s payload", filepath.Base(imgs[0]), format)
	vmlinux, err := Vmlinux(bz)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		t.Fatal(err)
	}
	if f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		t.Errorf("vmlinux is %v %v, want EM_X86_64 ET_EXEC", f.Machine, f.Type)
	}
	entry, ok, err := PVHEntry(vmlinux)
	if err != nil || !ok || entry == 0 {
		t.Fatalf("PVH entry %#x, found %v, err %v", entry, ok, err)
	}
	t.Logf("vmlinux: %d bytes, PVH entry %#x", len(vmlinux), entry)
	// A kernel without the note: this test binary.
	if _, ok, err := PVHEntry(sample(t, 1<<30)); err != nil || ok {
		t.Errorf("a program with no Xen note: found %v, err %v", ok, err)
	}
}
