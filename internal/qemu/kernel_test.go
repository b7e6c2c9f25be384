package qemu

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"
)

func TestInspect(t *testing.T) {
	dir := writeKernels(t)
	cases := []struct {
		file    string
		want    KernelInfo
		unknown bool // an error wrapping ErrUnknownKernel
	}{
		{file: "vmlinux-pvh", want: KernelInfo{Arch: "amd64", Format: FormatELF, PVH: true}},
		{file: "vmlinux-nopvh", want: KernelInfo{Arch: "amd64", Format: FormatELF}},
		{file: "vmlinux-arm64", want: KernelInfo{Arch: "arm64", Format: FormatELF}},
		{file: "vmlinux-s390x", want: KernelInfo{Arch: "s390x", Format: FormatELF}},
		{file: "bzImage", want: KernelInfo{Arch: "amd64", Format: FormatBzImage}},
		{file: "Image", want: KernelInfo{Arch: "arm64", Format: FormatARM64Image}},
		{file: "Image.gz", want: KernelInfo{Arch: "arm64", Format: FormatARM64Image}},
		{file: "image-s390x", want: KernelInfo{Arch: "s390x", Format: FormatS390Image}},
		{file: "pe-amd64", want: KernelInfo{Arch: "amd64", Format: FormatPE}},
		{file: "pe-arm64", want: KernelInfo{Arch: "arm64", Format: FormatPE}},
		{file: "vmlinux-riscv", unknown: true},
		{file: "pe-riscv", unknown: true},
		{file: "other.gz", unknown: true},
		{file: "random", unknown: true},
		{file: "short", unknown: true},
		{file: "empty", unknown: true},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			got, err := Inspect(filepath.Join(dir, tc.file))
			if tc.unknown {
				if !errors.Is(err, ErrUnknownKernel) {
					t.Fatalf("Inspect = %+v, %v; want ErrUnknownKernel", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Inspect = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	if _, err := Inspect(filepath.Join(dir, "missing")); err == nil || errors.Is(err, ErrUnknownKernel) {
		t.Errorf("Inspect of a missing file = %v, want a read error", err)
	}
}

func TestHasPVHNoteTruncated(t *testing.T) {
	for n := range len(pvhNote) {
		if hasPVHNote(pvhNote[:n], binary.LittleEndian) {
			t.Errorf("a note cut to %d bytes was taken for the PVH note", n)
		}
	}
}

func TestHasPVHNoteWhole(t *testing.T) {
	if !hasPVHNote(append(elfNote("GNU", 3, make([]byte, 20)), pvhNote...), binary.LittleEndian) {
		t.Error("the PVH note after another note was not found")
	}
	if hasPVHNote(elfNote("Xen", 17, []byte{1, 2, 3, 4}), binary.LittleEndian) {
		t.Error("a Xen note of another type was taken for the PVH note")
	}
}
