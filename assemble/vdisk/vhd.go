package vdisk

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// VHD (Microsoft's Virtual Hard Disk, version 1.0): a fixed disk is the raw image followed by
// a 512-byte footer; a dynamic one has a copy of the footer first, a dynamic header, a block
// allocation table and then only the 2 MiB blocks that hold data, each after its sector
// bitmap. Clouds (Azure) take fixed VHDs whose size is a whole number of MiB.

const (
	vhdBlock        = 2 << 20 // the dynamic disk's block size
	vhdBitmap       = 512     // a block's sector bitmap: 4096 sectors, one bit each
	vhdFixed        = 2
	vhdDynamic      = 3
	vhdNoOffset     = ^uint64(0)
	vhdUnused       = ^uint32(0)
	vhdFooterLen    = 512
	vhdDynHeaderLen = 1024
)

// vhdEpoch is where a VHD's time stamps count from.
var vhdEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// vhdGeometry is the disk's cylinders, heads and sectors per track, by the VHD
// specification's algorithm (readers that trust the geometry see at most this many sectors).
func vhdGeometry(sectors int64) (uint16, uint8, uint8) {
	if sectors > 65535*16*255 {
		sectors = 65535 * 16 * 255
	}
	var spt, heads, cth int64
	if sectors >= 65535*16*63 {
		spt, heads = 255, 16
		cth = sectors / spt
	} else {
		spt = 17
		cth = sectors / spt
		heads = (cth + 1023) / 1024
		if heads < 4 {
			heads = 4
		}
		if cth >= heads*1024 || heads > 16 {
			spt, heads = 31, 16
			cth = sectors / spt
		}
		if cth >= heads*1024 {
			spt, heads = 63, 16
			cth = sectors / spt
		}
	}
	return uint16(cth / heads), uint8(heads), uint8(spt)
}

// vhdFooter is the footer of a disk of size bytes; dataOffset is the dynamic header's place
// (vhdNoOffset for a fixed disk). The unique ID comes from id, the time stamp from mtime.
func vhdFooter(size int64, diskType uint32, dataOffset uint64, id []byte, mtime time.Time) []byte {
	f := make([]byte, vhdFooterLen)
	be := binary.BigEndian
	copy(f, "conectix")
	be.PutUint32(f[8:], 2) // features: reserved bit, always set
	be.PutUint32(f[12:], 0x00010000)
	be.PutUint64(f[16:], dataOffset)
	ts := max(mtime.Sub(vhdEpoch)/time.Second, 0)
	be.PutUint32(f[24:], uint32(min(int64(ts), 0xFFFFFFFF)))
	// "qem2": readers (QEMU among them) take the size from the footer, not from the geometry.
	copy(f[28:], "qem2")
	be.PutUint32(f[32:], 0x00050003)
	copy(f[36:], "Wi2k")
	be.PutUint64(f[40:], uint64(size))
	be.PutUint64(f[48:], uint64(size))
	c, h, s := vhdGeometry(size / 512)
	be.PutUint16(f[56:], c)
	f[58], f[59] = h, s
	be.PutUint32(f[60:], diskType)
	sum := sha256.Sum256(append([]byte("vhd\x00"), id...))
	copy(f[68:84], sum[:16])
	be.PutUint32(f[64:], vhdChecksum(f))
	return f
}

// vhdChecksum is the one's complement of the sum of every byte but the checksum's own.
func vhdChecksum(b []byte) uint32 {
	var s uint32
	for _, c := range b {
		s += uint32(c)
	}
	return ^s
}

// VHDFixed writes the raw image of size bytes (a whole number of MiB) as a fixed VHD: the
// image, then the footer. id seeds the disk's unique ID.
func VHDFixed(w io.Writer, r io.ReaderAt, size int64, id []byte, mtime time.Time) error {
	if size <= 0 || size%(1<<20) != 0 {
		return fmt.Errorf("vhd: the raw image is %d bytes; a VHD for the clouds is a whole number of MiB", size)
	}
	if _, err := io.Copy(w, io.NewSectionReader(r, 0, size)); err != nil {
		return fmt.Errorf("vhd: %w", err)
	}
	_, err := w.Write(vhdFooter(size, vhdFixed, vhdNoOffset, id, mtime))
	return err
}

// VHDDynamic writes the raw image of size bytes as a dynamic VHD with 2 MiB blocks, only the
// blocks that hold data stored.
func VHDDynamic(w io.Writer, r io.ReaderAt, size int64, id []byte, mtime time.Time) error {
	if size <= 0 || size%512 != 0 {
		return fmt.Errorf("vhd: the raw image is %d bytes, not a whole number of sectors", size)
	}
	blocks, err := dataClusters(r, size, vhdBlock)
	if err != nil {
		return fmt.Errorf("vhd: %w", err)
	}
	entries := ceilDiv(size, vhdBlock)
	batAt := int64(vhdFooterLen + vhdDynHeaderLen)
	batBytes := ceilDiv(entries*4, 512) * 512
	firstBlock := batAt + batBytes
	be := binary.BigEndian

	footer := vhdFooter(size, vhdDynamic, vhdFooterLen, id, mtime)
	hdr := make([]byte, vhdDynHeaderLen)
	copy(hdr, "cxsparse")
	be.PutUint64(hdr[8:], vhdNoOffset)
	be.PutUint64(hdr[16:], uint64(batAt))
	be.PutUint32(hdr[24:], 0x00010000)
	be.PutUint32(hdr[28:], uint32(entries))
	be.PutUint32(hdr[32:], vhdBlock)
	be.PutUint32(hdr[36:], vhdChecksum(hdr))

	bat := make([]byte, batBytes)
	for i := range entries {
		be.PutUint32(bat[i*4:], vhdUnused)
	}
	for k, b := range blocks {
		at := firstBlock + int64(k)*(vhdBitmap+vhdBlock)
		be.PutUint32(bat[b*4:], uint32(at/512))
	}
	for _, part := range [][]byte{footer, hdr, bat} {
		if _, err := w.Write(part); err != nil {
			return err
		}
	}
	bitmap := make([]byte, vhdBitmap)
	for i := range bitmap {
		bitmap[i] = 0xFF // every sector of a stored block is present
	}
	buf := make([]byte, vhdBlock)
	for _, b := range blocks {
		n := min(int64(vhdBlock), size-b*vhdBlock)
		clear(buf[n:])
		if _, err := r.ReadAt(buf[:n], b*vhdBlock); err != nil {
			return fmt.Errorf("vhd: reading the raw image at %d: %w", b*vhdBlock, err)
		}
		if _, err := w.Write(bitmap); err != nil {
			return err
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	_, err = w.Write(footer)
	return err
}
