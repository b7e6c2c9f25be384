// Package fatimg writes small FAT12 file system images: the config drives (cloud-init NoCloud
// "cidata") that `kiln run qemu -data` hands to a VM. An image holds files at its root, with
// long (VFAT) names, and is the same bytes for the same label and files: no clock, no random
// volume ID (it is derived from the content), files in name order.
package fatimg

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf16"
)

const (
	sectorSize        = 512
	sectorsPerCluster = 8 // 4 KiB clusters
	clusterSize       = sectorSize * sectorsPerCluster
	rootEntries       = 224 // 14 sectors
	maxClusters       = 4084
	// MaxData is the most file content an image holds (FAT12 with 4 KiB clusters).
	MaxData = (maxClusters - 1) * clusterSize
)

// File is one file at the root of the image.
type File struct {
	Name string
	Data []byte
}

// Write writes a FAT12 image labelled label (at most 11 characters of A-Z, 0-9, - and _;
// lower case is stored upper case, as mkfs.vfat does) holding files at its root, to w.
func Write(w io.Writer, label string, files []File) error {
	lab, err := shortLabel(label)
	if err != nil {
		return err
	}
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	seen := map[string]bool{}
	clusters := 0
	dirSlots := 1 // the volume label entry
	for _, f := range files {
		if err := checkName(f.Name); err != nil {
			return err
		}
		key := strings.ToUpper(f.Name)
		if seen[key] {
			return fmt.Errorf("fatimg: %q appears twice (FAT names ignore case)", f.Name)
		}
		seen[key] = true
		clusters += (len(f.Data) + clusterSize - 1) / clusterSize
		dirSlots += 1 + (len(utf16.Encode([]rune(f.Name)))+12)/13
	}
	if dirSlots > rootEntries {
		return fmt.Errorf("fatimg: %d files do not fit in the root folder", len(files))
	}
	if clusters > maxClusters-1 {
		return fmt.Errorf("fatimg: %d KiB of files; a config drive holds at most %d KiB", clusters*clusterSize/1024, MaxData/1024)
	}
	dataClusters := max(clusters+1, 16)
	fatBytes := (dataClusters + 2) * 3 / 2
	fatSectors := (fatBytes + 1 + sectorSize - 1) / sectorSize
	rootSectors := rootEntries * 32 / sectorSize
	total := 1 + 2*fatSectors + rootSectors + dataClusters*sectorsPerCluster

	// The volume ID is part of the content's digest, so different drives differ.
	h := sha256.New()
	h.Write(lab[:])
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.Name, len(f.Data))
		h.Write(f.Data)
	}
	volumeID := binary.LittleEndian.Uint32(h.Sum(nil))

	boot := make([]byte, sectorSize)
	copy(boot, []byte{0xEB, 0x3C, 0x90})
	copy(boot[3:], "KILN    ")
	binary.LittleEndian.PutUint16(boot[0x0B:], sectorSize)
	boot[0x0D] = sectorsPerCluster
	binary.LittleEndian.PutUint16(boot[0x0E:], 1) // reserved sectors: the boot sector
	boot[0x10] = 2                                // FATs
	binary.LittleEndian.PutUint16(boot[0x11:], rootEntries)
	binary.LittleEndian.PutUint16(boot[0x13:], uint16(total))
	boot[0x15] = 0xF8 // fixed disk
	binary.LittleEndian.PutUint16(boot[0x16:], uint16(fatSectors))
	binary.LittleEndian.PutUint16(boot[0x18:], 32) // sectors per track
	binary.LittleEndian.PutUint16(boot[0x1A:], 64) // heads
	boot[0x24] = 0x80
	boot[0x26] = 0x29 // extended boot signature: ID, label and type follow
	binary.LittleEndian.PutUint32(boot[0x27:], volumeID)
	copy(boot[0x2B:], lab[:])
	copy(boot[0x36:], "FAT12   ")
	boot[0x1FE], boot[0x1FF] = 0x55, 0xAA

	fat := make([]byte, fatSectors*sectorSize)
	setFAT := func(n, v int) {
		i := n * 3 / 2
		if n%2 == 0 {
			fat[i] = byte(v)
			fat[i+1] = fat[i+1]&0xF0 | byte(v>>8)&0x0F
		} else {
			fat[i] = fat[i]&0x0F | byte(v<<4)
			fat[i+1] = byte(v >> 4)
		}
	}
	setFAT(0, 0xFF8)
	setFAT(1, 0xFFF)
	root := make([]byte, rootSectors*sectorSize)
	var slot int
	putEntry := func(e []byte) {
		copy(root[slot*32:], e)
		slot++
	}
	labelEntry := make([]byte, 32)
	copy(labelEntry, lab[:])
	labelEntry[11] = 0x08 // volume label
	putEntry(labelEntry)
	next := 2
	starts := make([]int, len(files))
	for i, f := range files {
		n := (len(f.Data) + clusterSize - 1) / clusterSize
		if n == 0 {
			continue
		}
		starts[i] = next
		for c := range n {
			if c == n-1 {
				setFAT(next+c, 0xFFF)
			} else {
				setFAT(next+c, next+c+1)
			}
		}
		next += n
	}
	used := map[string]bool{}
	for i, f := range files {
		short := shortName(f.Name, used)
		for _, e := range longEntries(f.Name, short) {
			putEntry(e)
		}
		e := make([]byte, 32)
		copy(e, short[:])
		e[11] = 0x20 // archive
		// Times and dates stay 0: no clock in the image.
		binary.LittleEndian.PutUint16(e[26:], uint16(starts[i]))
		binary.LittleEndian.PutUint32(e[28:], uint32(len(f.Data)))
		putEntry(e)
	}

	for _, part := range [][]byte{boot, fat, fat, root} {
		if _, err := w.Write(part); err != nil {
			return err
		}
	}
	written := 0
	for _, f := range files {
		if len(f.Data) == 0 {
			continue
		}
		if _, err := w.Write(f.Data); err != nil {
			return err
		}
		pad := (clusterSize - len(f.Data)%clusterSize) % clusterSize
		if _, err := w.Write(make([]byte, pad)); err != nil {
			return err
		}
		written += (len(f.Data) + pad) / clusterSize
	}
	_, err = w.Write(make([]byte, (dataClusters-written)*clusterSize))
	return err
}

// shortLabel checks and pads a volume label.
func shortLabel(label string) ([11]byte, error) {
	var out [11]byte
	if label == "" || len(label) > 11 {
		return out, fmt.Errorf("fatimg: label %q: want 1 to 11 characters", label)
	}
	for i := range len(label) {
		c := label[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if !isLabelByte(c) {
			return out, fmt.Errorf("fatimg: label %q: only letters, digits, - and _", label)
		}
		out[i] = c
	}
	for i := len(label); i < 11; i++ {
		out[i] = ' '
	}
	return out, nil
}

// isLabelByte reports whether c may be in a volume label (after upper-casing).
func isLabelByte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// checkName accepts the long names a config drive's files have.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || len(utf16.Encode([]rune(name))) > 255 {
		return fmt.Errorf("fatimg: %q is not a file name", name)
	}
	if strings.ContainsAny(name, "/\\:*?\"<>|\x00") || strings.TrimRight(name, ". ") != name {
		return fmt.Errorf("fatimg: %q: FAT file names cannot hold / \\ : * ? \" < > | or end in a dot or space", name)
	}
	return nil
}

// shortName makes the 8.3 alias of a long name: upper case, invalid characters as _, and
// "~N" when it is not the long name itself or is taken.
func shortName(name string, used map[string]bool) [11]byte {
	clean := func(s string) string {
		var b strings.Builder
		for _, r := range strings.ToUpper(s) {
			switch {
			case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("!#$%&'()-@^_`{}~", r):
				b.WriteRune(r)
			case r == ' ' || r == '.':
			default:
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	base, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		base, ext = name[:i], name[i+1:]
	}
	b, e := clean(base), clean(ext)
	if len(e) > 3 {
		e = e[:3]
	}
	exact := b == strings.ToUpper(base) && len(b) <= 8 && e == strings.ToUpper(ext) && len(ext) <= 3 && b != ""
	var out [11]byte
	for n := 1; ; n++ {
		cand := b
		if !exact || n > 1 {
			tail := fmt.Sprintf("~%d", n)
			cand = b[:min(len(b), 8-len(tail))] + tail
		}
		for i := range out {
			out[i] = ' '
		}
		copy(out[:8], cand)
		copy(out[8:], e)
		if !used[string(out[:])] {
			used[string(out[:])] = true
			return out
		}
	}
}

// longEntries are the VFAT entries that carry name, last part first, each with the short
// name's checksum.
func longEntries(name string, short [11]byte) [][]byte {
	var sum byte
	for _, c := range short {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	u := utf16.Encode([]rune(name))
	n := (len(u) + 12) / 13
	padded := make([]uint16, n*13)
	for i := range padded {
		switch {
		case i < len(u):
			padded[i] = u[i]
		case i == len(u):
			padded[i] = 0
		default:
			padded[i] = 0xFFFF
		}
	}
	out := make([][]byte, 0, n)
	for seq := n; seq >= 1; seq-- {
		e := make([]byte, 32)
		e[0] = byte(seq)
		if seq == n {
			e[0] |= 0x40
		}
		e[11] = 0x0F // long name
		e[13] = sum
		chars := padded[(seq-1)*13 : seq*13]
		for i, off := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
			binary.LittleEndian.PutUint16(e[off:], chars[i])
		}
		out = append(out, e)
	}
	return out
}
