package assemble

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kiln-os/kiln/internal/archive"
)

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
}

// Formats lists every output format, in the order help shows them.
func Formats() []Format {
	return []Format{
		{Name: "kernel+initrd", Files: "NAME-kernel NAME-initrd.img NAME-cmdline",
			Help: "the kernel, a gzip newc cpio initramfs (microcode first, uncompressed) and the command line",
			open: openKernelInitrd},
		{Name: "tar", Files: "NAME.tar", single: true,
			Help: "the whole system as one tar, kernel in boot/kernel, command line in boot/cmdline",
			open: openTar},
		{Name: "tar-kernel-initrd", Files: "NAME-initrd.tar", single: true,
			Help: "a tar holding kernel, initrd.img and cmdline (for tools that take one file)",
			open: openTarKernelInitrd},
		{Name: "docker", Files: "NAME-docker.tar", single: true,
			Help: "the root filesystem without the kernel, as a tar that `docker import` accepts",
			open: openDocker},
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

// outputs creates the files of one build. Each file is written under a temporary name in
// its final folder and renamed into place only when every format has finished, so a failed
// or interrupted build leaves the previous outputs untouched and nothing half-written.
type outputs struct {
	dir, name string
	mtime     time.Time
	level     int
	stdout    io.Writer
	pending   []pendingFile
}

type pendingFile struct {
	f     *os.File
	final string
}

// create opens a temporary file that becomes final on commit. An empty final means a
// scratch file that is removed either way.
func (o *outputs) create(final string) (*os.File, error) {
	dir := o.dir
	if final != "" {
		dir = filepath.Dir(final)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating output folder: %w", err)
	}
	f, err := os.CreateTemp(dir, ".kiln-tmp-*")
	if err != nil {
		return nil, fmt.Errorf("creating output file: %w", err)
	}
	o.pending = append(o.pending, pendingFile{f: f, final: final})
	return f, nil
}

// path returns the final name of one output file, NAME replaced.
func (o *outputs) path(pattern string) string {
	return filepath.Join(o.dir, strings.ReplaceAll(pattern, "NAME", o.name))
}

// commit syncs and renames every file into place.
func (o *outputs) commit() ([]string, error) {
	var done []string
	for _, p := range o.pending {
		if err := p.f.Sync(); err != nil {
			return nil, fmt.Errorf("writing %s: %w", p.final, err)
		}
		if err := p.f.Close(); err != nil {
			return nil, fmt.Errorf("writing %s: %w", p.final, err)
		}
	}
	for _, p := range o.pending {
		if p.final == "" {
			os.Remove(p.f.Name())
			continue
		}
		if err := os.Chmod(p.f.Name(), 0o644); err != nil {
			return nil, fmt.Errorf("writing %s: %w", p.final, err)
		}
		if err := os.Rename(p.f.Name(), p.final); err != nil {
			return nil, fmt.Errorf("writing %s: %w", p.final, err)
		}
		done = append(done, p.final)
	}
	o.pending = nil
	return done, nil
}

// abort removes every temporary file.
func (o *outputs) abort() {
	for _, p := range o.pending {
		p.f.Close()
		os.Remove(p.f.Name())
	}
	o.pending = nil
}

// singleFile opens the one file of a single-file format: -o if given ("-" is stdout).
func (o *outputs) singleFile(pattern, fileFlag string) (io.Writer, error) {
	switch fileFlag {
	case "":
		return o.create(o.path(pattern))
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
	f, err := o.singleFile("NAME.tar", fileFlag)
	if err != nil {
		return nil, err
	}
	return archive.NewTarWriter(f, archive.WithModTime(o.mtime)), nil
}

func openDocker(o *outputs, fileFlag string) (archive.Writer, error) {
	f, err := o.singleFile("NAME-docker.tar", fileFlag)
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
// initramfs: an optional uncompressed microcode cpio followed by one gzip member holding the
// newc cpio of everything else.
type kernelInitrd struct {
	o                       *outputs
	kernel, cmdline, initrd io.Writer
	gz                      io.WriteCloser
	cpio                    archive.Writer
	sawKernel               bool
	// bootDir holds the boot directory's entry until something other than the kernel's
	// files goes into it: an initramfs needs no empty /boot.
	bootDir *archive.Entry
}

func openKernelInitrd(o *outputs, _ string) (archive.Writer, error) {
	k := &kernelInitrd{o: o}
	var err error
	if k.kernel, err = o.create(o.path("NAME-kernel")); err != nil {
		return nil, err
	}
	if k.cmdline, err = o.create(o.path("NAME-cmdline")); err != nil {
		return nil, err
	}
	if k.initrd, err = o.create(o.path("NAME-initrd.img")); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *kernelInitrd) WriteEntry(e archive.Entry, body io.Reader) error {
	switch e.Name {
	case bootKernel:
		k.sawKernel = true
		_, err := io.Copy(k.kernel, body)
		return err
	case bootCmdline:
		_, err := io.Copy(k.cmdline, body)
		return err
	case bootUcode:
		if k.cpio != nil {
			return errors.New("microcode arrived after the initramfs started; it must come first")
		}
		_, err := io.Copy(k.initrd, body)
		return err
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
		gz, err := archive.NewGzipWriter(k.initrd, k.o.level)
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
	out, err := o.singleFile("NAME-initrd.tar", fileFlag)
	if err != nil {
		return nil, err
	}
	t := &tarKernelInitrd{kernelInitrd: kernelInitrd{o: o}, out: out}
	for _, w := range []*io.Writer{&t.kernel, &t.cmdline, &t.initrd} {
		f, err := o.create("")
		if err != nil {
			return nil, err
		}
		*w = f
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
		w    io.Writer
	}{{"kernel", t.kernel}, {"initrd.img", t.initrd}, {"cmdline", t.cmdline}} {
		f := m.w.(*os.File)
		size, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: m.name, Mode: 0o644, Size: size}
		if err := tw.WriteEntry(archive.Entry{Header: hdr}, f); err != nil {
			return fmt.Errorf("writing %s into the tar: %w", m.name, err)
		}
	}
	return tw.Close()
}
