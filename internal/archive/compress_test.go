package archive

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func zstdBytes(t testing.TB, data []byte, level, concurrency, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := newZstdWriter(&buf, level, concurrency)
	if err != nil {
		t.Fatal(err)
	}
	for p := data; len(p) > 0; {
		n := min(chunk, len(p))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func unzstd(t *testing.T, z []byte) []byte {
	t.Helper()
	r, err := zstd.NewReader(bytes.NewReader(z), zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestZstdRoundTrip(t *testing.T) {
	data := genContent(1, 3<<20+12345)
	for level := 1; level <= 4; level++ {
		z := zstdBytes(t, data, level, zstdConcurrency, 100000)
		if got := unzstd(t, z); !bytes.Equal(got, data) {
			t.Fatalf("level %d: round trip differs", level)
		}
	}
	// An empty stream is still one frame, which the kernel's decompressor needs.
	if got := unzstd(t, zstdBytes(t, nil, DefaultZstdLevel, 2, 1)); len(got) != 0 {
		t.Errorf("empty input gave %d bytes back", len(got))
	}
	for _, level := range []int{-1, 0, 5, 22} {
		if _, err := NewZstdWriter(io.Discard, level); err == nil {
			t.Errorf("level %d accepted", level)
		}
	}
}

// zstdFrameHeader decodes the fields of a zstd frame header that the kernel's initramfs
// decompressor depends on (RFC 8878, section 3.1.1.1).
func zstdFrameHeader(t *testing.T, z []byte) (singleSegment bool, window uint64, checksum bool) {
	t.Helper()
	if len(z) < 6 || binary.LittleEndian.Uint32(z) != 0xFD2FB528 {
		t.Fatalf("no zstd magic: % x", z[:min(len(z), 8)])
	}
	fhd := z[4]
	singleSegment = fhd&0x20 != 0
	checksum = fhd&0x04 != 0
	if !singleSegment {
		wd := z[5]
		exp, mant := uint64(wd>>3), uint64(wd&7)
		base := uint64(1) << (10 + exp)
		window = base + base/8*mant
	}
	return singleSegment, window, checksum
}

// TestZstdFrameHeader checks what lib/decompress_unzstd.c needs: a window descriptor (a
// stream cannot be single-segment) no larger than ZstdMaxWindow, and a checksum.
func TestZstdFrameHeader(t *testing.T) {
	data := genContent(4, 20<<20)
	for level := 1; level <= 4; level++ {
		z := zstdBytes(t, data, level, zstdConcurrency, 1<<20)
		single, window, sum := zstdFrameHeader(t, z)
		if single || window == 0 || window > ZstdMaxWindow || !sum {
			t.Errorf("level %d: single-segment %v, window %d (max %d), checksum %v", level, single, window, ZstdMaxWindow, sum)
		}
		// One frame: the decoder stops exactly at the end.
		var h zstd.Header
		if err := h.Decode(z); err != nil {
			t.Fatal(err)
		}
		if h.WindowSize != window {
			t.Errorf("level %d: klauspost reads window %d, the test %d", level, h.WindowSize, window)
		}
	}
}

// TestZstdIndependentOfConcurrency checks that the bytes depend only on the input and level:
// not on the encoder's concurrency, GOMAXPROCS, or how the input is cut into Write calls.
func TestZstdIndependentOfConcurrency(t *testing.T) {
	data := genContent(2, 6<<20+777)
	for level := 1; level <= 4; level++ {
		if testing.Short() && level > 2 {
			break
		}
		want := zstdBytes(t, data, level, 1, len(data))
		for _, tt := range []struct{ concurrency, chunk int }{{2, 4096}, {4, 1 << 20}, {16, 65537}} {
			if got := zstdBytes(t, data, level, tt.concurrency, tt.chunk); !bytes.Equal(got, want) {
				t.Errorf("level %d: concurrency %d with %d-byte writes gives different bytes", level, tt.concurrency, tt.chunk)
			}
		}
		for _, procs := range []int{1, 2} {
			old := runtime.GOMAXPROCS(procs)
			var buf bytes.Buffer
			w, err := NewZstdWriter(&buf, level)
			if err == nil {
				_, err = io.Copy(w, bytes.NewReader(data))
			}
			if err == nil {
				err = w.Close()
			}
			runtime.GOMAXPROCS(old)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("level %d: GOMAXPROCS=%d gives different bytes", level, procs)
			}
		}
	}
}

// TestZstdCpioRoundTrip writes a cpio through NewCompressWriter with each compression and
// reads it back.
func TestZstdCpioRoundTrip(t *testing.T) {
	items := []item{dir("lib", 0o755), withLinks(reg("lib/a.ko", 0o644, "module"), 1), hardlink("lib/b.ko", "lib/a.ko"),
		reg("big", 0o644, string(genContent(5, 1<<20)))}
	for _, c := range Compressions() {
		var out bytes.Buffer
		z, err := NewCompressWriter(&out, c, 0)
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, NewCpioWriter(z), items)
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
		plain := out.Bytes()
		switch c {
		case Zstd:
			plain = unzstd(t, plain)
		case Gzip:
			zr, err := gzip.NewReader(bytes.NewReader(plain))
			if err != nil {
				t.Fatal(err)
			}
			if plain, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		got := readCpio(t, plain)
		if len(got) != len(items) || got[3].body != items[3].body {
			t.Errorf("%s: read %d entries back, want %d with the same content", c, len(got), len(items))
		}
	}
}

func TestParseCompression(t *testing.T) {
	for in, want := range map[string]Compression{"": Gzip, "gzip": Gzip, "zstd": Zstd, "none": None} {
		if got, err := ParseCompression(in); err != nil || got != want {
			t.Errorf("ParseCompression(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"xz", "GZIP", "lz4"} {
		if _, err := ParseCompression(in); err == nil {
			t.Errorf("ParseCompression(%q) accepted", in)
		}
	}
	if _, err := NewCompressWriter(io.Discard, None, 3); err == nil {
		t.Error("none with a level accepted")
	}
	if _, err := NewCompressWriter(io.Discard, Gzip, 10); err == nil {
		t.Error("gzip level 10 accepted")
	}
}
