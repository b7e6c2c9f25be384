package vdisk

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// VMDK, monolithicSparse (what qemu-img writes by default and VMware products read): a sparse
// extent header, the text descriptor in the same file, a grain directory, its grain tables,
// and the 64 KiB grains that hold data.

const (
	vmdkGrainSectors = 128 // 64 KiB grains
	vmdkGTEs         = 512 // entries per grain table
	vmdkDescSectors  = 20
	vmdkMagic        = 0x564d444b // "KDMV"
)

// VMDK writes the raw image of size bytes as a monolithicSparse VMDK named name (the
// descriptor names its own file). id seeds the descriptor's content ID.
func VMDK(w io.Writer, r io.ReaderAt, size int64, name string, id []byte) error {
	if size <= 0 || size%512 != 0 {
		return fmt.Errorf("vmdk: the raw image is %d bytes, not a whole number of sectors", size)
	}
	if strings.ContainsAny(name, "\"\n") || name == "" {
		return fmt.Errorf("vmdk: file name %q cannot be written in a descriptor", name)
	}
	grainBytes := int64(vmdkGrainSectors * 512)
	grains, err := dataClusters(r, size, int(grainBytes))
	if err != nil {
		return fmt.Errorf("vmdk: %w", err)
	}
	capacity := size / 512
	totalGrains := ceilDiv(size, grainBytes)
	gts := ceilDiv(totalGrains, vmdkGTEs)
	gdAt := int64(1 + vmdkDescSectors)
	gdSectors := ceilDiv(gts*4, 512)
	gtAt := gdAt + gdSectors
	gtSectors := int64(vmdkGTEs * 4 / 512) // 4 sectors each
	overhead := ceilDiv(gtAt+gts*gtSectors, vmdkGrainSectors) * vmdkGrainSectors

	le := binary.LittleEndian
	hdr := make([]byte, 512)
	le.PutUint32(hdr[0:], vmdkMagic)
	le.PutUint32(hdr[4:], 1)
	le.PutUint32(hdr[8:], 1) // flags: the newline test characters are valid
	le.PutUint64(hdr[12:], uint64(capacity))
	le.PutUint64(hdr[20:], vmdkGrainSectors)
	le.PutUint64(hdr[28:], 1)
	le.PutUint64(hdr[36:], vmdkDescSectors)
	le.PutUint32(hdr[44:], vmdkGTEs)
	le.PutUint64(hdr[56:], uint64(gdAt))
	le.PutUint64(hdr[64:], uint64(overhead))
	hdr[73], hdr[74], hdr[75], hdr[76] = '\n', ' ', '\r', '\n'

	sum := sha256.Sum256(append([]byte("vmdk\x00"), id...))
	cid := le.Uint32(sum[:4])
	cyl := min(capacity/(16*63), 16383)
	desc := fmt.Sprintf("# Disk DescriptorFile\nversion=1\nCID=%08x\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\n\n"+
		"# Extent description\nRW %d SPARSE \"%s\"\n\n# The Disk Data Base\n#DDB\n\n"+
		"ddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"%d\"\nddb.geometry.heads = \"16\"\n"+
		"ddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n", cid, capacity, name, cyl)
	descBytes := make([]byte, vmdkDescSectors*512)
	copy(descBytes, desc)

	gd := make([]byte, gdSectors*512)
	for i := range gts {
		le.PutUint32(gd[i*4:], uint32(gtAt+i*gtSectors))
	}
	gt := make([]byte, gts*gtSectors*512)
	for k, g := range grains {
		le.PutUint32(gt[g*4:], uint32(overhead+int64(k)*vmdkGrainSectors))
	}
	pad := make([]byte, (overhead-gtAt-gts*gtSectors)*512)
	for _, part := range [][]byte{hdr, descBytes, gd, gt, pad} {
		if _, err := w.Write(part); err != nil {
			return err
		}
	}
	buf := make([]byte, grainBytes)
	for _, g := range grains {
		n := min(grainBytes, size-g*grainBytes)
		clear(buf[n:])
		if _, err := r.ReadAt(buf[:n], g*grainBytes); err != nil {
			return fmt.Errorf("vmdk: reading the raw image at %d: %w", g*grainBytes, err)
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}
