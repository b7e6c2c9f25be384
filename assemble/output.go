package assemble

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kiln-os/kiln/internal/archive"
	"github.com/kiln-os/kiln/internal/atomicfile"
	"github.com/kiln-os/kiln/internal/layers"
)

// Output file names. Each takes the output prefix, NAME or a path ending in NAME
// ("out/minimal"), and returns the name of one file a build writes there; cmd/kiln, the
// tests and the docs use these, so the names are spelled in one place.
func KernelFile(prefix string) string    { return prefix + "-kernel" }
func InitrdFile(prefix string) string    { return prefix + "-initrd.img" }
func CmdlineFile(prefix string) string   { return prefix + "-cmdline" }
func TarFile(prefix string) string       { return prefix + ".tar" }
func InitrdTarFile(prefix string) string { return prefix + "-initrd.tar" }
func DockerFile(prefix string) string    { return prefix + "-docker.tar" }

// LockFile names the lock file beside outputs with this prefix (or beside the file given
// to -o, whose name is then the prefix).
func LockFile(prefix string) string { return prefix + ".lock.yml" }

// Format is one kind of output. Each consumes the system stream (see tree) and writes its
// files through outputs, which makes them appear atomically.
type Format struct {
	Name string
	// Files lists what the format writes, with NAME standing for the output name.
	Files string
	Help  string
	// single formats write one file and accept -o (including "-" for standard output).
	single bool
	open   func(o *outputs, fileFlag string) (archive.Writer, error)
	// arches the format can boot; nil for every architecture.
	arches []string
	// boot is what the format needs from the bootloaders image.
	boot bootNeed
}

// Arches lists the architectures the format is for; nil means every one.
func (f Format) Arches() []string { return slices.Clone(f.arches) }

// Formats lists every output format, in the order help shows them.
func Formats() []Format {
	const n = "NAME"
	return []Format{
		{Name: "kernel+initrd", Files: KernelFile(n) + " " + InitrdFile(n) + " " + CmdlineFile(n),
			Help: "the kernel, a gzip (or -initrd-compression) newc cpio initramfs (microcode first, uncompressed) and the command line",
			open: openKernelInitrd},
		{Name: "tar", Files: TarFile(n), single: true,
			Help: "the whole system as one tar, kernel in boot/kernel, command line in boot/cmdline",
			open: openTar},
		{Name: "tar-kernel-initrd", Files: InitrdTarFile(n), single: true,
			Help: "a tar holding kernel, initrd.img and cmdline (for tools that take one file)",
			open: openTarKernelInitrd},
		{Name: "docker", Files: DockerFile(n), single: true,
			Help: "the root filesystem without the kernel, as a tar that `docker import` accepts",
			open: openDocker},
		{Name: "uki", Files: UKIFile(n),
			Help: "a unified kernel image: one EFI program holding the kernel, initramfs and command line (systemd's stub)",
			open: openMedium("uki", UKIFile), arches: []string{"amd64", "arm64"}, boot: needEFI},
		{Name: "raw-efi", Files: RawEFIFile(n),
			Help: "a GPT disk image whose EFI system partition (FAT32) holds the system as a UKI, for UEFI firmware",
			open: openMedium("raw-efi", RawEFIFile), arches: []string{"amd64", "arm64"}, boot: needEFI},
		{Name: "qcow2-efi", Files: QCOW2EFIFile(n),
			Help: "raw-efi as a qcow2 image (QEMU, OpenStack), as small as its content",
			open: openMedium("qcow2-efi", QCOW2EFIFile), arches: []string{"amd64", "arm64"}, boot: needEFI},
		{Name: "raw-bios", Files: RawBIOSFile(n),
			Help: "a GPT disk image GRUB boots from a PC BIOS: its core in a BIOS boot partition, the kernel, initramfs and command line on a FAT partition",
			open: openMedium("raw-bios", RawBIOSFile), arches: []string{"amd64"}, boot: needGRUB},
		{Name: "qcow2-bios", Files: QCOW2BIOSFile(n),
			Help: "raw-bios as a qcow2 image",
			open: openMedium("qcow2-bios", QCOW2BIOSFile), arches: []string{"amd64"}, boot: needGRUB},
		{Name: "vhd", Files: VHDFile(n),
			Help: "raw-efi as a fixed VHD (Azure, Hyper-V Generation 2)",
			open: openMedium("vhd", VHDFile), arches: []string{"amd64", "arm64"}, boot: needEFI},
		{Name: "dynamic-vhd", Files: DynamicVHDFile(n),
			Help: "raw-efi as a dynamic VHD: only its 2 MiB blocks that hold data",
			open: openMedium("dynamic-vhd", DynamicVHDFile), arches: []string{"amd64", "arm64"}, boot: needEFI},
		{Name: "vmdk", Files: VMDKFile(n),
			Help: "raw-efi as a monolithicSparse VMDK (VMware)",
			open: openMedium("vmdk", VMDKFile), arches: []string{"amd64", "arm64"}, boot: needEFI},
		{Name: "gcp", Files: GCPFile(n),
			Help: "raw-efi grown to a whole GiB, as disk.raw in a tar.gz: what Compute Engine imports (UEFI)",
			open: openMedium("gcp", GCPFile), arches: []string{"amd64", "arm64"}, boot: needEFI},
		{Name: "aws", Files: AWSFile(n),
			Help: "raw-efi for EC2's import-snapshot (register the image with boot mode uefi)",
			open: openMedium("aws", AWSFile), arches: []string{"amd64", "arm64"}, boot: needEFI},
		{Name: "iso-efi", Files: ISOEFIFile(n),
			Help: "an ISO (CD, or a USB stick: it has an MBR too) whose El Torito EFI image holds the system as a UKI",
			open: openMedium("iso-efi", ISOEFIFile), arches: []string{"amd64", "arm64"}, boot: needEFI},
		{Name: "iso-efi-initrd", Files: ISOEFIInitrdFile(n),
			Help: "an ISO whose El Torito EFI image holds systemd-boot, the kernel and the initramfs as files, and a boot entry with the command line",
			open: openMedium("iso-efi-initrd", ISOEFIInitrdFile), arches: []string{"amd64", "arm64"}, boot: needSystemdBoot},
		{Name: "iso-bios", Files: ISOBIOSFile(n),
			Help: "an ISO (CD, or a hybrid USB stick) that ISOLINUX boots from BIOS: the kernel, initramfs and command line",
			open: openMedium("iso-bios", ISOBIOSFile), arches: []string{"amd64"}, boot: needBIOS},
		{Name: "iso-ipl", Files: ISOIPLFile(n),
			Help: "an ISO an s390x machine IPLs: the kernel image with the initramfs and command line in it (s390-tools' mk-s390image layout) as its El Torito entry",
			open: openMedium("iso-ipl", ISOIPLFile), arches: []string{"s390x"}},
	}
}

// LookupFormats parses a -format value ("a,b"), rejecting unknown and repeated names.
func LookupFormats(list string) ([]Format, error) {
	all := Formats()
	var out []Format
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(all, func(f Format) bool { return f.Name == name })
		if i < 0 {
			var names []string
			for _, f := range all {
				names = append(names, f.Name)
			}
			return nil, fmt.Errorf("unknown output format %q; expected one of %s", name, strings.Join(names, ", "))
		}
		if slices.ContainsFunc(out, func(f Format) bool { return f.Name == name }) {
			return nil, fmt.Errorf("output format %q given twice", name)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// Boot files inside the system stream. The kernel+initrd formats take them out of the initrd.
const (
	bootKernel  = "boot/kernel"
	bootCmdline = "boot/cmdline"
	bootUcode   = "boot/ucode.cpio"
)

// outputs creates the files of one build. Each file is written under a locked temporary
// name in its final folder (internal/atomicfile) and renamed into place only when every format
// has finished, so a failed or interrupted build leaves the previous outputs untouched and
// nothing half-written; a temporary file a killed build left is removed by the next build.
type outputs struct {
	ctx       context.Context
	dir, name string
	// scratchDir holds the scratch files of tar-kernel-initrd: the folder of the lock file,
	// which every build cleans of stale temporary files.
	scratchDir string
	mtime      time.Time
	arch       string     // the system's architecture
	boot       *bootFiles // the boot loader files media formats use
	// compression and level of the initramfs (checkCompression made them valid).
	compression archive.Compression
	level       int
	stdout      io.Writer
	media       *mediaSplit        // the kernel+initrd split the media formats share
	pending     []*atomicfile.File // become final on commit
	scratch     []*atomicfile.File // removed either way
}

// create opens a temporary file that becomes final on commit.
func (o *outputs) create(final string) (*atomicfile.File, error) {
	f, err := atomicfile.Create(final, 0o644)
	if err != nil {
		return nil, err
	}
	o.pending = append(o.pending, f)
	return f, nil
}

// createScratch opens a temporary file that is removed on commit and on abort.
func (o *outputs) createScratch(what string) (*atomicfile.File, error) {
	f, err := atomicfile.Create(filepath.Join(o.scratchDir, o.name+"-"+what), 0o600)
	if err != nil {
		return nil, err
	}
	o.scratch = append(o.scratch, f)
	return f, nil
}

// prefix is the output folder joined with the output name.
func (o *outputs) prefix() string { return filepath.Join(o.dir, o.name) }

// commit renames every file into place, in the order they were created. On error the
// caller aborts, which removes what was not renamed yet.
func (o *outputs) commit() ([]string, error) {
	for _, f := range o.scratch {
		f.Abort()
	}
	o.scratch = nil
	var done []string
	for len(o.pending) > 0 {
		f := o.pending[0]
		o.pending = o.pending[1:]
		if err := f.Commit(); err != nil {
			return done, err
		}
		done = append(done, f.Final())
	}
	return done, nil
}

// abort removes every temporary file. It may be called more than once.
func (o *outputs) abort() {
	for _, f := range append(o.pending, o.scratch...) {
		f.Abort()
	}
	o.pending, o.scratch = nil, nil
}

// singleFile opens the one file of a single-file format: -o if given ("-" is stdout).
func (o *outputs) singleFile(final, fileFlag string) (io.Writer, error) {
	switch fileFlag {
	case "":
		return o.create(final)
	case "-":
		if o.stdout == nil {
			return nil, errors.New("-o - needs standard output")
		}
		return o.stdout, nil
	default:
		return o.create(fileFlag)
	}
}

func openTar(o *outputs, fileFlag string) (archive.Writer, error) {
	f, err := o.singleFile(TarFile(o.prefix()), fileFlag)
	if err != nil {
		return nil, err
	}
	return archive.NewTarWriter(f, archive.WithModTime(o.mtime)), nil
}

func openDocker(o *outputs, fileFlag string) (archive.Writer, error) {
	f, err := o.singleFile(DockerFile(o.prefix()), fileFlag)
	if err != nil {
		return nil, err
	}
	return skipBoot{archive.NewTarWriter(f, archive.WithModTime(o.mtime))}, nil
}

// skipBoot drops the kernel, command line and microcode from a stream.
type skipBoot struct{ archive.Writer }

func (s skipBoot) WriteEntry(e archive.Entry, body io.Reader) error {
	switch e.Name {
	case bootKernel, bootCmdline, bootUcode:
		return nil
	}
	return s.Writer.WriteEntry(e, body)
}

// kernelInitrd splits the system stream into the kernel, the command line and the
// initramfs: an optional uncompressed microcode cpio followed by the newc cpio of everything
// else, compressed as one gzip member or zstd frame (or not at all).
type kernelInitrd struct {
	o                       *outputs
	kernel, cmdline, initrd *atomicfile.File
	gz                      io.WriteCloser
	cpio                    archive.Writer
	sawKernel               bool
	// bootDir holds the boot directory's entry until something other than the kernel's
	// files goes into it: an initramfs needs no empty /boot.
	bootDir *archive.Entry
	// sum, when set (media), hashes the kernel's and the initramfs' bytes as they are
	// written: the content the media's GUIDs and serial numbers derive from (medium.seed).
	sum hash.Hash
}

// kernelOut and initrdOut are where the kernel's and the initramfs' bytes go: their files, and
// sum when it is set.
func (k *kernelInitrd) kernelOut() io.Writer { return k.tee(k.kernel) }
func (k *kernelInitrd) initrdOut() io.Writer { return k.tee(k.initrd) }

func (k *kernelInitrd) tee(f *atomicfile.File) io.Writer {
	if k.sum == nil {
		return f
	}
	return io.MultiWriter(f, k.sum)
}

func openKernelInitrd(o *outputs, _ string) (archive.Writer, error) {
	k := &kernelInitrd{o: o}
	var err error
	p := o.prefix()
	if k.kernel, err = o.create(KernelFile(p)); err != nil {
		return nil, err
	}
	if k.cmdline, err = o.create(CmdlineFile(p)); err != nil {
		return nil, err
	}
	if k.initrd, err = o.create(InitrdFile(p)); err != nil {
		return nil, err
	}
	return k, nil
}

// copyBody copies a regular file's body; a nil body is an empty file (the fan-out and the
// writers pass nil for zero-length files).
func copyBody(w io.Writer, body io.Reader) error {
	if body == nil {
		return nil
	}
	_, err := io.Copy(w, body)
	return err
}

func (k *kernelInitrd) WriteEntry(e archive.Entry, body io.Reader) error {
	switch e.Name {
	case bootKernel:
		k.sawKernel = true
		return copyBody(k.kernelOut(), body)
	case bootCmdline:
		// An empty command line is legitimate (the kernel uses its built-in one); the file
		// is then written empty, as LinuxKit does.
		return copyBody(k.cmdline, body)
	case bootUcode:
		if k.cpio != nil {
			return errors.New("microcode arrived after the initramfs started; it must come first")
		}
		return copyBody(k.initrdOut(), body)
	case "boot":
		if e.Typeflag == tar.TypeDir && k.bootDir == nil {
			e := copyEntry(e)
			k.bootDir = &e
			return nil
		}
	}
	if k.bootDir != nil && strings.HasPrefix(e.Name, "boot/") {
		d := *k.bootDir
		k.bootDir = nil
		if err := k.toCpio(d, nil); err != nil {
			return err
		}
	}
	return k.toCpio(e, body)
}

func (k *kernelInitrd) toCpio(e archive.Entry, body io.Reader) error {
	if k.cpio == nil {
		gz, err := archive.NewCompressWriter(k.initrdOut(), k.o.compression, k.o.level)
		if err != nil {
			return err
		}
		k.gz = gz
		k.cpio = archive.NewCpioWriter(gz, archive.WithModTime(k.o.mtime))
	}
	return k.cpio.WriteEntry(e, body)
}

func (k *kernelInitrd) Close() error {
	if !k.sawKernel {
		return errors.New("format kernel+initrd needs a kernel: add a kernel section with an image")
	}
	if k.cpio == nil { // an empty system still gets a valid initramfs, holding only /boot
		if err := k.toCpio(archive.Entry{Header: &tar.Header{Typeflag: tar.TypeDir, Name: "boot", Mode: 0o755}}, nil); err != nil {
			return err
		}
	}
	if err := k.cpio.Close(); err != nil {
		return err
	}
	return k.gz.Close()
}

// tarKernelInitrd writes kernel+initrd to scratch files, then wraps them in one tar.
type tarKernelInitrd struct {
	kernelInitrd
	out io.Writer
}

func openTarKernelInitrd(o *outputs, fileFlag string) (archive.Writer, error) {
	out, err := o.singleFile(InitrdTarFile(o.prefix()), fileFlag)
	if err != nil {
		return nil, err
	}
	t := &tarKernelInitrd{kernelInitrd: kernelInitrd{o: o}, out: out}
	for _, s := range []struct {
		f    **atomicfile.File
		what string
	}{{&t.kernel, "kernel"}, {&t.cmdline, "cmdline"}, {&t.initrd, "initrd"}} {
		if *s.f, err = o.createScratch(s.what); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *tarKernelInitrd) Close() error {
	if err := t.kernelInitrd.Close(); err != nil {
		return err
	}
	tw := archive.NewTarWriter(t.out, archive.WithModTime(t.o.mtime))
	for _, m := range []struct {
		name string
		f    *atomicfile.File
	}{{"kernel", t.kernel}, {"initrd.img", t.initrd}, {"cmdline", t.cmdline}} {
		size, err := m.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		if _, err := m.f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: m.name, Mode: 0o644, Size: size}
		if err := tw.WriteEntry(archive.Entry{Header: hdr}, layers.ContextReader(t.o.ctx, m.f)); err != nil {
			return fmt.Errorf("writing %s into the tar: %w", m.name, err)
		}
	}
	return tw.Close()
}

// checkCompression checks the initramfs compression and its level, replacing zero values
// with the defaults.
func checkCompression(opt *Options) error {
	c, err := archive.ParseCompression(string(opt.Compression))
	if err != nil {
		return err
	}
	opt.Compression = c
	level := &opt.GzipLevel
	switch {
	case c == archive.Gzip && opt.ZstdLevel != 0:
		return fmt.Errorf("a zstd level (%d) was given with compression gzip", opt.ZstdLevel)
	case c == archive.Zstd && opt.GzipLevel != 0:
		return fmt.Errorf("a gzip level (%d) was given with compression zstd", opt.GzipLevel)
	case c == archive.None && (opt.GzipLevel != 0 || opt.ZstdLevel != 0):
		return errors.New("a compression level was given with compression none")
	case c == archive.None:
		return nil
	case c == archive.Zstd:
		level = &opt.ZstdLevel
	}
	if *level == 0 {
		*level = c.DefaultLevel()
	}
	if lo, hi := c.Levels(); *level < lo || *level > hi {
		return fmt.Errorf("%s level %d: expected %d (fastest) to %d (smallest)", c, *level, lo, hi)
	}
	return nil
}

// initrdLevel is the level of the initramfs compression in use (0 for none).
func (opt *Options) initrdLevel() int {
	switch opt.Compression {
	case archive.Gzip:
		return opt.GzipLevel
	case archive.Zstd:
		return opt.ZstdLevel
	}
	return 0
}
