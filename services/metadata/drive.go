package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat12"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// drive is a block device holding a file system with a label.
type drive struct {
	path   string // /dev/NAME
	fstype string // iso9660 or vfat
	label  string
}

// findDrives lists the block devices (env.Devices, or every one in sysfs but RAM disks) that
// hold an ISO9660 or FAT file system, with their labels, in name order.
func findDrives(env Env) []drive {
	paths := env.Devices
	if paths == nil {
		ents, err := os.ReadDir(filepath.Join(env.Sys, "class", "block"))
		if err != nil {
			env.Log("no block devices to look at: %v", err)
			return nil
		}
		for _, e := range ents {
			n := e.Name()
			if strings.HasPrefix(n, "ram") || strings.HasPrefix(n, "zram") {
				continue
			}
			paths = append(paths, filepath.Join(env.Dev, n))
		}
	}
	sort.Strings(paths)
	var out []drive
	for _, p := range paths {
		fstype, label, err := probe(p)
		if err != nil || fstype == "" {
			continue
		}
		out = append(out, drive{path: p, fstype: fstype, label: label})
	}
	return out
}

// probe reads the start of a device (or image file) and returns its file system type and
// label when it is ISO9660 or FAT ("" when it is neither).
func probe(path string) (fstype, label string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	buf := make([]byte, 0x8000+2048)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", "", err
	}
	buf = buf[:n]
	if l, ok := isoLabel(buf); ok {
		return "iso9660", l, nil
	}
	if l, ok := fatLabel(buf); ok {
		return "vfat", l, nil
	}
	return "", "", nil
}

// isoLabel reads the volume identifier of an ISO9660 primary volume descriptor (sector 16:
// type 1, "CD001", the identifier at byte 40, 32 bytes padded with spaces).
func isoLabel(b []byte) (string, bool) {
	const pvd = 16 * 2048
	if len(b) < pvd+72 || b[pvd] != 1 || string(b[pvd+1:pvd+6]) != "CD001" {
		return "", false
	}
	return strings.TrimRight(string(b[pvd+40:pvd+72]), " \x00"), true
}

// fatLabel reads the volume label of a FAT boot sector: the extended boot signature 0x29 at
// 0x26 (FAT12/16, label at 0x2B) or at 0x42 (FAT32, label at 0x47), 11 bytes padded with spaces.
func fatLabel(b []byte) (string, bool) {
	if len(b) < 512 || b[510] != 0x55 || b[511] != 0xAA {
		return "", false
	}
	switch {
	case bytes.Equal(b[0x52:0x5A], []byte("FAT32   ")) && b[0x42] == 0x29:
		return strings.TrimRight(string(b[0x47:0x52]), " \x00"), true
	case bytes.HasPrefix(b[0x36:0x3E], []byte("FAT")) && b[0x26] == 0x29:
		return strings.TrimRight(string(b[0x2B:0x36]), " \x00"), true
	}
	return "", false
}

// readDrives reads the first drive labelled kind ("cidata" or "config-2", any case). No such
// drive: nil, no error.
func readDrives(env Env, drives []drive, kind string) (*Config, error) {
	for _, d := range drives {
		if !strings.EqualFold(d.label, kind) {
			continue
		}
		c, err := readDrive(d, kind)
		if err != nil {
			return nil, fmt.Errorf("%s (%s, %s): %w", d.path, d.fstype, d.label, err)
		}
		return c, nil
	}
	return nil, nil
}

// readDrive reads d's configuration with go-diskfs, in user space: no kernel file system
// modules and no mount privileges are needed, and nothing on the drive is ever executed.
func readDrive(d drive, kind string) (c *Config, err error) {
	f, err := os.Open(d.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fsys, err := openFS(f, d.fstype)
	if err != nil {
		return nil, fmt.Errorf("reading its %s file system: %w", d.fstype, err)
	}
	read := func(name string, required bool) ([]byte, error) {
		f, err := fsys.OpenFile("/"+name, os.O_RDONLY)
		if err != nil {
			if !required {
				return nil, nil
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
		if err == nil && len(b) > maxFile {
			err = fmt.Errorf("more than %d MiB", maxFile>>20)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return b, nil
	}
	if kind == "config-2" {
		meta, err := read("openstack/latest/meta_data.json", true)
		if err != nil {
			return nil, err
		}
		user, err := read("openstack/latest/user_data", false)
		if err != nil {
			return nil, err
		}
		return parseOpenStack(meta, user)
	}
	meta, err := read("meta-data", true)
	if err != nil {
		return nil, err
	}
	user, err := read("user-data", false)
	if err != nil {
		return nil, err
	}
	return parseNoCloud("cidata", meta, user)
}

// openFS reads the file system probe found on f: ISO9660 in 2048-byte sectors whatever the
// device's own block size (a virtio disk says 512), FAT in 512-byte sectors as FAT32, FAT16 or
// FAT12.
func openFS(f *os.File, fstype string) (filesystem.FileSystem, error) {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	b := file.New(f, true)
	if fstype == "iso9660" {
		return iso9660.Read(b, size, 0, 2048)
	}
	var errs []error
	if fs32, err := fat32.Read(b, size, 0, 512); err == nil {
		return fs32, nil
	} else {
		errs = append(errs, fmt.Errorf("as FAT32: %w", err))
	}
	if fs16, err := fat16.Read(b, size, 0, 512); err == nil {
		return fs16, nil
	} else {
		errs = append(errs, fmt.Errorf("as FAT16: %w", err))
	}
	fs12, err := fat12.Read(b, size, 0, 512)
	if err == nil {
		return fs12, nil
	}
	errs = append(errs, fmt.Errorf("as FAT12: %w", err))
	return nil, errors.Join(errs...)
}
