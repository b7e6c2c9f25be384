package archive

import (
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/klauspost/pgzip"
)

// DefaultGzipLevel is the compression level kiln uses for initrds. On Go binaries and sources
// BestSpeed compresses about 220 MB per CPU-second (BenchmarkCpioGzip), so 200 MiB/s needs
// about one of the two cores and leaves the other to the producers; flate's default level
// (5) manages about 120 MB per CPU-second, too slow for the target, for output about 10%
// smaller.
const DefaultGzipLevel = pgzip.BestSpeed

// GzipBlockSize is the amount of input compressed as one block (with the previous block's
// last 16 KiB as dictionary). It is part of what fixes the output bytes: changing it changes
// them. 1 MiB compresses as well as 4 MiB, keeps memory small and still feeds every core.
const GzipBlockSize = 1 << 20

// gzipWriter hides pgzip's Flush: a flush would end a block early and make the output depend
// on when it was called.
type gzipWriter struct{ z *pgzip.Writer }

func (g gzipWriter) Write(p []byte) (int, error) { return g.z.Write(p) }
func (g gzipWriter) Close() error                { return g.z.Close() }

// NewGzipWriter returns a gzip writer that compresses on all cores (GOMAXPROCS) with
// github.com/klauspost/pgzip. The bytes it produces depend only on the input and level, never
// on the number of cores or goroutine scheduling: the input is cut into GzipBlockSize blocks
// at fixed offsets, each block is compressed on its own with the previous block's tail as
// dictionary, and the results are written in order. The header carries no name, comment or
// modification time and the OS byte 255 ("unknown"). Level is a compress/flate level
// (-2 Huffman only ... 9); DefaultGzipLevel keeps up with the cpio writer on two cores.
//
// Close writes the gzip trailer; it does not close w.
func NewGzipWriter(w io.Writer, level int) (io.WriteCloser, error) {
	return newGzipWriter(w, level, GzipBlockSize, runtime.GOMAXPROCS(0))
}

func newGzipWriter(w io.Writer, level, blockSize, blocks int) (io.WriteCloser, error) {
	z, err := pgzip.NewWriterLevel(w, level)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := z.SetConcurrency(blockSize, blocks); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	z.Name = ""
	z.Comment = ""
	z.Extra = nil
	z.ModTime = time.Unix(0, 0) // pgzip writes the zero time.Time as a non-zero value
	z.OS = 255
	return gzipWriter{z}, nil
}
