package assemble

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-os/kiln/assemble/spec"
	"github.com/kiln-os/kiln/config"
	"github.com/kiln-os/kiln/internal/archive"
	"github.com/kiln-os/kiln/internal/atomicfile"
	"github.com/kiln-os/kiln/internal/ocicache"
)

// Options configures one build. Zero values are sensible except Files, Formats and Cache.
type Options struct {
	Files   []string // YAML files, merged in order
	Formats []Format
	Dir     string // output folder (default ".")
	Name    string // output name (default: the first file's base name without extension)
	Output  string // -o: the file of a single-file format, "-" for Stdout
	Arch    string // amd64, arm64 or s390x (default: the host's)
	Cache   *ocicache.Cache
	// Epoch is the timestamp of every entry (SOURCE_DATE_EPOCH); zero means Unix 0.
	Epoch time.Time
	// Compression of the initramfs: archive.Gzip (the default, also for ""), archive.Zstd or
	// archive.None.
	Compression archive.Compression
	// GzipLevel (1-9) or ZstdLevel (1-4) of the initramfs, for the compression in use; 0 is
	// archive's default. A level for another compression is an error.
	GzipLevel, ZstdLevel int
	// Pull allows fetching references missing from the cache from their registry.
	Pull bool
	// UpdateLock re-resolves every reference instead of using the lock file's digests.
	UpdateLock bool
	// DryRun prints the merged, resolved YAML to Stdout and writes nothing.
	DryRun bool
	// Bootloaders is the image reference (or "@pkg:DIR") of the boot loader files the media
	// formats (uki, raw-efi, ...) are made with: tools/bootloaders' image.
	Bootloaders string
	// PkgResolver expands "@pkg:DIR" references; nil leaves them as errors.
	PkgResolver func(dir string) (string, error)
	Stdout      io.Writer
	Log         io.Writer // progress and warnings (default io.Discard)
}

// Result describes a finished build.
type Result struct {
	Outputs  []string // files written, in format order
	LockFile string
	Warnings []string
}

// Build runs the whole pipeline. On error nothing new is left in the output folder. A
// cancelled ctx stops it promptly (between entries and in the middle of any file's content)
// with an error wrapping ctx's error. Temporary files that killed builds left in the output
// folder are removed first (and reported in Log).
func Build(ctx context.Context, opt Options) (res *Result, err error) {
	// A bug must not take the process down with half-written files around: the deferred
	// clean-ups below this frame run while the panic unwinds, then it becomes an error.
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("internal error (a bug in kiln; please report it): %v", r)
		}
	}()
	b, err := newBuilder(opt)
	if err != nil {
		return nil, err
	}
	return b.run(ctx)
}

type builder struct {
	opt      Options
	platform v1.Platform
	log      func(format string, args ...any)
	warnings []string
	// containerIDs are the uids LinuxKit's YAML gets when it names a container as a user.
	containerIDs spec.ContainerIDs
}

func newBuilder(opt Options) (*builder, error) {
	if len(opt.Files) == 0 {
		return nil, errors.New("no YAML file given")
	}
	if opt.Cache == nil {
		return nil, errors.New("no image cache")
	}
	if len(opt.Formats) == 0 && !opt.DryRun {
		return nil, errors.New("no output format given")
	}
	if opt.Arch == "" {
		opt.Arch = runtime.GOARCH
	}
	switch opt.Arch {
	case "amd64", "arm64", "s390x":
	default:
		return nil, fmt.Errorf("unsupported architecture %q; expected amd64, arm64 or s390x", opt.Arch)
	}
	if err := checkCompression(&opt); err != nil {
		return nil, err
	}
	if opt.Epoch.IsZero() {
		opt.Epoch = time.Unix(0, 0).UTC()
	}
	if opt.Dir == "" {
		opt.Dir = "."
	}
	if opt.Name == "" {
		base := filepath.Base(opt.Files[0])
		opt.Name = strings.TrimSuffix(base, filepath.Ext(base))
		if opt.Files[0] == "-" {
			opt.Name = "kiln"
		}
	}
	for _, f := range opt.Formats {
		if f.arches != nil && !slices.Contains(f.arches, opt.Arch) {
			return nil, fmt.Errorf("format %s boots %s only, not %s%s", f.Name, strings.Join(f.arches, " and "), opt.Arch, formatHint(opt.Arch))
		}
		if f.boot != needNothing && opt.Bootloaders == "" {
			return nil, fmt.Errorf("format %s needs the boot loaders image (tools/bootloaders); none was given", f.Name)
		}
	}
	if opt.Output != "" {
		if len(opt.Formats) != 1 || !opt.Formats[0].single {
			return nil, errors.New("-o works with exactly one single-file format (tar, tar-kernel-initrd or docker)")
		}
	}
	if opt.Log == nil {
		opt.Log = io.Discard
	}
	if opt.Stdout == nil {
		opt.Stdout = os.Stdout
	}
	b := &builder{opt: opt, platform: v1.Platform{OS: "linux", Architecture: opt.Arch}}
	b.log = func(format string, args ...any) { fmt.Fprintf(opt.Log, format+"\n", args...) }
	return b, nil
}

// formatHint suggests the formats an architecture boots from.
func formatHint(arch string) string {
	var names []string
	for _, f := range Formats() {
		if f.arches != nil && slices.Contains(f.arches, arch) {
			names = append(names, f.Name)
		}
	}
	if len(names) == 0 {
		return "; " + arch + " boots kernel+initrd (no disk or media format yet)"
	}
	return "; for " + arch + " use " + strings.Join(names, ", ")
}

// lockPath is where the lock file of this build lives: beside the outputs.
func (b *builder) lockPath() string {
	if b.opt.Output != "" && b.opt.Output != "-" {
		return LockFile(b.opt.Output)
	}
	return LockFile(filepath.Join(b.opt.Dir, b.opt.Name))
}

func (b *builder) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.warnings = append(b.warnings, msg)
	b.log("warning: %s", msg)
}

func (b *builder) run(ctx context.Context) (*Result, error) {
	sys, err := b.load()
	if err != nil {
		return nil, err
	}
	lock, err := readLock(b.lockPath(), b.opt.UpdateLock)
	if err != nil {
		return nil, err
	}
	res, err := b.resolveAll(ctx, sys, lock)
	if err != nil {
		return nil, err
	}
	if b.opt.DryRun {
		pinned := res.pin(sys)
		if err := pinned.Encode(b.opt.Stdout); err != nil {
			return nil, fmt.Errorf("printing the resolved YAML: %w", err)
		}
		return &Result{Warnings: b.warnings}, nil
	}

	boot, err := b.loadBootFiles(ctx, res, lock)
	if err != nil {
		return nil, err
	}

	b.cleanStale()
	o := &outputs{ctx: ctx, dir: b.opt.Dir, name: b.opt.Name, scratchDir: filepath.Dir(b.lockPath()),
		mtime: b.opt.Epoch, compression: b.opt.Compression, level: b.opt.initrdLevel(), stdout: b.opt.Stdout,
		arch: b.opt.Arch, boot: boot}
	defer o.abort() // nothing left after commit; everything on an error, a cancel or a panic
	var ws fanout
	for _, f := range b.opt.Formats {
		w, err := f.open(o, b.opt.Output)
		if err != nil {
			return nil, fmt.Errorf("format %s: %w", f.Name, err)
		}
		ws = append(ws, w)
	}
	if err := b.writeSystem(ctx, sys, res, ws); err != nil {
		return nil, err
	}
	if err := ws.Close(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lockFile, err := o.create(b.lockPath())
	if err != nil {
		return nil, err
	}
	if err := res.lock().write(lockFile, b.opt.Arch); err != nil {
		return nil, fmt.Errorf("writing %s: %w", b.lockPath(), err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	done, err := o.commit()
	if err != nil {
		return nil, err
	}
	for _, d := range done {
		b.log("wrote %s", d)
	}
	return &Result{Outputs: done[:len(done)-1], LockFile: done[len(done)-1], Warnings: b.warnings}, nil
}

// cleanStale removes the temporary files that killed builds left where this one writes
// (the folder of the lock file, which is the output folder or that of -o's file), and says
// how much it reclaimed. Files that live writers hold are kept. A failure only warns: the
// build itself reports anything that stops it from writing there.
func (b *builder) cleanStale() {
	dir := filepath.Dir(b.lockPath())
	removed, size, err := atomicfile.CleanStale(dir)
	if len(removed) > 0 {
		b.log("removed %d stale temporary file(s) (%d bytes) in %s, left by an interrupted build", len(removed), size, dir)
	}
	if err != nil {
		b.warn("%v", err)
	}
}

// load parses, merges, expands and validates the YAML files.
func (b *builder) load() (*config.System, error) {
	// Reading a named pipe or a device would block for ever (or never end): refuse anything
	// but regular files before the YAML is read.
	for _, f := range b.opt.Files {
		st, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f, err)
		}
		if err := checkRegular(f, st); err != nil {
			return nil, err
		}
	}
	res, err := config.Load(b.opt.Files...)
	if err != nil {
		return nil, err
	}
	for _, w := range res.Warnings {
		b.warn("%s", w.Error())
	}
	sys := res.System
	if b.opt.PkgResolver != nil {
		if err := sys.ExpandPkgs(b.opt.PkgResolver, ""); err != nil {
			return nil, err
		}
	}
	return sys, nil
}
