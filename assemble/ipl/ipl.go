// Package ipl writes the image an s390x machine IPLs (starts) from a CD-ROM or over the
// network: the Linux kernel's "image" file with the initramfs appended and the command line
// written into the kernel's parameter area, the layout s390-tools' mk-s390image makes.
//
// The kernel image is loaded at address 0 and started there; it finds the initramfs at the
// offset and with the size its parameter area names, and its command line in the same area.
// The facts (Linux's arch/s390 setup.h, s390-tools' netboot/mk-s390image, QEMU's
// pc-bios/s390-ccw):
//
//	bytes 8..31   the s390 Linux image's first PSW and CCWs (checked as its magic)
//	0x10408       initrd offset, big-endian u64 (the kernel padded to 4 KiB)
//	0x10410       initrd size, big-endian u64
//	0x10430       the command line's maximum size, big-endian u64 (0: the old 896 bytes)
//	0x10480       the command line, NUL-terminated; the area is cleared first, which also
//	              removes the command line built into the kernel ("root=/dev/ram0 ro" in
//	              Debian's)
package ipl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/kiln-os/kiln/internal/streamio"
)

// Offsets in the kernel's parameter area.
const (
	initrdStartOff = 0x10408
	initrdSizeOff  = 0x10410
	maxCmdlineOff  = 0x10430
	cmdlineOff     = 0x10480
	legacyCmdline  = 896
	// pageSize is the alignment of the initramfs after the kernel.
	pageSize = 4096
)

// magic is bytes 8..31 of an s390 Linux image: its IPL PSW and channel programs.
var magic = []byte{
	0x02, 0x00, 0x00, 0x18, 0x60, 0x00, 0x00, 0x50,
	0x02, 0x00, 0x00, 0x68, 0x60, 0x00, 0x00, 0x50,
	0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40,
}

// ErrNotS390 is returned for a kernel that is not an s390 Linux image.
var ErrNotS390 = errors.New("not an s390 Linux kernel image (bytes 8-31 are not its IPL PSW and CCWs)")

// Size is the size of the image for a kernel and an initramfs of these sizes.
func Size(kernelSize, initrdSize int64) int64 {
	return pad(kernelSize) + initrdSize
}

func pad(n int64) int64 { return (n + pageSize - 1) / pageSize * pageSize }

// Write writes the image: kernel (kernelSize bytes) with its parameter area patched, zeros to
// the next 4 KiB, then initrd (initrdSize bytes). Only the kernel's first pages are held in
// memory. It returns the bytes written.
func Write(w io.Writer, kernel io.Reader, kernelSize int64, initrd io.Reader, initrdSize int64, cmdline string) (int64, error) {
	if kernelSize < cmdlineOff+legacyCmdline {
		return 0, fmt.Errorf("kernel of %d bytes: %w", kernelSize, ErrNotS390)
	}
	if bytes.IndexByte([]byte(cmdline), 0) >= 0 {
		return 0, errors.New("the command line has a NUL byte")
	}
	head := make([]byte, cmdlineOff)
	if _, err := io.ReadFull(kernel, head); err != nil {
		return 0, fmt.Errorf("reading the kernel: %w", err)
	}
	if !bytes.Equal(head[8:32], magic) {
		return 0, ErrNotS390
	}
	limit := int64(binary.BigEndian.Uint64(head[maxCmdlineOff:]))
	if limit == 0 {
		limit = legacyCmdline
	}
	if limit < legacyCmdline || cmdlineOff+limit > kernelSize {
		return 0, fmt.Errorf("the kernel says its command line may have %d bytes, which its %d bytes cannot hold: %w", limit, kernelSize, ErrNotS390)
	}
	if int64(len(cmdline)) >= limit {
		return 0, fmt.Errorf("the command line has %d bytes; this kernel takes at most %d", len(cmdline), limit-1)
	}
	binary.BigEndian.PutUint64(head[initrdStartOff:], uint64(pad(kernelSize)))
	binary.BigEndian.PutUint64(head[initrdSizeOff:], uint64(initrdSize))
	area := make([]byte, limit)
	copy(area, cmdline)
	// The kernel's own bytes under the area are skipped, not copied.
	if _, err := io.CopyN(io.Discard, kernel, limit); err != nil {
		return 0, fmt.Errorf("reading the kernel: %w", err)
	}
	var n int64
	copyPart := func(r io.Reader) error {
		m, err := io.Copy(w, r)
		n += m
		return err
	}
	if err := copyPart(io.MultiReader(bytes.NewReader(head), bytes.NewReader(area), io.LimitReader(kernel, kernelSize-cmdlineOff-limit))); err != nil {
		return n, err
	}
	if n != kernelSize {
		return n, fmt.Errorf("the kernel has %d bytes, not %d: shorter than its size", n, kernelSize)
	}
	if err := streamio.Zeros(w, pad(n)-n); err != nil {
		return n, err
	}
	n = pad(n)
	if err := copyPart(io.LimitReader(initrd, initrdSize)); err != nil {
		return n, err
	}
	if want := Size(kernelSize, initrdSize); n != want {
		return n, fmt.Errorf("wrote %d bytes of %d: the initramfs is shorter than its size", n, want)
	}
	return n, nil
}
