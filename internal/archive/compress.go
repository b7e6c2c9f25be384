package archive

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Compression names how an initramfs is compressed. The Linux kernel unpacks all three
// (zstd needs CONFIG_RD_ZSTD, Linux 5.9 and later; Debian's kernels have it).
type Compression string

const (
	// Gzip is LinuxKit's initramfs compression and kiln's default: every kernel with an
	// initramfs unpacks it. See NewGzipWriter.
	Gzip Compression = "gzip"
	// Zstd compresses faster and smaller than gzip at its fastest level. See NewZstdWriter.
	Zstd Compression = "zstd"
	// None writes the cpio as it is.
	None Compression = "none"
)

// Compressions lists every compression, the default first.
func Compressions() []Compression { return []Compression{Gzip, Zstd, None} }

// ParseCompression parses a compression name; the empty string is the default, Gzip.
func ParseCompression(s string) (Compression, error) {
	if s == "" {
		return Gzip, nil
	}
	for _, c := range Compressions() {
		if string(c) == s {
			return c, nil
		}
	}
	names := make([]string, 0, 3)
	for _, c := range Compressions() {
		names = append(names, string(c))
	}
	return "", fmt.Errorf("unknown compression %q; expected one of %s", s, strings.Join(names, ", "))
}

// DefaultLevel is the level a zero level stands for (0 for None).
func (c Compression) DefaultLevel() int {
	switch c {
	case Gzip:
		return DefaultGzipLevel
	case Zstd:
		return DefaultZstdLevel
	}
	return 0
}

// Levels returns the lowest (fastest) and highest (smallest) level c accepts; None has none
// (0, 0).
func (c Compression) Levels() (lo, hi int) {
	switch c {
	case Gzip:
		return 1, 9
	case Zstd:
		return 1, 4
	}
	return 0, 0
}

// NewCompressWriter returns a writer compressing into w with c at level (0: c's default).
// Close ends the compressed stream; it never closes w. With None the bytes pass through.
func NewCompressWriter(w io.Writer, c Compression, level int) (io.WriteCloser, error) {
	if level == 0 {
		level = c.DefaultLevel()
	}
	switch c {
	case Gzip:
		return NewGzipWriter(w, level)
	case Zstd:
		return NewZstdWriter(w, level)
	case None:
		if level != 0 {
			return nil, fmt.Errorf("compression none takes no level (got %d)", level)
		}
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", string(c))
}

type nopCloser struct{ io.Writer }

// writerOnly hides every method but Write, so bufio does not hand large writes to ReadFrom.
type writerOnly struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// DefaultZstdLevel is klauspost/compress's SpeedFastest: about 2-3 times gzip level 1's speed
// per core, for output about 10-15% smaller.
const DefaultZstdLevel = int(zstd.SpeedFastest)

// ZstdMaxWindow is the largest window (back-reference distance) an initramfs frame may ask
// for. The kernel's lib/decompress_unzstd.c reads the window size from the frame header and
// allocates a buffer that large (it refuses more than 1 << ZSTD_WINDOWLOG_MAX); 8 MiB is what
// every zstd decoder is recommended to support, and a small guest can spare it.
const ZstdMaxWindow = 8 << 20

// zstdConcurrency fixes how many blocks the zstd encoder works on at once (one compressed
// while the next fills), whatever GOMAXPROCS is. klauspost/compress cuts a stream into blocks
// at fixed input offsets, so the bytes do not depend on it (TestZstdIndependentOfConcurrency),
// but fixing it also keeps memory the same on every machine.
const zstdConcurrency = 2

// zstdWriter hides the encoder's Flush and ReadFrom (a flush would end a block early and make
// the output depend on when it was called) and gathers the cpio writer's small writes
// (headers, names, padding) into 64 KiB ones: each encoder Write has a fixed cost that made
// systems of many small files slower with zstd than with gzip. The bytes do not change: the
// encoder cuts blocks at fixed input offsets whatever the writes.
type zstdWriter struct {
	buf *bufio.Writer
	z   *zstd.Encoder
}

func (z zstdWriter) Write(p []byte) (int, error) { return z.buf.Write(p) }

func (z zstdWriter) Close() error {
	if err := z.buf.Flush(); err != nil {
		return errors.Join(err, z.z.Close())
	}
	return z.z.Close()
}

// NewZstdWriter returns a writer that compresses into w as one zstd frame the Linux kernel
// unpacks as an initramfs: its header carries the window size (at most ZstdMaxWindow; the
// frame is not single-segment and has no content size, which a stream cannot know up front),
// and it ends with a checksum the kernel verifies. Level is klauspost/compress's encoder
// level: 1 fastest (about zstd -1), 2 default (zstd -3), 3 better (zstd -7), 4 best
// (zstd -11). The bytes depend only on the input and the level.
//
// Close ends the frame; it does not close w.
func NewZstdWriter(w io.Writer, level int) (io.WriteCloser, error) {
	return newZstdWriter(w, level, zstdConcurrency)
}

func newZstdWriter(w io.Writer, level, concurrency int) (io.WriteCloser, error) {
	if level < 1 || level > 4 {
		return nil, fmt.Errorf("zstd level %d: expected 1 (fastest) to 4 (smallest)", level)
	}
	opts := []zstd.EOption{
		zstd.WithEncoderLevel(zstd.EncoderLevel(level)),
		// After the level, which would otherwise pick the window: a library update must not
		// change the bytes or raise what the guest has to allocate.
		zstd.WithWindowSize(zstdWindow(level)),
		zstd.WithEncoderConcurrency(concurrency),
		zstd.WithEncoderCRC(true),
		zstd.WithZeroFrames(true), // an empty input still makes a frame the kernel accepts
	}
	z, err := zstd.NewWriter(w, opts...)
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return zstdWriter{buf: bufio.NewWriterSize(writerOnly{z}, 64<<10), z: z}, nil
}

// zstdWindow is the window of each level: 4 MiB for the fastest, ZstdMaxWindow for the
// others (the sizes klauspost/compress v1.20 picks by itself, fixed here).
func zstdWindow(level int) int {
	if zstd.EncoderLevel(level) == zstd.SpeedFastest {
		return 4 << 20
	}
	return ZstdMaxWindow
}
