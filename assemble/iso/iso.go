// Package iso writes ISO 9660 images with El Torito boot entries: the bootable CDs (and, with
// a hybrid MBR, USB sticks) of kiln's iso-bios, iso-efi and s390x formats.
//
// The image is laid out before it is written (New), so its size is known, and then streamed
// front to back (WriteTo): system area, volume descriptors, path tables, boot catalog,
// directories, and the files in tree order, each read once. File names are ISO 9660's own
// (upper-case letters, digits and _, at most 8.3): the caller chooses them, nothing is
// translated. Every time stamp is Options.ModTime and the MBR's disk ID comes from
// Options.Seed, so the same input gives the same bytes.
//
// It writes no Rock Ridge or Joliet extensions and does not read images.
package iso

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/kiln-os/kiln/internal/streamio"
)

// SectorSize is ISO 9660's logical block size.
const SectorSize = 2048

// El Torito platform IDs.
const (
	PlatformBIOS = 0x00 // x86 BIOS
	PlatformEFI  = 0xEF // UEFI
)

// File is one file of the image.
type File struct {
	// Path, from the root, in ISO 9660 names: "BOOT/KERNEL", "ISOLINUX/ISOLINUX.BIN".
	Path string
	// Size is the number of bytes Body gives. With Data instead, the file is Data.
	Size int64
	Body io.Reader
	Data []byte
}

// Boot is one El Torito boot entry (no emulation): the first is the default entry.
type Boot struct {
	Platform byte
	// Path names the file that is the boot image.
	Path string
	// LoadSectors is how many 512-byte sectors the firmware loads (ISOLINUX: 4); 0 gives
	// the whole file, or 0 (to the end of the volume, as UEFI firmware reads it) when the
	// file is over 32 MiB.
	LoadSectors uint16
	// InfoTable patches ISOLINUX's boot information table into the file, which must then
	// be given as Data.
	InfoTable bool
}

// MBR makes the image a hybrid one, bootable from a disk as well: its first sector gets an
// MBR.
type MBR struct {
	// Code is the MBR's boot code (ISOLINUX's isohdpfx.bin; only its first 432 bytes are
	// used), or nil for a partition table only (an EFI-only image).
	Code []byte
	// BootFile is the file whose 512-byte sector address Code reads at offset 432 (ISOLINUX's
	// isolinux.bin).
	BootFile string
	// EFIImage names a file (the El Torito EFI image) that also gets an MBR partition of type
	// 0xEF, for UEFI firmware booting the image as a disk.
	EFIImage string
}

// Options shape an image.
type Options struct {
	VolumeID string // at most 32 of A-Z, 0-9 and _
	ModTime  time.Time
	Boot     []Boot
	MBR      *MBR
	// Seed makes the MBR's disk ID.
	Seed []byte
}

type node struct {
	name     string // ISO identifier without ";1"
	dir      bool
	file     *File
	children []*node
	parent   *node
	lba      int64
	size     int64 // bytes of the extent (directories: whole sectors)
	num      int   // directory number in the path table, from 1
	data     []byte
}

// Image is an ISO 9660 image laid out and ready to be written.
type Image struct {
	opt         Options
	root        *node
	dirs        []*node // in path table order
	files       []*node // in extent order
	pathTable   []byte
	pathTableM  []byte
	pathLBA     int64 // L table; the M table follows it
	pathSectors int64
	catalogLBA  int64
	sectors     int64
	byPath      map[string]*node
	infoPatched map[*node][]byte
	mbr         []byte
}

// New lays out an image of files.
func New(opt Options, files []File) (*Image, error) {
	if len(opt.VolumeID) > 32 || strings.Trim(opt.VolumeID, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
		return nil, fmt.Errorf("iso: volume ID %q: want at most 32 of A-Z, 0-9 and _", opt.VolumeID)
	}
	im := &Image{opt: opt, root: &node{dir: true}, byPath: map[string]*node{}}
	if err := im.tree(files); err != nil {
		return nil, err
	}
	if err := im.checkBoot(); err != nil {
		return nil, err
	}
	im.layout()
	if err := im.patch(); err != nil {
		return nil, err
	}
	return im, nil
}

// Size is the image's size in bytes.
func (im *Image) Size() int64 { return im.sectors * SectorSize }

// LBA is the first 2048-byte sector of the file at p, or -1.
func (im *Image) LBA(p string) int64 {
	if n, ok := im.byPath[p]; ok {
		return n.lba
	}
	return -1
}

func validName(s string, dir bool) bool {
	base, ext, dot := strings.Cut(s, ".")
	if dir && dot {
		return false
	}
	ok := func(x string, max int) bool {
		return len(x) <= max && strings.Trim(x, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == ""
	}
	return base != "" && ok(base, 8) && ok(ext, 3) && !strings.Contains(ext, ".")
}

func (im *Image) tree(files []File) error {
	dirs := map[string]*node{"": im.root}
	var mkdir func(p string) (*node, error)
	mkdir = func(p string) (*node, error) {
		if n, ok := dirs[p]; ok {
			return n, nil
		}
		if _, ok := im.byPath[p]; ok {
			return nil, fmt.Errorf("iso: %s is a file and a folder", p)
		}
		if !validName(path.Base(p), true) {
			return nil, fmt.Errorf("iso: folder name %q: want 1 to 8 of A-Z, 0-9 and _", path.Base(p))
		}
		parent, err := mkdir(parentOf(p))
		if err != nil {
			return nil, err
		}
		n := &node{name: path.Base(p), dir: true, parent: parent}
		parent.children = append(parent.children, n)
		dirs[p] = n
		return n, nil
	}
	for i := range files {
		f := &files[i]
		if f.Data != nil {
			f.Size = int64(len(f.Data))
		}
		if f.Path == "" || path.Clean(f.Path) != f.Path || strings.HasPrefix(f.Path, "/") {
			return fmt.Errorf("iso: %q is not a clean relative path", f.Path)
		}
		if !validName(path.Base(f.Path), false) {
			return fmt.Errorf("iso: file name %q: want ISO 9660's 8.3 names of A-Z, 0-9 and _", path.Base(f.Path))
		}
		if f.Size < 0 || f.Size > 0xFFFFFFFF || (f.Size > 0 && f.Body == nil && f.Data == nil) {
			return fmt.Errorf("iso: %s: %d bytes (and a body for them) wanted, under 4 GiB", f.Path, f.Size)
		}
		if _, ok := im.byPath[f.Path]; ok {
			return fmt.Errorf("iso: %s appears twice", f.Path)
		}
		if _, ok := dirs[f.Path]; ok {
			return fmt.Errorf("iso: %s is a file and a folder", f.Path)
		}
		parent, err := mkdir(parentOf(f.Path))
		if err != nil {
			return err
		}
		n := &node{name: path.Base(f.Path), file: f, parent: parent, size: f.Size}
		parent.children = append(parent.children, n)
		im.byPath[f.Path] = n
	}
	var sortAll func(n *node)
	sortAll = func(n *node) {
		slices.SortFunc(n.children, func(a, b *node) int { return cmp.Compare(a.ident(), b.ident()) })
		for _, c := range n.children {
			sortAll(c)
		}
	}
	sortAll(im.root)
	return nil
}

func parentOf(p string) string {
	if d := path.Dir(p); d != "." {
		return d
	}
	return ""
}

// ident is the name as the directory record holds it.
func (n *node) ident() string {
	if n.dir {
		return n.name
	}
	if strings.Contains(n.name, ".") {
		return n.name + ";1"
	}
	return n.name + ".;1"
}

func (im *Image) checkBoot() error {
	// The catalog is one sector: the validation and default entries, then a section header
	// and an entry (64 bytes) for each other boot image.
	if len(im.opt.Boot) > 1+(SectorSize-64)/64 {
		return fmt.Errorf("iso: %d boot entries; one catalog sector holds %d", len(im.opt.Boot), 1+(SectorSize-64)/64)
	}
	if len(im.opt.Boot) > 0 && im.opt.Boot[0].Platform != PlatformBIOS && im.opt.Boot[0].Platform != PlatformEFI {
		return fmt.Errorf("iso: boot platform %#x: want BIOS (0) or EFI (0xEF)", im.opt.Boot[0].Platform)
	}
	for _, b := range im.opt.Boot {
		n, ok := im.byPath[b.Path]
		if !ok {
			return fmt.Errorf("iso: boot image %s is not a file of the image", b.Path)
		}
		if b.InfoTable && len(n.file.Data) < 64 {
			return fmt.Errorf("iso: boot image %s: a boot information table needs its bytes (Data, 64 or more)", b.Path)
		}
	}
	if m := im.opt.MBR; m != nil {
		if m.Code != nil && len(m.Code) < 432 {
			return fmt.Errorf("iso: MBR code of %d bytes; want the 432 of isohdpfx.bin", len(m.Code))
		}
		for _, p := range []string{m.BootFile, m.EFIImage} {
			if _, ok := im.byPath[p]; p != "" && !ok {
				return fmt.Errorf("iso: MBR: %s is not a file of the image", p)
			}
		}
		if m.Code != nil && m.BootFile == "" {
			return errors.New("iso: MBR code without the boot file it loads")
		}
	}
	return nil
}

func sectorsOf(n int64) int64 { return (n + SectorSize - 1) / SectorSize }

// dirRecordLen is the length of a directory record for an identifier of n bytes.
func dirRecordLen(n int) int { return 33 + n + (1 - n%2) }

// layout numbers the directories, sizes them, and places every extent.
func (im *Image) layout() {
	// Directories in path table order: by level, each level by parent then name.
	im.dirs = []*node{im.root}
	for i := 0; i < len(im.dirs); i++ {
		im.dirs[i].num = i + 1
		for _, c := range im.dirs[i].children {
			if c.dir {
				im.dirs = append(im.dirs, c)
			}
		}
	}
	for _, d := range im.dirs {
		d.size = sectorsOf(int64(dirBytes(d))) * SectorSize
	}
	// The path tables' size depends on the names only; their content is written below.
	tableBytes := 0
	for _, d := range im.dirs {
		n := max(len(d.name), 1)
		tableBytes += 8 + n + n%2
	}
	next := int64(16 + 2) // system area, PVD, terminator
	if len(im.opt.Boot) > 0 {
		next++ // the boot record
	}
	im.pathLBA = next
	im.pathSectors = sectorsOf(int64(tableBytes))
	next += 2 * im.pathSectors
	if len(im.opt.Boot) > 0 {
		im.catalogLBA = next
		next++
	}
	for _, d := range im.dirs {
		d.lba = next
		next += d.size / SectorSize
	}
	var walk func(d *node)
	walk = func(d *node) {
		for _, c := range d.children {
			if c.dir {
				walk(c)
			} else {
				im.files = append(im.files, c)
			}
		}
	}
	walk(im.root)
	for _, f := range im.files {
		f.lba = next
		next += sectorsOf(f.size)
	}
	// Directory records point at the placed extents now.
	for _, d := range im.dirs {
		d.data = im.dirRecords(d)
	}
	// The path tables (L: little-endian, M: big-endian), now that the directories are placed.
	for _, d := range im.dirs {
		id, parent := d.name, 1
		if d == im.root {
			id = "\x00"
		} else {
			parent = d.parent.num
		}
		l := make([]byte, 8+len(id)+len(id)%2)
		l[0] = byte(len(id))
		copy(l[8:], id)
		m := slices.Clone(l)
		binary.LittleEndian.PutUint32(l[2:], uint32(d.lba))
		binary.LittleEndian.PutUint16(l[6:], uint16(parent))
		binary.BigEndian.PutUint32(m[2:], uint32(d.lba))
		binary.BigEndian.PutUint16(m[6:], uint16(parent))
		im.pathTable = append(im.pathTable, l...)
		im.pathTableM = append(im.pathTableM, m...)
	}
	im.sectors = next
	if im.opt.MBR != nil {
		// A disk's size: whole MiBs (isohybrid's 64 heads, 32 sectors).
		im.sectors = (next + 511) / 512 * 512
	}
}

// dirBytes is the size of a directory's records, none crossing a sector boundary.
func dirBytes(d *node) int {
	n := 2 * dirRecordLen(1)
	for _, c := range d.children {
		l := dirRecordLen(len(c.ident()))
		if n%SectorSize+l > SectorSize {
			n += SectorSize - n%SectorSize
		}
		n += l
	}
	return n
}

func both32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

func both16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

// record is one directory record.
func (im *Image) record(ident string, n *node) []byte {
	l := dirRecordLen(len(ident))
	r := make([]byte, l)
	r[0] = byte(l)
	both32(r[2:], uint32(n.lba))
	both32(r[10:], uint32(n.size))
	t := im.opt.ModTime.UTC()
	if t.Year() < 1900 {
		t = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	r[18], r[19], r[20] = byte(min(t.Year()-1900, 255)), byte(t.Month()), byte(t.Day())
	r[21], r[22], r[23] = byte(t.Hour()), byte(t.Minute()), byte(t.Second())
	if n.dir {
		r[25] = 0x02
	}
	both16(r[28:], 1)
	r[32] = byte(len(ident))
	copy(r[33:], ident)
	return r
}

func (im *Image) dirRecords(d *node) []byte {
	buf := make([]byte, 0, d.size)
	parent := d.parent
	if parent == nil {
		parent = d
	}
	buf = append(buf, im.record("\x00", d)...)
	buf = append(buf, im.record("\x01", parent)...)
	for _, c := range d.children {
		r := im.record(c.ident(), c)
		if len(buf)%SectorSize+len(r) > SectorSize {
			buf = append(buf, make([]byte, SectorSize-len(buf)%SectorSize)...)
		}
		buf = append(buf, r...)
	}
	return append(buf, make([]byte, int(d.size)-len(buf))...)
}

// patch writes ISOLINUX's boot information tables and the hybrid MBR.
func (im *Image) patch() error {
	im.infoPatched = map[*node][]byte{}
	for _, b := range im.opt.Boot {
		if !b.InfoTable {
			continue
		}
		n := im.byPath[b.Path]
		data := slices.Clone(n.file.Data)
		le := binary.LittleEndian
		clear(data[8:64])
		le.PutUint32(data[8:], 16)
		le.PutUint32(data[12:], uint32(n.lba))
		le.PutUint32(data[16:], uint32(len(data)))
		var sum uint32
		for i := 64; i < len(data); i += 4 {
			var w [4]byte
			copy(w[:], data[i:])
			sum += le.Uint32(w[:])
		}
		le.PutUint32(data[20:], sum)
		im.infoPatched[n] = data
	}
	m := im.opt.MBR
	if m == nil {
		return nil
	}
	mbr := make([]byte, 512)
	if m.Code != nil {
		copy(mbr, m.Code[:432])
		binary.LittleEndian.PutUint32(mbr[432:], uint32(im.byPath[m.BootFile].lba*4))
	}
	h := sha256.Sum256(append([]byte("mbr\x00"), im.opt.Seed...))
	copy(mbr[440:444], h[:4])
	disk := im.sectors * 4 // 512-byte sectors
	var parts [][4]int64   // bootable, type, first, count
	if m.Code != nil {
		parts = append(parts, [4]int64{0x80, 0x17, 0, disk})
	}
	if m.EFIImage != "" {
		n := im.byPath[m.EFIImage]
		parts = append(parts, [4]int64{0, 0xEF, n.lba * 4, sectorsOf(n.size) * 4})
	}
	for i, p := range parts {
		e := mbr[446+16*i:]
		e[0] = byte(p[0])
		copy(e[1:4], chs(p[2]))
		e[4] = byte(p[1])
		copy(e[5:8], chs(p[2]+p[3]-1))
		binary.LittleEndian.PutUint32(e[8:], uint32(p[2]))
		binary.LittleEndian.PutUint32(e[12:], uint32(p[3]))
	}
	mbr[510], mbr[511] = 0x55, 0xAA
	im.mbr = mbr
	return nil
}

// chs is a sector address in the MBR's cylinder/head/sector form, for 64 heads and 32
// sectors per track (isohybrid's geometry), capped as every tool caps it.
func chs(lba int64) []byte {
	c, hd, s := lba/(64*32), (lba/32)%64, lba%32+1
	if c > 1023 {
		return []byte{0xFE, 0xFF, 0xFF}
	}
	return []byte{byte(hd), byte(s) | byte(c>>2)&0xC0, byte(c)}
}

func dateText(t time.Time) []byte {
	b := []byte(t.UTC().Format("20060102150405") + "00")
	return append(b, 0)
}

func padded(s string, n int) []byte {
	b := []byte(s + strings.Repeat(" ", n))
	return b[:n]
}

func (im *Image) pvd() []byte {
	b := make([]byte, SectorSize)
	b[0] = 1
	copy(b[1:], "CD001")
	b[6] = 1
	copy(b[8:], padded("LINUX", 32))
	copy(b[40:], padded(im.opt.VolumeID, 32))
	both32(b[80:], uint32(im.sectors))
	both16(b[120:], 1)
	both16(b[124:], 1)
	both16(b[128:], SectorSize)
	both32(b[132:], uint32(len(im.pathTable)))
	binary.LittleEndian.PutUint32(b[140:], uint32(im.pathLBA))
	binary.BigEndian.PutUint32(b[148:], uint32(im.pathLBA+im.pathSectors))
	copy(b[156:], im.record("\x00", im.root))
	for _, off := range []int{190, 318, 446} {
		copy(b[off:], padded("", 128))
	}
	copy(b[574:], padded("KILN", 128))
	for _, off := range []int{702, 739, 776} {
		copy(b[off:], padded("", 37))
	}
	copy(b[813:], dateText(im.opt.ModTime))
	copy(b[830:], dateText(im.opt.ModTime))
	copy(b[847:], "0000000000000000")
	copy(b[864:], "0000000000000000")
	b[881] = 1
	return b
}

func (im *Image) bootRecord() []byte {
	b := make([]byte, SectorSize)
	copy(b[1:], "CD001")
	b[6] = 1
	copy(b[7:], "EL TORITO SPECIFICATION")
	binary.LittleEndian.PutUint32(b[0x47:], uint32(im.catalogLBA))
	return b
}

func (im *Image) catalog() []byte {
	b := make([]byte, SectorSize)
	le := binary.LittleEndian
	first := im.opt.Boot[0]
	b[0], b[1] = 1, first.Platform
	copy(b[4:], "KILN")
	b[30], b[31] = 0x55, 0xAA
	var sum uint16
	for i := 0; i < 32; i += 2 {
		sum += le.Uint16(b[i:])
	}
	le.PutUint16(b[28:], -sum)
	entry := func(e []byte, bt Boot) {
		n := im.byPath[bt.Path]
		e[0] = 0x88
		count := bt.LoadSectors
		if count == 0 {
			if s := (n.size + 511) / 512; s <= 0xFFFF {
				count = uint16(s)
			}
		}
		le.PutUint16(e[6:], count)
		le.PutUint32(e[8:], uint32(n.lba))
	}
	entry(b[32:], first)
	off := 64
	rest := im.opt.Boot[1:]
	for i, bt := range rest {
		h := b[off:]
		h[0] = 0x90
		if i == len(rest)-1 {
			h[0] = 0x91
		}
		h[1] = bt.Platform
		le.PutUint16(h[2:], 1)
		entry(b[off+32:], bt)
		off += 64
	}
	return b
}

// WriteTo writes the image to w, reading each file's body once, in extent order.
func (im *Image) WriteTo(w io.Writer) (int64, error) {
	cw := &streamio.Counter{W: w}
	system := make([]byte, 16*SectorSize)
	copy(system, im.mbr)
	term := make([]byte, SectorSize)
	term[0] = 255
	copy(term[1:], "CD001")
	term[6] = 1
	parts := [][]byte{system, im.pvd()}
	if len(im.opt.Boot) > 0 {
		parts = append(parts, im.bootRecord())
	}
	parts = append(parts, term, padTo(im.pathTable, im.pathSectors), padTo(im.pathTableM, im.pathSectors))
	if len(im.opt.Boot) > 0 {
		parts = append(parts, im.catalog())
	}
	for _, d := range im.dirs {
		parts = append(parts, d.data)
	}
	for _, p := range parts {
		if _, err := cw.Write(p); err != nil {
			return cw.N, err
		}
	}
	for _, f := range im.files {
		if cw.N != f.lba*SectorSize {
			return cw.N, fmt.Errorf("iso: internal error: %s at byte %d, not at sector %d", f.name, cw.N, f.lba)
		}
		var body io.Reader
		switch {
		case im.infoPatched[f] != nil:
			body = strings.NewReader(string(im.infoPatched[f]))
		case f.file.Data != nil:
			body = strings.NewReader(string(f.file.Data))
		default:
			body = f.file.Body
		}
		if f.size > 0 {
			n, err := io.Copy(cw, io.LimitReader(body, f.size))
			if err != nil {
				return cw.N, fmt.Errorf("iso: writing %s: %w", f.file.Path, err)
			}
			if n != f.size {
				return cw.N, fmt.Errorf("iso: %s: got %d bytes, want %d", f.file.Path, n, f.size)
			}
		}
		if err := streamio.Zeros(cw, sectorsOf(f.size)*SectorSize-f.size); err != nil {
			return cw.N, err
		}
	}
	return cw.N, streamio.Zeros(cw, im.Size()-cw.N)
}

func padTo(b []byte, sectors int64) []byte {
	return append(slices.Clone(b), make([]byte, int(sectors*SectorSize)-len(b))...)
}
