package assemble

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/kiln-os/kiln/assemble/gpt"
	"github.com/kiln-os/kiln/assemble/ipl"
	"github.com/kiln-os/kiln/assemble/iso"
	"github.com/kiln-os/kiln/assemble/uki"
	"github.com/kiln-os/kiln/assemble/vdisk"
	"github.com/kiln-os/kiln/internal/archive"
	"github.com/kiln-os/kiln/internal/atomicfile"
	"github.com/kiln-os/kiln/internal/fatimg"
	"github.com/kiln-os/kiln/internal/layers"
	"github.com/kiln-os/kiln/internal/ocicache"
	"github.com/kiln-os/kiln/internal/streamio"
)

// Bootable media (see docs/formats.md). Each medium splits the system stream as
// kernel+initrd does, into scratch files, and then writes the medium around them with the
// boot loader files of the bootloaders package (tools/bootloaders), which Build reads from
// the cache before any output is opened.

// Media file names.
func UKIFile(prefix string) string          { return prefix + ".efi" }
func RawEFIFile(prefix string) string       { return prefix + "-efi.img" }
func QCOW2EFIFile(prefix string) string     { return prefix + "-efi.qcow2" }
func VHDFile(prefix string) string          { return prefix + ".vhd" }
func DynamicVHDFile(prefix string) string   { return prefix + "-dynamic.vhd" }
func VMDKFile(prefix string) string         { return prefix + ".vmdk" }
func GCPFile(prefix string) string          { return prefix + ".img.tar.gz" }
func AWSFile(prefix string) string          { return prefix + "-aws.raw" }
func RawBIOSFile(prefix string) string      { return prefix + "-bios.img" }
func QCOW2BIOSFile(prefix string) string    { return prefix + "-bios.qcow2" }
func ISOBIOSFile(prefix string) string      { return prefix + ".iso" }
func ISOEFIFile(prefix string) string       { return prefix + "-efi.iso" }
func ISOEFIInitrdFile(prefix string) string { return prefix + "-efi-initrd.iso" }
func ISOIPLFile(prefix string) string       { return prefix + "-ipl.iso" }

// bootNeed says what a format needs from the bootloaders package.
type bootNeed int

const (
	needNothing     bootNeed = iota
	needEFI                  // the EFI stub: uki and every EFI medium
	needBIOS                 // ISOLINUX: iso-bios
	needGRUB                 // GRUB's BIOS core: raw-bios, qcow2-bios
	needSystemdBoot          // systemd-boot: iso-efi-initrd
)

// Files of the bootloaders image (tools/bootloaders/Dockerfile).
const (
	efiStubFile     = "efi/linux.efi.stub"
	systemdBootFile = "efi/systemd-boot.efi"
	isolinuxFile    = "bios/isolinux.bin"
	ldlinuxFile     = "bios/ldlinux.c32"
	isohybridFile   = "bios/isohdpfx.bin"
	grubBootFile    = "bios/grub/boot.img"
	grubCoreFile    = "bios/grub/core.img"
)

// bootFiles are the boot loader files a build's media use, read from the bootloaders image.
type bootFiles struct {
	ref   string
	files map[string][]byte
}

// efiBootName is the removable-media path UEFI firmware starts on each architecture.
var efiBootName = map[string]string{"amd64": "EFI/BOOT/BOOTX64.EFI", "arm64": "EFI/BOOT/BOOTAA64.EFI"}

// wantedBootFiles lists what the formats need, for the build's architecture.
func wantedBootFiles(formats []Format) []string {
	var want []string
	add := func(names ...string) {
		for _, n := range names {
			if !slices.Contains(want, n) {
				want = append(want, n)
			}
		}
	}
	for _, f := range formats {
		switch f.boot {
		case needEFI:
			add(efiStubFile)
		case needBIOS:
			add(isolinuxFile, ldlinuxFile, isohybridFile)
		case needGRUB:
			add(grubBootFile, grubCoreFile)
		case needSystemdBoot:
			add(systemdBootFile)
		}
	}
	return want
}

// loadBootFiles resolves the bootloaders image (recording it in res, so the lock file pins
// it) and reads the files the formats need. Its errors name the image and the way to make it.
func (b *builder) loadBootFiles(ctx context.Context, res resolution, lock *lockFile) (*bootFiles, error) {
	want := wantedBootFiles(b.opt.Formats)
	if len(want) == 0 {
		return nil, nil
	}
	ref := b.opt.Bootloaders
	if dir, ok := strings.CutPrefix(ref, "@pkg:"); ok {
		if b.opt.PkgResolver == nil {
			return nil, fmt.Errorf("boot loaders %s: no package resolver", ref)
		}
		r, err := b.opt.PkgResolver(dir)
		if err != nil {
			return nil, fmt.Errorf("boot loaders %s: %w", ref, err)
		}
		ref = r
	}
	r, err := b.resolve(ctx, ref, lock)
	if err != nil {
		return nil, fmt.Errorf("the media formats need the boot loaders image %s (kiln pkg build tools/bootloaders in kiln's source makes it; -bootloaders names another): %w", ref, err)
	}
	res[ref] = r
	files := map[string][]byte{}
	for i, l := range imageLayers(r) {
		if err := readLayerFiles(ctx, l, want, files); err != nil {
			return nil, fmt.Errorf("boot loaders %s, layer %d: %w", ref, i+1, err)
		}
	}
	for _, w := range want {
		if _, ok := files[w]; !ok {
			return nil, fmt.Errorf("boot loaders %s has no /%s for %s: is it tools/bootloaders' image?", ref, w, b.opt.Arch)
		}
	}
	return &bootFiles{ref: ref, files: files}, nil
}

// ImageFiles reads the regular files named by want (paths without a leading slash) from the
// image ref for linux/arch in cache, such as the iPXE binaries of the bootloaders image that
// kiln serve hands out. Files an image lacks are left out of the map. They are held in memory
// (at most 16 MiB each).
func ImageFiles(ctx context.Context, cache *ocicache.Cache, ref, arch string, want []string) (map[string][]byte, error) {
	img, _, err := cache.Image(ref, &v1.Platform{OS: "linux", Architecture: arch})
	if err != nil {
		return nil, fmt.Errorf("%s variant: %w", arch, err)
	}
	files := map[string][]byte{}
	for i, l := range ImageLayers(img, ref) {
		if err := readLayerFiles(ctx, l, want, files); err != nil {
			return nil, fmt.Errorf("image %s, layer %d: %w", ref, i+1, err)
		}
	}
	return files, nil
}

// readLayerFiles reads the regular files named want from one layer's tar into files (a
// later layer's copy replaces an earlier one's; a whiteout removes it). Boot loader files
// are small: they are held in memory.
func readLayerFiles(ctx context.Context, l layers.Layer, want []string, files map[string][]byte) error {
	rc, err := l.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(layers.ContextReader(ctx, rc))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if base := path.Base(name); strings.HasPrefix(base, ".wh.") {
			delete(files, path.Join(path.Dir(name), strings.TrimPrefix(base, ".wh.")))
			continue
		}
		if !slices.Contains(want, name) || h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > 16<<20 {
			return fmt.Errorf("/%s is %d bytes: too large for a boot loader file", name, h.Size)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		files[name] = b
	}
}

// medium is a media format's writer. The media of one build share one split of the system
// into kernel, command line and initramfs scratch files (mediaSplit): the first medium opened
// writes it, the others only wait for it, and each writes its medium from it when closed.
type medium struct {
	*mediaSplit
	format string
	out    *atomicfile.File
	owner  bool // this medium writes the split
}

// mediaSplit is the kernel+initrd split the media of a build share.
type mediaSplit struct {
	kernelInitrd
	osrel  []byte // the system's etc/os-release when a regular file, for the UKI's .osrel
	usrRel []byte // its usr/lib/os-release when a regular file
	closed bool
	err    error // the split's closing error, for every medium
}

func openMedium(format string, final func(prefix string) string) func(o *outputs, _ string) (archive.Writer, error) {
	return func(o *outputs, _ string) (archive.Writer, error) {
		m := &medium{mediaSplit: o.media, format: format}
		if m.mediaSplit == nil {
			m.mediaSplit = &mediaSplit{kernelInitrd: kernelInitrd{o: o, sum: xxhash.New()}}
			m.owner = true
			o.media = m.mediaSplit
			var err error
			for _, s := range []struct {
				f    **atomicfile.File
				what string
			}{{&m.kernel, "media-kernel"}, {&m.cmdline, "media-cmdline"}, {&m.initrd, "media-initrd"}} {
				if *s.f, err = o.createScratch(s.what); err != nil {
					return nil, err
				}
			}
		}
		var err error
		if m.out, err = o.create(final(o.prefix())); err != nil {
			return nil, err
		}
		return m, nil
	}
}

// WriteEntry writes the split, when this medium owns it; the others have nothing to do until
// they are closed.
func (m *medium) WriteEntry(e archive.Entry, body io.Reader) error {
	if !m.owner {
		return nil
	}
	if e.Name == "etc/os-release" || e.Name == "usr/lib/os-release" {
		// A later image's entry replaces an earlier one, whatever its type: only the last
		// counts, and only when it is a regular file of a sensible size.
		var b []byte
		if e.Typeflag == tar.TypeReg && e.Size <= 64<<10 && body != nil {
			var err error
			if b, err = io.ReadAll(body); err != nil {
				return err
			}
			body = bytes.NewReader(b)
		}
		if e.Name == "etc/os-release" {
			m.osrel = b
		} else {
			m.usrRel = b
		}
	}
	return m.kernelInitrd.WriteEntry(e, body)
}

// seed is what a medium's GUIDs, serial numbers and disk IDs derive from: the format, a hash
// of the kernel's and initramfs' bytes (xxHash-64, hashed as they were written: several times
// faster than SHA-256, and IDs need no more) and the command line, so that the same system
// gives the same IDs and another system others.
func (m *medium) seed(format, cmdline string) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%x\x00%s", format, m.sum.Sum(nil), cmdline)
	return h.Sum(nil)
}

// readCmdline reads the command line back from its scratch file.
func (m *medium) readCmdline() ([]byte, error) {
	size, err := rewind(m.cmdline)
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	_, err = io.ReadFull(m.cmdline, b)
	return b, err
}

// serial is a FAT volume's serial number, derived from what and seed (never 0).
func serial(what string, seed []byte) uint32 {
	h := sha256.Sum256(append([]byte(what+"\x00"), seed...))
	return binary.LittleEndian.Uint32(h[:4]) | 1
}

// rewind returns a scratch file's size and seeks it to its start (each medium reads the
// shared split's files from their start).
func rewind(f *atomicfile.File) (int64, error) {
	size, err := sizeOf(f)
	if err != nil {
		return 0, err
	}
	_, err = f.Seek(0, io.SeekStart)
	return size, err
}

// Close finishes the shared split (the first medium closed does) and writes this medium.
func (m *medium) Close() error {
	if !m.closed {
		m.closed = true
		m.err = m.kernelInitrd.Close()
	}
	if m.err != nil {
		return m.err
	}
	if err := m.write(); err != nil {
		return fmt.Errorf("format %s: %w", m.format, err)
	}
	return nil
}

func (m *medium) write() error {
	switch m.format {
	case "uki":
		return m.writeUKI(m.out)
	case "raw-efi", "aws":
		sw := newSparseWriter(m.out.File)
		if err := m.writeRawEFI(sw, 0); err != nil {
			return err
		}
		return sw.finish()
	case "qcow2-efi":
		q := vdisk.NewQCOW2Writer(m.out.File)
		if err := m.writeRawEFI(q, 0); err != nil {
			return err
		}
		return m.closeQCOW2(q)
	case "vhd", "dynamic-vhd", "vmdk", "gcp":
		return m.writeVirtualDisk()
	case "raw-bios":
		sw := newSparseWriter(m.out.File)
		if err := m.writeRawBIOS(sw); err != nil {
			return err
		}
		return sw.finish()
	case "qcow2-bios":
		q := vdisk.NewQCOW2Writer(m.out.File)
		if err := m.writeRawBIOS(q); err != nil {
			return err
		}
		return m.closeQCOW2(q)
	case "iso-efi":
		return m.writeISOEFI(m.out)
	case "iso-efi-initrd":
		return m.writeISOEFIInitrd(m.out)
	case "iso-bios":
		return m.writeISOBIOS(m.out)
	case "iso-ipl":
		return m.writeISOIPL(m.out)
	}
	return fmt.Errorf("no writer for format %s", m.format)
}

// closeQCOW2 finishes the qcow2 image q wrote to the output file (with WriteAt) and leaves
// the file's offset at its end, as plain writes would.
func (m *medium) closeQCOW2(q *vdisk.QCOW2Writer) error {
	if err := q.Close(); err != nil {
		return err
	}
	_, err := m.out.Seek(0, io.SeekEnd)
	return err
}

// ukiParts are what the UKI is made of: the stub and its sections (reading the scratch files
// from their start), and the seed of the IDs of a medium around it (the system, the stub, the
// command line and os-release).
func (m *medium) ukiParts() (stub []byte, secs []uki.Section, seed []byte, err error) {
	stub = m.o.boot.files[efiStubFile]
	cmdline, err := m.readCmdline()
	if err != nil {
		return nil, nil, nil, err
	}
	kernelSize, err := rewind(m.kernel)
	if err != nil {
		return nil, nil, nil, err
	}
	initrdSize, err := rewind(m.initrd)
	if err != nil {
		return nil, nil, nil, err
	}
	osrel := m.osRelease()
	secs = uki.Sections(osrel, bytes.TrimSpace(cmdline),
		layers.ContextReader(m.o.ctx, m.kernel), kernelSize, layers.ContextReader(m.o.ctx, m.initrd), initrdSize)
	seed = m.seed("uki", fmt.Sprintf("%s\x00%x\x00%s", cmdline, sha256.Sum256(stub), osrel))
	return stub, secs, seed, nil
}

// osRelease is the UKI's .osrel, found as os-release(5) says: etc/os-release, else
// usr/lib/os-release (where Debian's etc/os-release, a symbolic link, points), else a few lines
// naming the system.
func (m *medium) osRelease() []byte {
	switch {
	case m.osrel != nil:
		return m.osrel
	case m.usrRel != nil:
		return m.usrRel
	}
	return []byte("ID=kiln\nNAME=kiln\nPRETTY_NAME=\"" + m.o.name + " (kiln)\"\n")
}

// writeUKI writes the unified kernel image to w.
func (m *medium) writeUKI(w io.Writer) error {
	stub, secs, _, err := m.ukiParts()
	if err != nil {
		return err
	}
	return uki.Write(w, m.o.arch, bytes.NewReader(stub), int64(len(stub)), secs)
}

// ukiEntry returns the UKI's FAT entry, at the path firmware starts on removable media, its
// body streamed from uki.Write in a goroutine of its own (no copy of the UKI on disk), and the
// seed of the medium's IDs. done ends that goroutine and waits for it.
func (m *medium) ukiEntry() (seed []byte, e fatimg.Entry, done func(), err error) {
	stub, secs, seed, err := m.ukiParts()
	if err != nil {
		return nil, fatimg.Entry{}, nil, err
	}
	size, err := uki.Size(m.o.arch, bytes.NewReader(stub), int64(len(stub)), secs)
	if err != nil {
		return nil, fatimg.Entry{}, nil, err
	}
	pr, pw := io.Pipe()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		pw.CloseWithError(uki.Write(pw, m.o.arch, bytes.NewReader(stub), int64(len(stub)), secs))
	}()
	done = func() {
		pr.CloseWithError(errors.New("the medium writer stopped"))
		<-finished
	}
	return seed, fatimg.Entry{Path: efiBootName[m.o.arch], Size: size, Body: pr}, done, nil
}

// writeRawEFI writes a GPT disk whose one partition, an EFI system partition (FAT32), holds
// the UKI where firmware looks on removable media (EFI/BOOT/BOOTX64.EFI on amd64).
func (m *medium) writeRawEFI(w io.Writer, diskSize int64) error {
	sum, uki, done, err := m.ukiEntry()
	if err != nil {
		return err
	}
	defer done()
	esp, err := espVolume(m.o, sum, []fatimg.Entry{uki}, uki.Size)
	if err != nil {
		return err
	}
	return writeDisk(w, sum, diskSize, []diskPart{{name: "EFI system partition", typ: gpt.TypeESP, vol: esp}})
}

// writeRawBIOS writes a GPT disk that GRUB boots from a PC BIOS: its boot code in the MBR,
// its core in partition 1 (a BIOS boot partition), and partition 2 a FAT volume with GRUB's
// configuration, the kernel and the initramfs.
func (m *medium) writeRawBIOS(w io.Writer) error {
	files := m.o.boot.files
	bootImg, core := files[grubBootFile], files[grubCoreFile]
	if len(bootImg) != 512 || len(core) < 512 || len(core) > 888*512 {
		return fmt.Errorf("the boot loaders' GRUB files are not an i386-pc boot.img (%d bytes) and core.img (%d bytes)", len(bootImg), len(core))
	}
	const coreLBA = 2048 // partition 1, at 1 MiB
	boot := slices.Clone(bootImg[:440])
	binary.LittleEndian.PutUint64(boot[0x5c:], coreLBA) // where the core starts
	boot[0x64] = 0xFF                                   // the drive: the one the BIOS booted
	boot[0x66], boot[0x67] = 0x90, 0x90                 // no floppy check: a hard disk
	core = slices.Clone(core)
	sectors := (len(core) + 511) / 512
	// diskboot.img's block list: the rest of the core, after its first sector.
	clear(core[0x1e8:0x1f4])
	binary.LittleEndian.PutUint64(core[0x1f4:], coreLBA+1)
	binary.LittleEndian.PutUint16(core[0x1fc:], uint16(sectors-1))
	binary.LittleEndian.PutUint16(core[0x1fe:], 0x0820)

	cmdline, err := m.readCmdline()
	if err != nil {
		return err
	}
	line := string(bytes.TrimSpace(cmdline))
	// Each parameter single-quoted: GRUB reads nothing in it as its own syntax ($, |, ;, ...).
	// GRUB's linux command re-quotes a parameter that holds a space or a quote for the kernel
	// in a way the kernel does not read back, so those are refused.
	if strings.ContainsAny(line, "\n\r'\"") {
		return fmt.Errorf("the kernel command line %q has a quote or a line break, which GRUB cannot pass to the kernel unchanged; raw-bios needs parameters without them", line)
	}
	var quoted []string
	for _, f := range strings.Fields(line) {
		quoted = append(quoted, "'"+f+"'")
	}
	kernelSize, err := rewind(m.kernel)
	if err != nil {
		return err
	}
	initrdSize, err := rewind(m.initrd)
	if err != nil {
		return err
	}
	cfg := "set timeout=0\nset default=0\nmenuentry kiln {\n  linux /boot/kernel " + strings.Join(quoted, " ") + "\n  initrd /boot/initrd.img\n}\n"
	seed := m.seed("raw-bios", line)
	size := espSize(kernelSize + initrdSize)
	vol, err := fatimg.New(fatimg.Options{Label: "KILNBOOT", Bits: 32, Size: size, ModTime: m.o.mtime, HiddenSectors: 2 * coreLBA,
		VolumeID: serial("kilnboot", seed)},
		[]fatimg.Entry{
			{Path: "boot/grub/grub.cfg", Size: int64(len(cfg)), Body: strings.NewReader(cfg)},
			{Path: "boot/kernel", Size: kernelSize, Body: layers.ContextReader(m.o.ctx, m.kernel)},
			{Path: "boot/initrd.img", Size: initrdSize, Body: layers.ContextReader(m.o.ctx, m.initrd)},
		})
	if err != nil {
		return err
	}
	pr, done := volumeReader(vol)
	defer done()
	return gpt.Write(w, gpt.Disk{Seed: seed, BootCode: boot, Active: true, Partitions: []gpt.Partition{
		{Name: "BIOS boot partition", Type: gpt.TypeBIOSBoot, Size: 1 << 20, Body: bytes.NewReader(core)},
		{Name: "kiln boot", Type: gpt.TypeBasicData, Size: vol.Size(), Body: pr},
	}})
}

// writeVirtualDisk writes raw-efi's disk to a sparse scratch file and converts it to the
// format's container: VHD (fixed or dynamic), VMDK, or GCP's tar.gz of disk.raw (a
// disk of whole GiB, as Compute Engine wants).
func (m *medium) writeVirtualDisk() error {
	raw, err := m.o.createScratch(m.format + "-raw")
	if err != nil {
		return err
	}
	var size int64 // the disk's natural size
	if m.format == "gcp" {
		// GCP's is a whole number of GiB.
		natural, err := m.rawEFISize()
		if err != nil {
			return err
		}
		size = (natural + 1<<30 - 1) / (1 << 30) * (1 << 30)
	}
	sw := newSparseWriter(raw.File)
	if err := m.writeRawEFI(sw, size); err != nil {
		return err
	}
	if err := sw.finish(); err != nil {
		return err
	}
	size = sw.off
	cmdline, err := m.readCmdline()
	if err != nil {
		return err
	}
	id := m.seed(m.format, string(cmdline))
	f := raw.File
	switch m.format {
	case "vhd":
		return vdisk.VHDFixed(m.out, f, size, id, m.o.mtime)
	case "dynamic-vhd":
		return vdisk.VHDDynamic(m.out, f, size, id, m.o.mtime)
	case "vmdk":
		return vdisk.VMDK(m.out, f, size, filepath.Base(m.out.Final()), id)
	case "gcp":
		return writeGCP(m.out, f, size, m.o.mtime)
	}
	return fmt.Errorf("no writer for format %s", m.format)
}

// rawEFISize is the size raw-efi's disk has for this system: the UKI's size decides the
// system partition's.
func (m *medium) rawEFISize() (int64, error) {
	kernel, err := sizeOf(m.kernel)
	if err != nil {
		return 0, err
	}
	initrd, err := sizeOf(m.initrd)
	if err != nil {
		return 0, err
	}
	// The UKI is the stub, the sections (each aligned to 64 KiB in memory and 512 bytes in
	// the file) and a little text; espSize only needs it to the MiB.
	ukiSize := int64(len(m.o.boot.files[efiStubFile])) + kernel + initrd + 1<<20
	esp := espSize(ukiSize)
	l, err := gpt.Plan(gpt.Disk{Seed: []byte("size"), Partitions: []gpt.Partition{{Type: gpt.TypeESP, Size: esp}}})
	return l.Sectors * gpt.SectorSize, err
}

func sizeOf(f *atomicfile.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// writeGCP writes Compute Engine's image format: a gzip'd tar (GNU format) holding the disk
// as disk.raw.
func writeGCP(w io.Writer, r io.ReaderAt, size int64, mtime time.Time) error {
	gz, err := archive.NewCompressWriter(w, archive.Gzip, archive.Gzip.DefaultLevel())
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: "disk.raw", Mode: 0o644, Size: size, ModTime: mtime, Format: tar.FormatGNU}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, io.NewSectionReader(r, 0, size)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// volumeID is the ISO volume ID made of the output name: upper case, A-Z, 0-9 and _.
func volumeID(name string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(name) {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	id := b.String()
	if id == "" {
		id = "KILN"
	}
	return id[:min(len(id), 32)]
}

// writeISOEFI writes an ISO whose El Torito EFI image is a FAT volume holding the UKI where
// firmware looks.
func (m *medium) writeISOEFI(w io.Writer) error {
	sum, uki, done, err := m.ukiEntry()
	if err != nil {
		return err
	}
	defer done()
	return m.writeEFIISO(w, sum, []fatimg.Entry{uki})
}

// writeISOEFIInitrd writes an ISO whose El Torito EFI image holds systemd-boot, its entry for
// the system, the kernel and the initramfs as files (LinuxKit's iso-efi-initrd).
func (m *medium) writeISOEFIInitrd(w io.Writer) error {
	cmdline, err := m.readCmdline()
	if err != nil {
		return err
	}
	line := string(bytes.TrimSpace(cmdline))
	if strings.ContainsAny(line, "\n\r") {
		return errors.New("the kernel command line has line breaks, which a boot loader entry cannot hold")
	}
	kernelSize, err := rewind(m.kernel)
	if err != nil {
		return err
	}
	initrdSize, err := rewind(m.initrd)
	if err != nil {
		return err
	}
	loader := "default kiln.conf\ntimeout 0\n"
	entry := "title " + m.o.name + "\nlinux /kernel\ninitrd /initrd.img\noptions " + line + "\n"
	boot := m.o.boot.files[systemdBootFile]
	seed := m.seed("iso-efi-initrd", line)
	return m.writeEFIISO(w, seed, []fatimg.Entry{
		{Path: efiBootName[m.o.arch], Size: int64(len(boot)), Body: bytes.NewReader(boot)},
		{Path: "loader/loader.conf", Size: int64(len(loader)), Body: strings.NewReader(loader)},
		{Path: "loader/entries/kiln.conf", Size: int64(len(entry)), Body: strings.NewReader(entry)},
		{Path: "kernel", Size: kernelSize, Body: layers.ContextReader(m.o.ctx, m.kernel)},
		{Path: "initrd.img", Size: initrdSize, Body: layers.ContextReader(m.o.ctx, m.initrd)},
	})
}

// writeEFIISO writes an ISO whose one El Torito entry, for EFI, is a FAT volume of the
// entries (also a visible file, EFI/EFIBOOT.IMG); its MBR gives that volume a partition of
// type 0xEF too, so that the file written to a USB stick boots the same way.
func (m *medium) writeEFIISO(w io.Writer, seed []byte, entries []fatimg.Entry) error {
	vol, err := fatimg.New(fatimg.Options{Label: "EFIBOOT", ModTime: m.o.mtime, VolumeID: serial("efiboot", seed)}, entries)
	if err != nil {
		return err
	}
	pr, done := volumeReader(vol)
	defer done()
	const efiImage = "EFI/EFIBOOT.IMG"
	im, err := iso.New(iso.Options{VolumeID: volumeID(m.o.name), ModTime: m.o.mtime, Seed: seed,
		Boot: []iso.Boot{{Platform: iso.PlatformEFI, Path: efiImage}},
		MBR:  &iso.MBR{EFIImage: efiImage}},
		[]iso.File{{Path: efiImage, Size: vol.Size(), Body: pr}})
	if err != nil {
		return err
	}
	_, err = im.WriteTo(w)
	return err
}

// writeISOBIOS writes an ISO that ISOLINUX boots: isolinux.bin as the El Torito BIOS entry,
// its configuration starting BOOT/KERNEL with BOOT/INITRD.IMG and the command line, and
// ISOLINUX's hybrid MBR, so that the file written to a USB stick boots from BIOS too.
func (m *medium) writeISOBIOS(w io.Writer) error {
	cmdline, err := m.readCmdline()
	if err != nil {
		return err
	}
	if bytes.ContainsAny(bytes.TrimSpace(cmdline), "\n\r") {
		return errors.New("the kernel command line has line breaks, which ISOLINUX's configuration cannot hold")
	}
	kernelSize, err := rewind(m.kernel)
	if err != nil {
		return err
	}
	initrdSize, err := rewind(m.initrd)
	if err != nil {
		return err
	}
	cfg := "DEFAULT kiln\nPROMPT 0\nTIMEOUT 0\nLABEL kiln\n  LINUX /BOOT/KERNEL\n  INITRD /BOOT/INITRD.IMG\n  APPEND " +
		string(bytes.TrimSpace(cmdline)) + "\n"
	seed := m.seed("iso-bios", string(cmdline))
	boot := m.o.boot.files
	const loader = "ISOLINUX/ISOLINUX.BIN"
	im, err := iso.New(iso.Options{VolumeID: volumeID(m.o.name), ModTime: m.o.mtime, Seed: seed,
		Boot: []iso.Boot{{Platform: iso.PlatformBIOS, Path: loader, LoadSectors: 4, InfoTable: true}},
		MBR:  &iso.MBR{Code: boot[isohybridFile], BootFile: loader}},
		[]iso.File{
			{Path: "BOOT/KERNEL", Size: kernelSize, Body: layers.ContextReader(m.o.ctx, m.kernel)},
			{Path: "BOOT/INITRD.IMG", Size: initrdSize, Body: layers.ContextReader(m.o.ctx, m.initrd)},
			{Path: loader, Data: boot[isolinuxFile]},
			{Path: "ISOLINUX/LDLINUX.C32", Data: boot[ldlinuxFile]},
			{Path: "ISOLINUX/ISOLINUX.CFG", Data: []byte(cfg)},
		})
	if err != nil {
		return err
	}
	_, err = im.WriteTo(w)
	return err
}

// writeISOIPL writes the ISO an s390x machine IPLs: one El Torito entry whose image,
// BOOT/KILN.IMG (a visible file, which s390's firmware loads whole), is the kernel with its
// command line and the initramfs (package ipl).
func (m *medium) writeISOIPL(w io.Writer) error {
	cmdline, err := m.readCmdline()
	if err != nil {
		return err
	}
	kernelSize, err := rewind(m.kernel)
	if err != nil {
		return err
	}
	initrdSize, err := rewind(m.initrd)
	if err != nil {
		return err
	}
	line := strings.Join(strings.Fields(string(cmdline)), " ")
	size := ipl.Size(kernelSize, initrdSize)
	pr, pw := io.Pipe()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_, err := ipl.Write(pw, layers.ContextReader(m.o.ctx, m.kernel), kernelSize, layers.ContextReader(m.o.ctx, m.initrd), initrdSize, line)
		pw.CloseWithError(err)
	}()
	defer func() {
		pr.CloseWithError(errors.New("the ISO writer stopped"))
		<-finished
	}()
	seed := m.seed("iso-ipl", line)
	const image = "BOOT/KILN.IMG"
	im, err := iso.New(iso.Options{VolumeID: volumeID(m.o.name), ModTime: m.o.mtime, Seed: seed,
		// s390's firmware takes platform 0-2 (not EFI's), and needs a non-zero sector count
		// although it loads the whole file.
		Boot: []iso.Boot{{Platform: iso.PlatformBIOS, Path: image, LoadSectors: uint16(min(0xFFFF, (size+511)/512))}}},
		[]iso.File{{Path: image, Size: size, Body: pr}})
	if err != nil {
		return err
	}
	_, err = im.WriteTo(w)
	return err
}

// espSize is the size of an EFI system partition for content bytes: room to spare for an
// upgrade (twice the content and 16 MiB, in whole MiB, at least 64 MiB).
func espSize(content int64) int64 {
	return max(64<<20, (2*content+16<<20+1<<20-1)/(1<<20)*(1<<20))
}

// espVolume lays out an EFI system partition: FAT32, espSize big, its serial number from seed.
func espVolume(o *outputs, seed []byte, entries []fatimg.Entry, content int64) (*fatimg.Volume, error) {
	size := espSize(content)
	return fatimg.New(fatimg.Options{Label: "EFI", Bits: 32, Size: size, ModTime: o.mtime, VolumeID: serial("esp", seed),
		HiddenSectors: 2048}, entries)
}

// diskPart is one partition of a disk image: a FAT volume.
type diskPart struct {
	name string
	typ  gpt.GUID
	vol  *fatimg.Volume
}

// writeDisk writes a GPT disk of the parts, each streamed from its volume.
func writeDisk(w io.Writer, seed []byte, size int64, parts []diskPart) error {
	d := gpt.Disk{Seed: seed, Size: size}
	for _, p := range parts {
		pr, done := volumeReader(p.vol)
		defer done()
		d.Partitions = append(d.Partitions, gpt.Partition{Name: p.name, Type: p.typ, Size: p.vol.Size(), Body: pr})
	}
	return gpt.Write(w, d)
}

// volumeReader streams a FAT volume through a pipe, written by its own goroutine. done ends
// the pipe (a writer that was not read to its end then fails) and waits for the goroutine, so
// that none outlives the medium, nor reads a scratch file after it is removed.
func volumeReader(vol *fatimg.Volume) (io.Reader, func()) {
	pr, pw := io.Pipe()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_, err := vol.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	return pr, func() {
		pr.CloseWithError(errors.New("medium written"))
		<-finished
	}
}

// sparseWriter writes to a file, seeking over blocks of zeros instead of writing them, so a
// disk image takes the space of its content; finish sets the file's size. Small writes are
// gathered into whole blocks first: one system call per 64 KiB of content, whatever sizes the
// writers above it use.
type sparseWriter struct {
	f   *os.File
	off int64  // bytes taken
	buf []byte // the block off is in, up to off (whole blocks written in one piece skip it)
}

func newSparseWriter(f *os.File) *sparseWriter {
	return &sparseWriter{f: f, buf: make([]byte, sparseBlock)}
}

const sparseBlock = 64 << 10

func (s *sparseWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		in := int(s.off % sparseBlock)
		if in == 0 && len(p) >= sparseBlock {
			if err := s.put(p[:sparseBlock], s.off); err != nil {
				return n, err
			}
			s.off += sparseBlock
			n += sparseBlock
			p = p[sparseBlock:]
			continue
		}
		k := copy(s.buf[in:], p)
		s.off += int64(k)
		n += k
		p = p[k:]
		if in+k == sparseBlock {
			if err := s.put(s.buf, s.off-sparseBlock); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// put writes b at offset at unless it is all zeros.
func (s *sparseWriter) put(b []byte, at int64) error {
	if streamio.IsZero(b) {
		return nil
	}
	_, err := s.f.WriteAt(b, at)
	return err
}

// finish writes the last part block, gives the file its full size (the zeros at its end were
// skipped) and leaves its offset at the end, as a plain write would.
func (s *sparseWriter) finish() error {
	if in := s.off % sparseBlock; in != 0 {
		if err := s.put(s.buf[:in], s.off-in); err != nil {
			return err
		}
	}
	if err := s.f.Truncate(s.off); err != nil {
		return err
	}
	_, err := s.f.Seek(s.off, io.SeekStart)
	return err
}
