// Package fatimg writes FAT file systems (FAT12, FAT16, FAT32) as images: the EFI system
// partitions of kiln's bootable media (New, Volume) and the small config drives (cloud-init
// NoCloud "cidata") that `kiln run qemu -data` hands to a VM (Write). A volume holds folders
// and files with long (VFAT) names, and is the same bytes for the same input: time stamps
// from the caller (none from a clock), a volume ID derived from the content, entries in name
// order. File bodies are streamed; only the FAT and the folders are held in memory.
//
// It does not read FAT volumes, and writes no boot code (a volume's boot sector halts).
package fatimg

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf16"
)

const (
	sectorSize = 512
	// MaxData is the most file content a config drive (Write) holds: a FAT12 volume of 4 KiB
	// clusters.
	MaxData = (fat12Max - 1) * 8 * sectorSize
)

// File is one file at the root of a config drive.
type File struct {
	Name string
	Data []byte
}

// Write writes a small FAT volume (FAT12) labelled label (at most 11 characters of A-Z, 0-9, -
// and _; lower case is stored upper case, as mkfs.vfat does) holding files at its root, to w.
// The volume ID is derived from the label and the files, contents included, so different
// drives differ.
func Write(w io.Writer, label string, files []File) error {
	if _, err := shortLabel(label); err != nil {
		return err
	}
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	total := 0
	entries := make([]Entry, 0, len(files))
	h := sha256.New()
	h.Write([]byte(label))
	for _, f := range files {
		if err := checkName(f.Name); err != nil {
			return err
		}
		total += (len(f.Data) + 4095) / 4096 * 4096
		fmt.Fprintf(h, "%s\x00%d\x00", f.Name, len(f.Data))
		h.Write(f.Data)
		entries = append(entries, Entry{Path: f.Name, Size: int64(len(f.Data)), Body: bytes.NewReader(f.Data)})
	}
	if total > MaxData {
		return fmt.Errorf("fatimg: %d KiB of files; a config drive holds at most %d KiB", total/1024, MaxData/1024)
	}
	v, err := New(Options{Label: label, Bits: 12, VolumeID: binary.LittleEndian.Uint32(h.Sum(nil))}, entries)
	if err != nil {
		return err
	}
	_, err = v.WriteTo(w)
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
	exact := b == strings.ToUpper(base) && len(b) <= 8 && e == strings.ToUpper(ext) && len(ext) <= 3 && b != "" && strings.Count(name, ".") <= 1
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

// exactShort reports whether name is its own 8.3 short name (upper case, valid characters),
// so that it needs no long-name entries.
func exactShort(name string) bool {
	base, ext, _ := strings.Cut(name, ".")
	if base == "" || len(base) > 8 || len(ext) > 3 || strings.Contains(ext, ".") {
		return false
	}
	for _, r := range base + ext {
		valid := r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'()-@^_`{}~", r)
		if !valid {
			return false
		}
	}
	return true
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
