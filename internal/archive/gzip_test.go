package archive

import (
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/pgzip"
)

// genContent returns n deterministic bytes that compress roughly like a root filesystem:
// text-like runs, incompressible runs and zero runs.
func genContent(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x6b696c6e))
	words := strings.Fields("the of and to in is that for it with as was on be by this are from at or an which " +
		"kernel module init containerd runc service config linux amd64 arm64 lib usr bin etc error return func")
	out := make([]byte, 0, n)
	for len(out) < n {
		chunk := 256 + rng.IntN(8192)
		switch rng.IntN(8) {
		case 0, 1, 2, 3: // text
			for end := len(out) + chunk; len(out) < end; {
				out = append(out, words[rng.IntN(len(words))]...)
				out = append(out, " \n"[min(rng.IntN(12), 1)])
			}
		case 4, 5, 6: // random (machine code, compressed data)
			for range chunk {
				out = append(out, byte(rng.Uint32()))
			}
		default: // zeros (padding, bss)
			out = append(out, make([]byte, chunk)...)
		}
	}
	return out[:n]
}

func gzipBytes(t testing.TB, data []byte, level, blockSize, blocks int, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := newGzipWriter(&buf, level, blockSize, blocks)
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

func TestGzipHeader(t *testing.T) {
	for _, tt := range []struct {
		level int
		xfl   byte
	}{{pgzip.BestSpeed, 4}, {pgzip.DefaultCompression, 0}, {pgzip.BestCompression, 2}} {
		var buf bytes.Buffer
		w, err := NewGzipWriter(&buf, tt.level)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		// ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL OS=255: no name, comment, extra or time.
		want := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, tt.xfl, 255}
		if got := buf.Bytes()[:10]; !bytes.Equal(got, want) {
			t.Errorf("level %d: header % x, want % x", tt.level, got, want)
		}
	}
	if _, err := NewGzipWriter(io.Discard, 42); err == nil {
		t.Error("level 42 accepted")
	}
}

func TestGzipRoundTrip(t *testing.T) {
	data := genContent(1, 3<<20+12345)
	for _, level := range []int{pgzip.BestSpeed, DefaultGzipLevel, pgzip.DefaultCompression, pgzip.BestCompression} {
		z := gzipBytes(t, data, level, GzipBlockSize, 2, 100000)
		r, err := gzip.NewReader(bytes.NewReader(z))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("level %d: round trip differs", level)
		}
	}
}

// TestGzipIndependentOfConcurrency checks that the bytes depend only on the input: not on how
// many blocks compress in parallel, GOMAXPROCS, or how the input is cut into Write calls.
func TestGzipIndependentOfConcurrency(t *testing.T) {
	data := genContent(2, 6<<20+777)
	for _, level := range []int{DefaultGzipLevel, pgzip.DefaultCompression} {
		want := gzipBytes(t, data, level, GzipBlockSize, 1, len(data))
		for _, tt := range []struct {
			blocks, chunk int
		}{{2, 4096}, {4, 1 << 20}, {16, 65537}} {
			if got := gzipBytes(t, data, level, GzipBlockSize, tt.blocks, tt.chunk); !bytes.Equal(got, want) {
				t.Errorf("level %d: %d blocks with %d-byte writes give different bytes", level, tt.blocks, tt.chunk)
			}
		}
		for _, procs := range []int{1, 2} {
			old := runtime.GOMAXPROCS(procs)
			var buf bytes.Buffer
			w, err := NewGzipWriter(&buf, level)
			if err == nil {
				_, err = w.Write(data)
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
	// The block size does change the output: it is part of the format's identity.
	if bytes.Equal(gzipBytes(t, data, DefaultGzipLevel, GzipBlockSize/2, 2, len(data)),
		gzipBytes(t, data, DefaultGzipLevel, GzipBlockSize, 2, len(data))) {
		t.Error("block size has no effect; the test data is too small to cover several blocks")
	}
}

// TestGzipConcatenatedCpio writes two cpio archives as two gzip members, as an initrd with
// separate module and microcode archives would be, and reads them back.
func TestGzipConcatenatedCpio(t *testing.T) {
	var out bytes.Buffer
	for _, items := range [][]item{
		{dir("kernel", 0o755), reg("kernel/microcode.bin", 0o644, "ucode")},
		{dir("lib", 0o755), withLinks(reg("lib/a.ko", 0o644, "module"), 1), hardlink("lib/b.ko", "lib/a.ko")},
	} {
		z, err := NewGzipWriter(&out, DefaultGzipLevel)
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, NewCpioWriter(z), items)
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
	}
	zr, err := gzip.NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range readCpio(t, plain) {
		names = append(names, it.hdr.Name+"="+it.body+it.hdr.Linkname)
	}
	if got, want := strings.Join(names, " "), "kernel= kernel/microcode.bin=ucode lib= lib/a.ko=module lib/b.ko=lib/a.ko"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
