package fatimg

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
	"unicode/utf16"

	"github.com/kiln-os/kiln/internal/streamio"
)

// Entry is a file or folder of a Volume, by its slash-separated path from the root
// ("EFI/BOOT/BOOTX64.EFI"). Folders are made for the files in them; an Entry with Dir set
// makes one that may stay empty.
type Entry struct {
	Path string
	Dir  bool
	// Size is the number of bytes Body gives (a file holds less than 4 GiB).
	Size int64
	// Body is read once, when Volume.WriteTo reaches the file; nil for folders and for
	// empty files.
	Body io.Reader
}

// Options shape a Volume.
type Options struct {
	// Label is the volume label (see Write); empty for none.
	Label string
	// Bits is the FAT type, 12, 16 or 32; 0 chooses by the number of clusters, as FAT's
	// specification defines the type. UEFI wants 32 for a disk's system partition.
	Bits int
	// Size is the volume's size in bytes, a multiple of 512; 0 makes it as small as its
	// content allows.
	Size int64
	// ModTime is every entry's time stamp (FAT keeps 2 s steps from 1980 on, in no time
	// zone: UTC is written); before 1980 is written as 1980-01-01.
	ModTime time.Time
	// VolumeID is the serial number; 0 derives it from the label and the entries' paths and
	// sizes, so that the same input gives the same volume.
	VolumeID uint32
	// HiddenSectors is the number of sectors before the volume on its disk (its partition's
	// first sector), which boot code reads; 0 for a volume that is a whole image.
	HiddenSectors uint32
}

// Volume is a FAT file system laid out and ready to be written: New decides every byte but
// the file bodies, so its Size is known before WriteTo streams it.
type Volume struct {
	opt          Options
	bits         int
	spc          int // sectors per cluster
	reserved     int // sectors before the first FAT
	fatSectors   int
	rootSectors  int // FAT12/16's fixed root folder
	totalSectors int
	clusters     int // data clusters
	fat          []uint32
	root         *node
	dirs         []*node // folders with clusters, in cluster order
	files        []*node // files with clusters, in cluster order
	used         int     // data clusters used
}

type node struct {
	name     string
	dir      bool
	size     int64
	body     io.Reader
	children []*node
	parent   *node
	first    int    // first cluster; 0 for the FAT12/16 root and empty files
	nclus    int    // clusters
	data     []byte // a folder's entries
}

const (
	fat12Max = 4084  // most clusters FAT12 has
	fat16Max = 65524 // most clusters FAT16 has
	// fixedRootEntries is FAT12/16's root folder size: 512 entries, 16 KiB.
	fixedRootEntries = 512
)

// New lays out a volume holding entries. Paths are checked as FAT names (see Write), and two
// paths that differ only in case are one path to FAT: an error.
func New(opt Options, entries []Entry) (*Volume, error) {
	if opt.Label != "" {
		if _, err := shortLabel(opt.Label); err != nil {
			return nil, err
		}
	}
	v := &Volume{opt: opt, root: &node{dir: true}}
	if err := v.tree(entries); err != nil {
		return nil, err
	}
	if opt.Size%sectorSize != 0 || opt.Size < 0 {
		return nil, fmt.Errorf("fatimg: size %d is not a whole number of 512-byte sectors", opt.Size)
	}
	switch opt.Bits {
	case 0, 12, 16, 32:
	default:
		return nil, fmt.Errorf("fatimg: FAT%d: want 12, 16 or 32", opt.Bits)
	}
	if err := v.layout(); err != nil {
		return nil, err
	}
	v.allocate()
	return v, nil
}

// Size is the volume's size in bytes.
func (v *Volume) Size() int64 { return int64(v.totalSectors) * sectorSize }

// Bits is the volume's FAT type: 12, 16 or 32.
func (v *Volume) Bits() int { return v.bits }

// tree builds the folder tree from the entries, sorted by name in every folder.
func (v *Volume) tree(entries []Entry) error {
	byKey := map[string]*node{"": v.root}
	var mkdir func(p string) (*node, error)
	mkdir = func(p string) (*node, error) {
		key := strings.ToUpper(p)
		if n, ok := byKey[key]; ok {
			if !n.dir {
				return nil, fmt.Errorf("fatimg: %q is a file and a folder", p)
			}
			return n, nil
		}
		parent, err := mkdir(parentOf(p))
		if err != nil {
			return nil, err
		}
		n := &node{name: path.Base(p), dir: true, parent: parent}
		parent.children = append(parent.children, n)
		byKey[key] = n
		return n, nil
	}
	for _, e := range entries {
		p := strings.Trim(e.Path, "/")
		if p == "" || path.Clean(p) != p {
			return fmt.Errorf("fatimg: %q is not a clean relative path", e.Path)
		}
		for _, part := range strings.Split(p, "/") {
			if err := checkName(part); err != nil {
				return err
			}
		}
		if e.Dir {
			if _, err := mkdir(p); err != nil {
				return err
			}
			continue
		}
		if e.Size < 0 || e.Size > 0xFFFFFFFF {
			return fmt.Errorf("fatimg: %s: %d bytes; a FAT file holds less than 4 GiB", p, e.Size)
		}
		if e.Size > 0 && e.Body == nil {
			return fmt.Errorf("fatimg: %s: %d bytes and no body", p, e.Size)
		}
		if _, ok := byKey[strings.ToUpper(p)]; ok {
			return fmt.Errorf("fatimg: %q appears twice (FAT names ignore case)", p)
		}
		parent, err := mkdir(parentOf(p))
		if err != nil {
			return err
		}
		n := &node{name: path.Base(p), size: e.Size, body: e.Body, parent: parent}
		parent.children = append(parent.children, n)
		byKey[strings.ToUpper(p)] = n
	}
	var sortAll func(n *node)
	sortAll = func(n *node) {
		slices.SortFunc(n.children, func(a, b *node) int { return cmp.Compare(a.name, b.name) })
		for _, c := range n.children {
			sortAll(c)
		}
	}
	sortAll(v.root)
	return nil
}

func parentOf(p string) string {
	if d := path.Dir(p); d != "." {
		return d
	}
	return ""
}

// layout picks the FAT type, the cluster size and every region's size.
func (v *Volume) layout() error {
	clusterBytes := func(spc int) int { return spc * sectorSize }
	// Clusters the content needs at spc sectors per cluster; the root folder's too when
	// it is a cluster chain (FAT32).
	need := func(spc int, fat32 bool) int {
		n := 0
		var walk func(d *node)
		walk = func(d *node) {
			for _, c := range d.children {
				if c.dir {
					n += max(1, ceilDiv(dirBytes(c, false), clusterBytes(spc)))
					walk(c)
				} else {
					n += ceilDiv(int(c.size), clusterBytes(spc))
				}
			}
		}
		walk(v.root)
		if fat32 {
			n += max(1, ceilDiv(dirBytes(v.root, v.opt.Label != ""), clusterBytes(spc)))
		}
		return n
	}
	try := func(bits, spc int) error {
		v.bits, v.spc = bits, spc
		v.reserved, v.rootSectors = 1, fixedRootEntries*32/sectorSize
		if bits == 32 {
			v.reserved, v.rootSectors = 32, 0
		} else if d := dirBytes(v.root, v.opt.Label != ""); d > fixedRootEntries*32 {
			return fmt.Errorf("fatimg: the root folder needs %d entries; FAT%d's holds %d", d/32, bits, fixedRootEntries)
		}
		fatSecs := func(clusters int) int {
			return ceilDiv(ceilDiv((clusters+2)*bits, 8), sectorSize)
		}
		if v.opt.Size == 0 {
			v.clusters = need(spc, bits == 32)
			if bits == 32 {
				v.clusters = max(v.clusters, fat16Max+1)
			}
			v.fatSectors = fatSecs(v.clusters)
			v.totalSectors = v.reserved + 2*v.fatSectors + v.rootSectors + v.clusters*spc
		} else {
			v.totalSectors = int(v.opt.Size / sectorSize)
			// Readers count the clusters from the geometry: whatever the two FATs leave
			// of the volume. The FATs are the fewest sectors that have an entry for each.
			free := v.totalSectors - v.reserved - v.rootSectors
			count := func(f int) int { return max((free-2*f)/spc, 0) }
			fits := func(f int) bool { return f*sectorSize*8/bits-2 >= count(f) }
			lo, hi := 1, max(fatSecs(free/spc), 1)
			for lo < hi {
				if mid := (lo + hi) / 2; fits(mid) {
					hi = mid
				} else {
					lo = mid + 1
				}
			}
			v.fatSectors, v.clusters = lo, count(lo)
			if n := need(spc, bits == 32); n > v.clusters {
				return fmt.Errorf("fatimg: the content needs %d KiB; a %d KiB FAT%d volume holds %d KiB",
					n*clusterBytes(spc)/1024, v.opt.Size/1024, bits, v.clusters*clusterBytes(spc)/1024)
			}
		}
		switch {
		case bits == 12 && v.clusters > fat12Max,
			bits == 16 && (v.clusters <= fat12Max || v.clusters > fat16Max),
			bits == 32 && v.clusters <= fat16Max:
			return errWrongType
		}
		return nil
	}
	if v.opt.Bits != 0 {
		// FAT32 below 256 MiB needs clusters smaller than 4 KiB to have enough of them; a
		// volume sized to its content is smallest with the smallest clusters that do.
		order := []int{8, 4, 2, 1}
		if v.opt.Size == 0 && v.opt.Bits == 32 {
			order = []int{1, 2, 4, 8}
		}
		for _, spc := range order {
			err := try(v.opt.Bits, spc)
			if !errors.Is(err, errWrongType) {
				return err
			}
			if v.opt.Bits != 32 {
				break
			}
		}
		return fmt.Errorf("fatimg: %d clusters make no FAT%d volume; give another size or let the type be chosen", v.clusters, v.opt.Bits)
	}
	for _, bits := range []int{12, 16, 32} {
		err := try(bits, 8)
		if !errors.Is(err, errWrongType) {
			return err
		}
	}
	return errors.New("fatimg: no FAT type fits this size")
}

var errWrongType = errors.New("the cluster count does not suit the FAT type")

// dirBytes is the size of a folder's entries: . and .. (not in the root), the label (in
// the root, when there is one), and each child's long-name and short entries.
func dirBytes(d *node, label bool) int {
	n := 0
	if d.parent != nil {
		n += 2
	}
	if label {
		n++
	}
	for _, c := range d.children {
		n += 1 + longEntriesFor(c.name)
	}
	return n * 32
}

// longEntriesFor is how many long-name entries a name needs: none when it is its own 8.3
// short name.
func longEntriesFor(name string) int {
	if exactShort(name) {
		return 0
	}
	return ceilDiv(len(utf16.Encode([]rune(name))), 13)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// allocate gives clusters to the folders (the FAT32 root first) and then to the files, in
// tree order, and writes the chains into the FAT and the folders' entries.
func (v *Volume) allocate() {
	v.fat = make([]uint32, v.clusters+2)
	eoc := uint32(1)<<v.bits - 1
	if v.bits == 32 {
		eoc = 0x0FFFFFFF
	}
	v.fat[0] = eoc&^0xFF | 0xF8
	v.fat[1] = eoc
	next := 2
	take := func(n int) int {
		if n == 0 {
			return 0
		}
		first := next
		for i := range n - 1 {
			v.fat[first+i] = uint32(first + i + 1)
		}
		v.fat[first+n-1] = eoc
		next += n
		return first
	}
	cb := v.spc * sectorSize
	var dirs, files []*node
	var walk func(d *node)
	walk = func(d *node) {
		for _, c := range d.children {
			if c.dir {
				dirs = append(dirs, c)
			} else if c.size > 0 {
				files = append(files, c)
			}
		}
		for _, c := range d.children {
			if c.dir {
				walk(c)
			}
		}
	}
	walk(v.root)
	if v.bits == 32 {
		dirs = append([]*node{v.root}, dirs...)
	}
	for _, d := range dirs {
		d.nclus = max(1, ceilDiv(dirBytes(d, d == v.root && v.opt.Label != ""), cb))
		d.first = take(d.nclus)
	}
	for _, f := range files {
		f.nclus = ceilDiv(int(f.size), cb)
		f.first = take(f.nclus)
	}
	v.used = next - 2
	v.dirs, v.files = dirs, files
	for _, d := range append([]*node{v.root}, dirs...) {
		size := dirBytes(d, d == v.root && v.opt.Label != "")
		if d == v.root && v.bits != 32 {
			size = v.rootSectors * sectorSize
		} else {
			size = max(1, ceilDiv(size, cb)) * cb
		}
		d.data = v.entries(d, size)
	}
}

// entries writes a folder's directory entries into a buffer of size bytes.
func (v *Volume) entries(d *node, size int) []byte {
	buf := make([]byte, 0, size)
	date, tm := fatTime(v.opt.ModTime)
	short := func(name [11]byte, attr byte, first int, size uint32) []byte {
		e := make([]byte, 32)
		copy(e, name[:])
		e[11] = attr
		le := binary.LittleEndian
		le.PutUint16(e[14:], tm)
		le.PutUint16(e[16:], date)
		le.PutUint16(e[18:], date)
		le.PutUint16(e[20:], uint16(first>>16))
		le.PutUint16(e[22:], tm)
		le.PutUint16(e[24:], date)
		le.PutUint16(e[26:], uint16(first))
		le.PutUint32(e[28:], size)
		return e
	}
	if d.parent != nil {
		parent := d.parent.first
		if d.parent == v.root {
			parent = 0 // ".." of a root child is cluster 0 on every FAT type
		}
		buf = append(buf, short(dotName("."), 0x10, d.first, 0)...)
		buf = append(buf, short(dotName(".."), 0x10, parent, 0)...)
	}
	if d == v.root && v.opt.Label != "" {
		lab, _ := shortLabel(v.opt.Label) // checked by WriteTo's caller path
		e := short(lab, 0x08, 0, 0)
		buf = append(buf, e...)
	}
	// Names that are their own short names come first, so that no generated alias (~N) can
	// take one of them.
	used := map[string]bool{}
	for _, c := range d.children {
		if exactShort(c.name) {
			n := padShort(c.name)
			used[string(n[:])] = true
		}
	}
	for _, c := range d.children {
		var name [11]byte
		if exactShort(c.name) {
			name = padShort(c.name)
		} else {
			name = shortName(c.name, used)
		}
		if !exactShort(c.name) {
			for _, e := range longEntries(c.name, name) {
				buf = append(buf, e...)
			}
		}
		if c.dir {
			buf = append(buf, short(name, 0x10, c.first, 0)...)
		} else {
			buf = append(buf, short(name, 0x20, c.first, uint32(c.size))...)
		}
	}
	return buf[:size]
}

// padShort is an exact 8.3 name as a directory entry holds it: base and extension, each
// padded with spaces.
func padShort(name string) [11]byte {
	var n [11]byte
	copy(n[:], "           ")
	base, ext, _ := strings.Cut(name, ".")
	copy(n[:8], base)
	copy(n[8:], ext)
	return n
}

func dotName(s string) [11]byte {
	var n [11]byte
	copy(n[:], "           ")
	copy(n[:], s)
	return n
}

// fatTime is t as FAT's date and time (UTC, 2 s steps, 1980 at the earliest).
func fatTime(t time.Time) (date, tm uint16) {
	t = t.UTC()
	if t.Year() < 1980 {
		return 1<<5 | 1, 0
	}
	if t.Year() > 2107 {
		t = time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
	}
	date = uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	tm = uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	return date, tm
}

// volumeID derives a serial number from the label and the tree's names and sizes.
func (v *Volume) volumeID() uint32 {
	if v.opt.VolumeID != 0 {
		return v.opt.VolumeID
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00", v.opt.Label, v.totalSectors)
	var walk func(d *node, p string)
	walk = func(d *node, p string) {
		for _, c := range d.children {
			fmt.Fprintf(h, "%s/%s\x00%t\x00%d\x00", p, c.name, c.dir, c.size)
			if c.dir {
				walk(c, p+"/"+c.name)
			}
		}
	}
	walk(v.root, "")
	return binary.LittleEndian.Uint32(h.Sum(nil))
}

// bootSector is the volume's first sector (and FAT32's backup copy).
func (v *Volume) bootSector() []byte {
	b := make([]byte, sectorSize)
	le := binary.LittleEndian
	code := 0x3E
	if v.bits == 32 {
		code = 0x5A
	}
	b[0], b[1], b[2] = 0xEB, byte(code-2), 0x90
	// Not a boot volume: the boot code halts.
	b[code], b[code+1], b[code+2] = 0xF4, 0xEB, 0xFD
	copy(b[3:], "KILN    ")
	le.PutUint16(b[11:], sectorSize)
	b[13] = byte(v.spc)
	le.PutUint16(b[14:], uint16(v.reserved))
	b[16] = 2
	if v.bits != 32 {
		le.PutUint16(b[17:], fixedRootEntries)
	}
	if v.totalSectors < 0x10000 && v.bits != 32 {
		le.PutUint16(b[19:], uint16(v.totalSectors))
	} else {
		le.PutUint32(b[32:], uint32(v.totalSectors))
	}
	b[21] = 0xF8
	le.PutUint16(b[24:], 63)  // sectors per track
	le.PutUint16(b[26:], 255) // heads
	le.PutUint32(b[28:], v.opt.HiddenSectors)
	ext := 36
	typ := fmt.Sprintf("FAT%d   ", v.bits)
	if v.bits == 32 {
		le.PutUint32(b[36:], uint32(v.fatSectors))
		le.PutUint32(b[44:], uint32(v.root.first))
		le.PutUint16(b[48:], 1) // FSInfo
		le.PutUint16(b[50:], 6) // backup boot sector
		ext = 64
	} else {
		le.PutUint16(b[22:], uint16(v.fatSectors))
	}
	b[ext] = 0x80
	b[ext+2] = 0x29
	le.PutUint32(b[ext+3:], v.volumeID())
	lab := [11]byte{'N', 'O', ' ', 'N', 'A', 'M', 'E', ' ', ' ', ' ', ' '}
	if v.opt.Label != "" {
		lab, _ = shortLabel(v.opt.Label)
	}
	copy(b[ext+7:], lab[:])
	copy(b[ext+18:], typ)
	b[510], b[511] = 0x55, 0xAA
	return b
}

// fsInfo is FAT32's free-space sector.
func (v *Volume) fsInfo() []byte {
	b := make([]byte, sectorSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 0x41615252)
	le.PutUint32(b[484:], 0x61417272)
	le.PutUint32(b[488:], uint32(v.clusters-v.used))
	le.PutUint32(b[492:], uint32(v.used+2))
	le.PutUint32(b[508:], 0xAA550000)
	return b
}

// fatBytes is one copy of the FAT.
func (v *Volume) fatBytes() []byte {
	b := make([]byte, v.fatSectors*sectorSize)
	for n, e := range v.fat {
		switch v.bits {
		case 12:
			i := n * 3 / 2
			if n%2 == 0 {
				b[i] = byte(e)
				b[i+1] = b[i+1]&0xF0 | byte(e>>8)&0x0F
			} else {
				b[i] = b[i]&0x0F | byte(e<<4)
				b[i+1] = byte(e >> 4)
			}
		case 16:
			binary.LittleEndian.PutUint16(b[n*2:], uint16(e))
		case 32:
			binary.LittleEndian.PutUint32(b[n*4:], e)
		}
	}
	return b
}

// WriteTo writes the volume to w, reading each file's body once, in cluster order.
func (v *Volume) WriteTo(w io.Writer) (int64, error) {
	if v.opt.Label != "" {
		if _, err := shortLabel(v.opt.Label); err != nil {
			return 0, err
		}
	}
	cw := &streamio.Counter{W: w}
	boot := v.bootSector()
	fat := v.fatBytes()
	parts := [][]byte{boot}
	if v.bits == 32 {
		reserved := make([]byte, (v.reserved-1)*sectorSize)
		copy(reserved, v.fsInfo())
		copy(reserved[5*sectorSize:], boot)
		copy(reserved[6*sectorSize:], v.fsInfo())
		parts = append(parts, reserved)
	}
	parts = append(parts, fat, fat)
	if v.bits != 32 {
		parts = append(parts, v.root.data)
	}
	for _, d := range v.dirs {
		parts = append(parts, d.data)
	}
	for _, p := range parts {
		if _, err := cw.Write(p); err != nil {
			return cw.N, err
		}
	}
	cb := int64(v.spc * sectorSize)
	for _, f := range v.files {
		n, err := io.Copy(cw, io.LimitReader(f.body, f.size))
		if err != nil {
			return cw.N, fmt.Errorf("fatimg: writing %s: %w", f.name, err)
		}
		if n != f.size {
			return cw.N, fmt.Errorf("fatimg: %s: got %d bytes, want %d", f.name, n, f.size)
		}
		if err := streamio.Zeros(cw, int64(f.nclus)*cb-f.size); err != nil {
			return cw.N, err
		}
	}
	return cw.N, streamio.Zeros(cw, v.Size()-cw.N)
}
