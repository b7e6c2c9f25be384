package archive

import (
	"archive/tar"
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/pgzip"
)

// benchTotal is the amount of file content one benchmark iteration writes.
const benchTotal = 256 << 20

var benchBlocks = 2

// benchTree writes ~256 MiB of files (4 KiB to 2 MiB each, cut from a 32 MiB pool of
// generated content) into w.
func benchTree(b *testing.B, w Writer, pool []byte) {
	rng := rand.New(rand.NewPCG(7, 7))
	if err := w.WriteEntry(dir("data", 0o755).e, nil); err != nil {
		b.Fatal(err)
	}
	for i, left := 0, benchTotal; left > 0; i++ {
		size := min(left, 4096+rng.IntN(min(2<<20, len(pool)/2)))
		off := rng.IntN(len(pool) - size)
		e := Entry{Header: &tar.Header{Typeflag: tar.TypeReg, Name: "data/f" + strconv.Itoa(i), Mode: 0o644, Size: int64(size)}}
		if err := w.WriteEntry(e, bytes.NewReader(pool[off:off+size])); err != nil {
			b.Fatal(err)
		}
		left -= size
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCpioGzip measures the initrd path end to end: cpio writer into the parallel gzip
// writer (or the zstd writer) into io.Discard. MB/s counts uncompressed file content. The "ratio" metric is
// compressed size / content size. The content is generated; set KILN_BENCH_CONTENT to a file
// of at least 4 MiB (an uncompressed rootfs tar, say) to cut the files from real data instead.
func BenchmarkCpioGzip(b *testing.B) {
	pool := genContent(3, 32<<20)
	if path := os.Getenv("KILN_BENCH_CONTENT"); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		if len(data) < 4<<20 {
			b.Fatalf("%s: %d bytes; want at least 4 MiB", path, len(data))
		}
		pool = data[:min(len(data), 64<<20)]
	}
	for _, bc := range []struct {
		name      string
		level     int
		blockSize int
	}{
		{"cpio-only", 0, 0},
		{"BestSpeed", pgzip.BestSpeed, GzipBlockSize},
		{"BestSpeed-256KiB", pgzip.BestSpeed, 256 << 10},
		{"BestSpeed-4MiB", pgzip.BestSpeed, 4 << 20},
		{"level3", 3, GzipBlockSize},
		{"level5", 5, GzipBlockSize},
		{"Default", pgzip.DefaultCompression, GzipBlockSize},
		{"HuffmanOnly", pgzip.HuffmanOnly, GzipBlockSize},
		{"zstd-fastest", 1, -1}, // blockSize -1: zstd at this level
		{"zstd-default", 2, -1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(benchTotal)
			b.ReportAllocs()
			var out countingDiscard
			cpu0 := cpuTime(b)
			for b.Loop() {
				out = 0
				if bc.blockSize == 0 {
					benchTree(b, NewCpioWriter(&out), pool)
					continue
				}
				var z io.WriteCloser
				var err error
				if bc.blockSize < 0 {
					z, err = NewZstdWriter(&out, bc.level)
				} else {
					z, err = newGzipWriter(&out, bc.level, bc.blockSize, benchBlocks)
				}
				if err != nil {
					b.Fatal(err)
				}
				benchTree(b, NewCpioWriter(z), pool)
				if err := z.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(out)/benchTotal, "ratio")
			// CPU time is robust against other load on the machine: MB per CPU-second, times
			// the cores, bounds what an idle machine reaches.
			if cpu := (cpuTime(b) - cpu0).Seconds(); cpu > 0 {
				b.ReportMetric(float64(b.N)*benchTotal/1e6/cpu, "MB/cpu-s")
			}
		})
	}
}

// cpuTime returns the user and system CPU time the process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type countingDiscard int64

func (c *countingDiscard) Write(p []byte) (int, error) {
	*c += countingDiscard(len(p))
	return len(p), nil
}

var _ io.Writer = (*countingDiscard)(nil)
