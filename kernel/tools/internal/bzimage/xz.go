package bzimage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// The .xz container (the xz file format specification, version 1.x): a stream header, blocks,
// an index and a footer. The kernel's xz payload is one stream whose blocks use the x86 branch
// filter ahead of LZMA2; the xz library decodes plain LZMA2 only, so the container and the
// filter are read here and the library decodes the LZMA2 data.

const (
	filterX86   = 0x04
	filterLZMA2 = 0x21
)

var xzMagic = []byte("\xfd7zXZ\x00")

// decodeXZ decodes an .xz stream whose blocks use LZMA2, optionally after the x86 filter.
// size is the expected uncompressed size (a capacity hint). The stream's index and footer are
// not read: every block's own check already covers its data.
func decodeXZ(stream []byte, size int) ([]byte, error) {
	if len(stream) < 12 || !bytes.Equal(stream[:6], xzMagic) {
		return nil, errors.New("no xz stream header")
	}
	flags := stream[6:8]
	if binary.LittleEndian.Uint32(stream[8:12]) != crc32.ChecksumIEEE(flags) {
		return nil, errors.New("xz stream header: CRC32 mismatch")
	}
	if flags[0] != 0 || flags[1]&0xf0 != 0 {
		return nil, fmt.Errorf("xz stream flags %#x %#x: reserved bits set", flags[0], flags[1])
	}
	check := flags[1]
	pos := 12
	out := make([]byte, 0, size)
	for {
		if pos >= len(stream) {
			return nil, errors.New("xz stream ends before its index")
		}
		if stream[pos] == 0 { // the index indicator: no more blocks
			return out, nil
		}
		n, data, err := decodeBlock(stream[pos:], check)
		if err != nil {
			return nil, fmt.Errorf("xz block at byte %d: %w", pos, err)
		}
		out = append(out, data...)
		pos += n
	}
}

// blockHeader is what a block header says about the block.
type blockHeader struct {
	size           int   // header length in bytes
	compressedSize int64 // -1 when absent
	dictCap        int
	x86            bool
}

// decodeBlock decodes the block at the start of b and returns its length (header, data,
// padding and check) and its uncompressed data.
func decodeBlock(b []byte, check byte) (int, []byte, error) {
	h, err := parseBlockHeader(b)
	if err != nil {
		return 0, nil, err
	}
	r := bytes.NewReader(b[h.size:])
	lr, err := lzma.Reader2Config{DictCap: h.dictCap}.NewReader2(r)
	if err != nil {
		return 0, nil, fmt.Errorf("LZMA2: %w", err)
	}
	data, err := io.ReadAll(lr)
	if err != nil {
		return 0, nil, fmt.Errorf("LZMA2: %w", err)
	}
	compressed := len(b) - h.size - r.Len()
	if h.compressedSize >= 0 && int64(compressed) != h.compressedSize {
		return 0, nil, fmt.Errorf("compressed size %d, the header says %d", compressed, h.compressedSize)
	}
	if h.x86 {
		x86Decode(data)
	}
	pos := h.size + compressed
	for pos%4 != 0 { // block padding, counted from the block's start (the stream header is 12 bytes)
		if pos >= len(b) || b[pos] != 0 {
			return 0, nil, errors.New("bad block padding")
		}
		pos++
	}
	n, err := verifyCheck(check, data, b[pos:])
	if err != nil {
		return 0, nil, err
	}
	return pos + n, data, nil
}

// parseBlockHeader reads a block header: its size, flags, optional sizes and filter chain.
// The chain must be LZMA2, optionally after the x86 filter with no start offset.
func parseBlockHeader(b []byte) (blockHeader, error) {
	h := blockHeader{size: (int(b[0]) + 1) * 4, compressedSize: -1}
	if len(b) < h.size {
		return h, errors.New("truncated block header")
	}
	hdr := b[:h.size]
	if binary.LittleEndian.Uint32(hdr[h.size-4:]) != crc32.ChecksumIEEE(hdr[:h.size-4]) {
		return h, errors.New("block header: CRC32 mismatch")
	}
	flags := hdr[1]
	if flags&0x3c != 0 {
		return h, fmt.Errorf("block flags %#x: reserved bits set", flags)
	}
	rest := hdr[2 : h.size-4]
	var err error
	if flags&0x40 != 0 {
		var v uint64
		if v, rest, err = uvarint(rest); err != nil {
			return h, err
		}
		h.compressedSize = int64(v)
	}
	if flags&0x80 != 0 {
		if _, rest, err = uvarint(rest); err != nil {
			return h, err
		}
	}
	filters := int(flags&3) + 1
	for i := 0; i < filters; i++ {
		var id, n uint64
		if id, rest, err = uvarint(rest); err != nil {
			return h, err
		}
		if n, rest, err = uvarint(rest); err != nil {
			return h, err
		}
		if n > uint64(len(rest)) {
			return h, errors.New("block header: filter properties overflow the header")
		}
		props := rest[:n]
		rest = rest[n:]
		last := i == filters-1
		switch {
		case id == filterLZMA2 && last && len(props) == 1:
			if h.dictCap, err = lzma2DictCap(props[0]); err != nil {
				return h, err
			}
		case id == filterX86 && !last && (len(props) == 0 || (len(props) == 4 && binary.LittleEndian.Uint32(props) == 0)):
			h.x86 = true
		default:
			return h, fmt.Errorf("filter %#x at place %d of %d is not supported (this decoder reads x86 then LZMA2)", id, i+1, filters)
		}
	}
	for _, c := range rest {
		if c != 0 {
			return h, errors.New("block header: non-zero padding")
		}
	}
	return h, nil
}

// lzma2DictCap decodes LZMA2's one-byte dictionary size property.
func lzma2DictCap(p byte) (int, error) {
	if p > 40 {
		return 0, fmt.Errorf("LZMA2 dictionary size property %d is out of range", p)
	}
	if p == 40 {
		return 1<<32 - 1, nil
	}
	return (2 | int(p&1)) << (p/2 + 11), nil
}

// uvarint reads the xz format's variable-length integer (7 bits a byte, low first, at most 9
// bytes).
func uvarint(b []byte) (uint64, []byte, error) {
	var v uint64
	for i := 0; i < len(b) && i < 9; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			if i > 0 && b[i] == 0 {
				return 0, nil, errors.New("block header: non-minimal integer")
			}
			return v, b[i+1:], nil
		}
	}
	return 0, nil, errors.New("block header: bad integer")
}

// verifyCheck compares the block's check field (at the start of b) with data and returns the
// field's length.
func verifyCheck(check byte, data, b []byte) (int, error) {
	var h hash.Hash
	switch check {
	case 0x00:
		return 0, nil
	case 0x01:
		h = crc32.NewIEEE()
	case 0x04:
		h = crc64.New(crc64.MakeTable(crc64.ECMA))
	case 0x0a:
		h = sha256.New()
	default:
		return 0, fmt.Errorf("xz check type %#x is not supported", check)
	}
	h.Write(data)
	sum := h.Sum(nil)
	n := len(sum)
	if len(b) < n {
		return 0, errors.New("truncated block check")
	}
	// xz stores CRCs little endian; Go's hashes give them big endian.
	want := b[:n]
	if check != 0x0a {
		want = reversed(want)
	}
	if !bytes.Equal(sum, want) {
		return 0, errors.New("block check mismatch: the data is corrupt")
	}
	return n, nil
}

func reversed(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[len(b)-1-i] = b[i]
	}
	return out
}
