// Package gpt writes partitioned disk images: a GUID partition table (with its protective
// MBR and its backup at the end of the disk) around partition contents streamed in order.
//
// Everything is derived from the input: the disk's and the partitions' unique GUIDs come from
// a seed the caller gives (a digest of what the disk holds), so the same system gives the same
// disk, byte for byte. Partitions start on 1 MiB boundaries. The MBR's boot code (its first
// 440 bytes) may be given, for BIOS boot loaders that start from a GPT disk.
//
// It does not read partition tables and knows nothing of file systems.
package gpt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"

	"github.com/kiln-os/kiln/internal/streamio"
)

// SectorSize is the logical sector size of the disks written.
const SectorSize = 512

const (
	align       = 1 << 20 // partitions start on 1 MiB boundaries
	entries     = 128     // partition entries, as every tool writes
	entrySize   = 128
	entrySecs   = entries * entrySize / SectorSize // 32
	headerBytes = 92
)

// GUID is a GUID in the byte order GPT stores it (the first three fields little-endian).
type GUID [16]byte

// ParseGUID reads the text form, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".
func ParseGUID(s string) (GUID, error) {
	var g GUID
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("GUID %q: want the form 01234567-89AB-CDEF-0123-456789ABCDEF", s)
	}
	raw, err := hex.DecodeString(h)
	if err != nil {
		return g, fmt.Errorf("GUID %q: %w", s, err)
	}
	// Text order to stored order: the first three fields are little-endian.
	g[0], g[1], g[2], g[3] = raw[3], raw[2], raw[1], raw[0]
	g[4], g[5] = raw[5], raw[4]
	g[6], g[7] = raw[7], raw[6]
	copy(g[8:], raw[8:])
	return g, nil
}

// String is the text form, upper case.
func (g GUID) String() string {
	return fmt.Sprintf("%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15])
}

func mustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// Partition types kiln writes.
var (
	// TypeESP is an EFI system partition (FAT).
	TypeESP = mustGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	// TypeBIOSBoot holds a BIOS boot loader's core (GRUB's core.img) on a GPT disk.
	TypeBIOSBoot = mustGUID("21686148-6449-6E6F-744E-656564454649")
	// TypeBasicData is a FAT (or NTFS) data partition.
	TypeBasicData = mustGUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
	// TypeLinux is a Linux file system.
	TypeLinux = mustGUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
)

// Attribute bits.
const (
	// AttrLegacyBIOSBootable marks the partition BIOS boot code should start (syslinux's
	// gptmbr reads it).
	AttrLegacyBIOSBootable = 1 << 2
)

// Partition is one partition, in disk order.
type Partition struct {
	Name       string // up to 36 UTF-16 code units
	Type       GUID
	Attributes uint64
	// Size in bytes, a multiple of SectorSize.
	Size int64
	// Body gives the partition's Size bytes (fewer: the rest is zeros); nil for all zeros.
	Body io.Reader
}

// Disk describes a disk image.
type Disk struct {
	Partitions []Partition
	// Size of the disk in bytes, a multiple of SectorSize; 0 makes it just big enough,
	// rounded up to a MiB.
	Size int64
	// Seed makes the GUIDs: the same seed, the same GUIDs. Give a digest of the content.
	Seed []byte
	// BootCode, at most 440 bytes, is the MBR's boot code.
	BootCode []byte
	// Active marks the protective MBR's partition active (0x80), which some PC BIOSes want
	// before they start a disk's boot code. UEFI wants it clear: set it on BIOS-only disks.
	Active bool
}

// Layout is where Write puts each partition.
type Layout struct {
	Sectors int64   // the disk's size in sectors
	Start   []int64 // each partition's first sector
	GUIDs   []GUID  // each partition's unique GUID
	Disk    GUID
}

// Plan places the partitions and checks the disk.
func Plan(d Disk) (Layout, error) {
	var l Layout
	if len(d.Partitions) == 0 || len(d.Partitions) > entries {
		return l, fmt.Errorf("gpt: %d partitions; want 1 to %d", len(d.Partitions), entries)
	}
	if len(d.BootCode) > 440 {
		return l, fmt.Errorf("gpt: %d bytes of MBR boot code; at most 440 fit", len(d.BootCode))
	}
	if len(d.Seed) == 0 {
		return l, errors.New("gpt: no seed for the GUIDs")
	}
	next := int64(align / SectorSize)
	for i, p := range d.Partitions {
		if p.Size <= 0 || p.Size%SectorSize != 0 {
			return l, fmt.Errorf("gpt: partition %d (%s): size %d is not a positive number of %d-byte sectors", i+1, p.Name, p.Size, SectorSize)
		}
		if len(utf16.Encode([]rune(p.Name))) > 36 {
			return l, fmt.Errorf("gpt: partition %d: name %q is longer than 36 UTF-16 units", i+1, p.Name)
		}
		l.Start = append(l.Start, next)
		next = alignUp(next+p.Size/SectorSize, align/SectorSize)
		l.GUIDs = append(l.GUIDs, derive(d.Seed, fmt.Sprintf("partition %d", i+1)))
	}
	last := d.Partitions[len(d.Partitions)-1]
	end := l.Start[len(l.Start)-1] + last.Size/SectorSize // first sector after the last partition
	need := end + 1 + entrySecs                           // the backup table and header
	switch {
	case d.Size == 0:
		l.Sectors = alignUp(need, align/SectorSize)
	case d.Size%SectorSize != 0:
		return l, fmt.Errorf("gpt: disk size %d is not a whole number of %d-byte sectors", d.Size, SectorSize)
	case d.Size/SectorSize < need:
		return l, fmt.Errorf("gpt: the partitions need a disk of %d bytes; %d was given", need*SectorSize, d.Size)
	default:
		l.Sectors = d.Size / SectorSize
	}
	l.Disk = derive(d.Seed, "disk")
	return l, nil
}

// derive makes a GUID from the seed and a purpose: SHA-256, marked as an RFC 9562 version 8
// (custom) GUID.
func derive(seed []byte, what string) GUID {
	h := sha256.New()
	h.Write(seed)
	h.Write([]byte{0})
	h.Write([]byte(what))
	var g GUID
	copy(g[:], h.Sum(nil))
	g[7] = g[7]&0x0F | 0x80 // version 8, in the stored (little-endian) third field
	g[8] = g[8]&0x3F | 0x80 // variant 10
	return g
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

// Write writes the disk to w: the protective MBR, the primary table, each partition (read
// from its Body, in order), and the backup table, Size bytes in all.
func Write(w io.Writer, d Disk) error {
	l, err := Plan(d)
	if err != nil {
		return err
	}
	last := l.Sectors - 1
	table := make([]byte, entrySecs*SectorSize)
	for i, p := range d.Partitions {
		e := table[i*entrySize:]
		copy(e[0:16], p.Type[:])
		copy(e[16:32], l.GUIDs[i][:])
		binary.LittleEndian.PutUint64(e[32:], uint64(l.Start[i]))
		binary.LittleEndian.PutUint64(e[40:], uint64(l.Start[i]+p.Size/SectorSize-1))
		binary.LittleEndian.PutUint64(e[48:], p.Attributes)
		for j, u := range utf16.Encode([]rune(p.Name)) {
			binary.LittleEndian.PutUint16(e[56+2*j:], u)
		}
	}
	tableCRC := crc32.ChecksumIEEE(table)
	header := func(self, alt, entriesAt int64) []byte {
		h := make([]byte, SectorSize)
		copy(h, "EFI PART")
		le := binary.LittleEndian
		le.PutUint32(h[8:], 0x00010000)
		le.PutUint32(h[12:], headerBytes)
		le.PutUint64(h[24:], uint64(self))
		le.PutUint64(h[32:], uint64(alt))
		le.PutUint64(h[40:], 2+entrySecs)              // first usable sector
		le.PutUint64(h[48:], uint64(last-entrySecs-1)) // last usable sector
		copy(h[56:72], l.Disk[:])
		le.PutUint64(h[72:], uint64(entriesAt))
		le.PutUint32(h[80:], entries)
		le.PutUint32(h[84:], entrySize)
		le.PutUint32(h[88:], tableCRC)
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:headerBytes]))
		return h
	}

	mbr := make([]byte, SectorSize)
	copy(mbr, d.BootCode)
	// One partition of type 0xEE over the whole disk (or as much as 32 bits count).
	p := mbr[446:]
	if d.Active {
		p[0] = 0x80
	}
	p[1], p[2], p[3] = 0x00, 0x02, 0x00 // CHS of sector 1
	p[4] = 0xEE
	p[5], p[6], p[7] = 0xFF, 0xFF, 0xFF
	binary.LittleEndian.PutUint32(p[8:], 1)
	binary.LittleEndian.PutUint32(p[12:], uint32(min(last, 0xFFFFFFFF)))
	mbr[510], mbr[511] = 0x55, 0xAA

	cw := &streamio.Counter{W: w}
	for _, b := range [][]byte{mbr, header(1, last, 2), table} {
		if _, err := cw.Write(b); err != nil {
			return err
		}
	}
	for i, part := range d.Partitions {
		if err := zeros(cw, l.Start[i]*SectorSize-cw.N); err != nil {
			return err
		}
		if part.Body != nil {
			n, err := io.Copy(cw, io.LimitReader(part.Body, part.Size))
			if err != nil {
				return fmt.Errorf("gpt: writing partition %d (%s): %w", i+1, part.Name, err)
			}
			if extra, _ := part.Body.Read(make([]byte, 1)); extra > 0 && n == part.Size {
				return fmt.Errorf("gpt: partition %d (%s): its content is larger than its %d bytes", i+1, part.Name, part.Size)
			}
		}
	}
	if err := zeros(cw, (last-entrySecs)*SectorSize-cw.N); err != nil {
		return err
	}
	for _, b := range [][]byte{table, header(last, 1, last-entrySecs)} {
		if _, err := cw.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// zeros pads w with zeros up to a boundary n bytes ahead; a negative n is a layout bug.
func zeros(w io.Writer, n int64) error {
	if n < 0 {
		return fmt.Errorf("gpt: internal error: %d bytes written past a boundary", -n)
	}
	return streamio.Zeros(w, n)
}
