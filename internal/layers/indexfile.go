package layers

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"os"
	"slices"
)

// The header index of one layer (what pass 1 keeps of each of its entries) is written in a
// compact binary form as the layer is read, and applied to the index from there: pass 1
// never holds a layer's records in memory, and a store (IndexStore) can keep the form
// between builds so that a later build does not read the layer's headers again.
//
// The form, all integers unsigned varints unless said otherwise:
//
//	magic "kiln-layer-index\n", version
//	records, each: kind (1 entry, 2 whiteout, 3 opaque), entry index minus the previous
//	  record's (the first counts from -1), name as the length it shares with the previous
//	  record's name then the rest (length, bytes); entries add the type flag (one byte), hard
//	  links their target (length, bytes), directories mode, uid and gid (signed varints),
//	  uname, gname and the extended attributes (count, then key and value, sorted by key)
//	end: a 0 byte, the number of entries, the number of whiteouts and opaque markers
//	the SHA-256 of every byte before it (32 bytes)
//
// A stored index whose magic, version or checksum is wrong, or that does not decode, is
// ignored and rebuilt from the layer.
const (
	indexMagic   = "kiln-layer-index\n"
	indexVersion = 1
)

// spillMemMax is how much of a layer's encoded index is kept in memory before it moves to a
// temporary file (a variable for tests).
var spillMemMax = 1 << 20

// errIndexDamaged is wrapped by every error about an encoded index that does not decode.
var errIndexDamaged = errors.New("layer index damaged")

// IndexStore keeps the header index of one layer between builds, keyed by something that
// names the layer's bytes (the kiln cache uses the layer's compressed digest). Flatten and
// ReadFile check what they read from it (format version and checksum) and rebuild it from
// the layer when it is missing or damaged. The layer's content itself is still checked by
// the Layer when pass 2 reads it.
type IndexStore interface {
	// OpenIndex opens the stored index; any error (a missing one should wrap fs.ErrNotExist)
	// makes the caller rebuild it.
	OpenIndex() (io.ReadSeekCloser, error)
	// WriteIndex stores the index write produces, completely or not at all. It is called
	// only after the whole layer was read without error (so a verifying Layer found it
	// intact). Its error is ignored: a build does not fail because an index was not kept.
	WriteIndex(write func(io.Writer) error) error
}

// IndexedLayer is a Layer that has an IndexStore.
type IndexedLayer interface {
	Layer
	// IndexStore returns the layer's store, or nil when it has none.
	IndexStore() IndexStore
}

// indexEncoder writes the encoded records of one layer.
type indexEncoder struct {
	dst       io.Writer
	h         hash.Hash
	w         *bufio.Writer // to dst and h
	buf       []byte
	prevName  string
	prevIdx   int32
	entries   uint64
	whiteouts uint64
}

func newIndexEncoder(dst io.Writer) (*indexEncoder, error) {
	h := sha256.New()
	e := &indexEncoder{dst: dst, h: h, w: bufio.NewWriterSize(io.MultiWriter(dst, h), 64<<10), prevIdx: -1}
	e.buf = append(e.buf, indexMagic...)
	e.buf = binary.AppendUvarint(e.buf, indexVersion)
	if _, err := e.w.Write(e.buf); err != nil {
		return nil, err
	}
	return e, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func (e *indexEncoder) add(r rec) error {
	b := append(e.buf[:0], byte(r.kind)+1)
	b = binary.AppendUvarint(b, uint64(r.idx-e.prevIdx))
	shared := commonPrefix(e.prevName, r.name)
	b = binary.AppendUvarint(b, uint64(shared))
	b = appendString(b, r.name[shared:])
	e.prevName, e.prevIdx = r.name, r.idx
	if r.kind != recEntry {
		e.whiteouts++
	} else {
		e.entries++
		b = append(b, r.typ)
		switch r.typ {
		case tar.TypeLink:
			b = appendString(b, r.linkname)
		case tar.TypeDir:
			h := r.hdr
			b = binary.AppendUvarint(b, uint64(h.Mode&0o7777))
			b = binary.AppendVarint(b, int64(h.Uid))
			b = binary.AppendVarint(b, int64(h.Gid))
			b = appendString(b, h.Uname)
			b = appendString(b, h.Gname)
			keys := slices.Sorted(maps.Keys(h.PAXRecords))
			b = binary.AppendUvarint(b, uint64(len(keys)))
			for _, k := range keys {
				b = appendString(b, k)
				b = appendString(b, h.PAXRecords[k])
			}
		}
	}
	e.buf = b
	_, err := e.w.Write(b)
	return err
}

// close writes the end and the checksum.
func (e *indexEncoder) close() error {
	b := append(e.buf[:0], 0)
	b = binary.AppendUvarint(b, e.entries)
	b = binary.AppendUvarint(b, e.whiteouts)
	if _, err := e.w.Write(b); err != nil {
		return err
	}
	if err := e.w.Flush(); err != nil {
		return err
	}
	_, err := e.dst.Write(e.h.Sum(nil))
	return err
}

// indexDecoder reads encoded records.
type indexDecoder struct {
	r         *bufio.Reader
	name      []byte
	idx       int32
	entries   uint64 // counted so far, then the end's figures
	whiteouts uint64
	end       bool
}

func newIndexDecoder(r io.Reader) (*indexDecoder, error) {
	d := &indexDecoder{r: bufio.NewReaderSize(r, 64<<10), idx: -1}
	magic := make([]byte, len(indexMagic))
	if _, err := io.ReadFull(d.r, magic); err != nil || string(magic) != indexMagic {
		return nil, fmt.Errorf("%w: not a layer index", errIndexDamaged)
	}
	v, err := binary.ReadUvarint(d.r)
	if err != nil || v != indexVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", errIndexDamaged, v, indexVersion)
	}
	return d, nil
}

func (d *indexDecoder) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(d.r)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errIndexDamaged, noEOF(err))
	}
	return v, nil
}

func (d *indexDecoder) varint() (int64, error) {
	v, err := binary.ReadVarint(d.r)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errIndexDamaged, noEOF(err))
	}
	return v, nil
}

// maxIndexString bounds every length read, so a damaged index cannot ask for a huge buffer.
const maxIndexString = 1 << 20

func (d *indexDecoder) bytes(dst []byte) ([]byte, error) {
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if n > maxIndexString {
		return nil, fmt.Errorf("%w: string of %d bytes", errIndexDamaged, n)
	}
	start := len(dst)
	dst = slices.Grow(dst, int(n))[:start+int(n)]
	if _, err := io.ReadFull(d.r, dst[start:]); err != nil {
		return nil, fmt.Errorf("%w: %w", errIndexDamaged, noEOF(err))
	}
	return dst, nil
}

func (d *indexDecoder) string() (string, error) {
	b, err := d.bytes(nil)
	return string(b), err
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// next returns the next record; ok is false at the end (whose figures are then in
// d.entries and d.whiteouts).
func (d *indexDecoder) next() (r rec, ok bool, err error) {
	k, err := d.r.ReadByte()
	if err != nil {
		return rec{}, false, fmt.Errorf("%w: %w", errIndexDamaged, noEOF(err))
	}
	if k == 0 {
		e, err := d.uvarint()
		if err != nil {
			return rec{}, false, err
		}
		w, err := d.uvarint()
		if err != nil {
			return rec{}, false, err
		}
		if e != d.entries || w != d.whiteouts {
			return rec{}, false, fmt.Errorf("%w: %d entries and %d whiteouts, the end says %d and %d",
				errIndexDamaged, d.entries, d.whiteouts, e, w)
		}
		d.end = true
		return rec{}, false, nil
	}
	if k > byte(recOpaque)+1 {
		return rec{}, false, fmt.Errorf("%w: record kind %d", errIndexDamaged, k)
	}
	r.kind = recKind(k - 1)
	delta, err := d.uvarint()
	if err != nil {
		return rec{}, false, err
	}
	if delta == 0 || delta > 1<<31 || int64(d.idx)+int64(delta) > 1<<31-1 {
		return rec{}, false, fmt.Errorf("%w: entry index step %d", errIndexDamaged, delta)
	}
	d.idx += int32(delta)
	r.idx = d.idx
	shared, err := d.uvarint()
	if err != nil {
		return rec{}, false, err
	}
	if shared > uint64(len(d.name)) {
		return rec{}, false, fmt.Errorf("%w: name shares %d bytes of %d", errIndexDamaged, shared, len(d.name))
	}
	if d.name, err = d.bytes(d.name[:shared]); err != nil {
		return rec{}, false, err
	}
	r.name = string(d.name)
	if r.kind != recEntry {
		d.whiteouts++
		return r, true, nil
	}
	d.entries++
	if r.typ, err = d.r.ReadByte(); err != nil {
		return rec{}, false, fmt.Errorf("%w: %w", errIndexDamaged, noEOF(err))
	}
	switch r.typ {
	case tar.TypeReg, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	case tar.TypeLink:
		if r.linkname, err = d.string(); err != nil {
			return rec{}, false, err
		}
	case tar.TypeDir:
		if r.hdr, err = d.dirHeader(); err != nil {
			return rec{}, false, err
		}
	default:
		return rec{}, false, fmt.Errorf("%w: entry type %q", errIndexDamaged, r.typ)
	}
	return r, true, nil
}

func (d *indexDecoder) dirHeader() (*tar.Header, error) {
	h := &tar.Header{Typeflag: tar.TypeDir}
	mode, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if mode > 0o7777 {
		return nil, fmt.Errorf("%w: mode %o", errIndexDamaged, mode)
	}
	h.Mode = int64(mode)
	uid, err := d.varint()
	if err != nil {
		return nil, err
	}
	gid, err := d.varint()
	if err != nil {
		return nil, err
	}
	h.Uid, h.Gid = int(uid), int(gid)
	if h.Uname, err = d.string(); err != nil {
		return nil, err
	}
	if h.Gname, err = d.string(); err != nil {
		return nil, err
	}
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if n > maxIndexString {
		return nil, fmt.Errorf("%w: %d extended attributes", errIndexDamaged, n)
	}
	for range n {
		k, err := d.string()
		if err != nil {
			return nil, err
		}
		v, err := d.string()
		if err != nil {
			return nil, err
		}
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords[k] = v
	}
	return h, nil
}

// verifyIndex checks a stored index: its checksum, then that it decodes to its end. It
// returns whether the layer has whiteouts and leaves src at its start.
func verifyIndex(src io.ReadSeeker) (whiteouts bool, err error) {
	size, err := src.Seek(0, io.SeekEnd)
	if err != nil {
		return false, err
	}
	if size < sha256.Size+int64(len(indexMagic)) {
		return false, fmt.Errorf("%w: %d bytes", errIndexDamaged, size)
	}
	if _, err := src.Seek(size-sha256.Size, io.SeekStart); err != nil {
		return false, err
	}
	var want [sha256.Size]byte
	if _, err := io.ReadFull(src, want[:]); err != nil {
		return false, err
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	h := sha256.New()
	d, err := newIndexDecoder(io.TeeReader(io.LimitReader(src, size-sha256.Size), h))
	if err != nil {
		return false, err
	}
	for {
		_, ok, err := d.next()
		if err != nil {
			return false, err
		}
		if !ok {
			break
		}
	}
	if _, err := d.r.ReadByte(); !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("%w: data after the end", errIndexDamaged)
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		return false, fmt.Errorf("%w: checksum mismatch", errIndexDamaged)
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	return d.whiteouts > 0, nil
}

// spill holds one encoded index: in memory up to spillMemMax bytes, then in an unlinked
// temporary file.
type spill struct {
	dir string
	mem bytes.Buffer
	f   *os.File
}

func (s *spill) Write(p []byte) (int, error) {
	if s.f == nil && s.mem.Len()+len(p) > spillMemMax {
		f, err := os.CreateTemp(s.dir, "kiln-layers-index-*")
		if err != nil {
			return 0, err
		}
		// Unlinked at once: nothing is left behind whatever happens to this process.
		if err := os.Remove(f.Name()); err != nil {
			_ = f.Close()
			return 0, err
		}
		s.f = f
		if _, err := s.mem.WriteTo(f); err != nil {
			return 0, err
		}
		s.mem = bytes.Buffer{}
	}
	if s.f != nil {
		return s.f.Write(p)
	}
	return s.mem.Write(p)
}

// reader returns the content written so far; closing it releases the spill.
func (s *spill) reader() (io.ReadSeekCloser, error) {
	if s.f == nil {
		return nopSeekCloser{bytes.NewReader(s.mem.Bytes())}, nil
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		_ = s.f.Close()
		return nil, err
	}
	return s.f, nil
}

// writeTo copies the content to w (for an IndexStore).
func (s *spill) writeTo(w io.Writer) error {
	if s.f == nil {
		_, err := w.Write(s.mem.Bytes())
		return err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(w, s.f)
	return err
}

func (s *spill) discard() {
	if s.f != nil {
		_ = s.f.Close()
	}
}

type nopSeekCloser struct{ io.ReadSeeker }

func (nopSeekCloser) Close() error { return nil }
