package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-os/kiln/assemble"
	"github.com/kiln-os/kiln/config"
	"github.com/kiln-os/kiln/internal/archive"
	"github.com/kiln-os/kiln/internal/ocicache"
	"github.com/kiln-os/kiln/pkg/buildyml"
)

func formatHelp() string {
	var b strings.Builder
	b.WriteString("Output formats (-format, comma separated):\n")
	for _, f := range assemble.Formats() {
		fmt.Fprintf(&b, "  %-18s %s\n  %-18s   writes %s\n", f.Name, f.Help, "", f.Files)
	}
	return b.String()
}

func runBuild(ctx context.Context, args []string) error {
	const usage = "kiln build [flags] FILE.yml..."
	fs := newFlags("build", usage, "Build a system from one or more YAML files (merged in order) into output files.\n"+
		"Images come from the cache (KILN_CACHE, default ~/.kiln/cache), then their registry.\n"+
		"A lock file "+assemble.LockFile("NAME")+" beside the outputs pins every reference to a digest.\n"+
		"Temporary files that an interrupted build left in the output folder are removed first.\n\n"+formatHelp())
	formats := fs.String("format", "kernel+initrd", "output formats, comma separated")
	dir := fs.String("dir", "", "folder for the outputs (default: the current folder)")
	name := fs.String("name", "", "base name of the outputs (default: the first YAML file's name)")
	out := fs.String("o", "", "file for a single-file format's output, - for standard output")
	arch := fs.String("arch", "", "architecture to build for: amd64, arm64 or s390x (default: the host's)")
	cacheDir := fs.String("cache", "", "image cache folder (default $KILN_CACHE or ~/.kiln/cache)")
	dry := fs.Bool("dry-run", false, "print the merged YAML with every image pinned to its digest; write nothing")
	pull := fs.Bool("pull", true, "pull images missing from the cache from their registry")
	updateLock := fs.Bool("update-lock", false, "resolve every reference again instead of using the lock file")
	compression := fs.String("initrd-compression", "gzip", "compression of the initramfs: gzip (LinuxKit's), zstd (faster and smaller; the kernel needs CONFIG_RD_ZSTD, Linux 5.9+) or none")
	level := fs.Int("gzip-level", 0, "gzip level of the initramfs, 1 (fast) to 9 (small); 0 picks kiln's default")
	zstdLevel := fs.Int("zstd-level", 0, "zstd level of the initramfs, 1 (fastest) to 4 (smallest); 0 picks kiln's default")
	bootloaders := fs.String("bootloaders", envOr("KILN_BOOTLOADERS", assemble.DefaultBootloaders),
		"boot loaders image of the media formats (uki, raw-efi): a reference or @pkg:DIR (default $KILN_BOOTLOADERS, else tools/bootloaders of this kiln)")
	quiet := fs.Bool("q", false, "print only errors")
	insecure := insecureRegistryFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"no YAML file given"}
	}
	fmts, err := assemble.LookupFormats(*formats)
	if err != nil {
		return usageError{err.Error()}
	}
	comp, err := archive.ParseCompression(*compression)
	if err != nil {
		return usageError{"-initrd-compression: " + err.Error()}
	}
	epoch, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	hosts, err := insecure()
	if err != nil {
		return err
	}
	cache, err := openCache(*cacheDir, ocicache.WithInsecureRegistries(hosts...))
	if err != nil {
		return err
	}
	opt := assemble.Options{
		Files: fs.Args(), Formats: fmts, Dir: *dir, Name: *name, Output: *out, Arch: *arch,
		Cache: cache, Epoch: epoch, Compression: comp, GzipLevel: *level, ZstdLevel: *zstdLevel, Pull: *pull, UpdateLock: *updateLock,
		DryRun: *dry, Stdout: os.Stdout, Log: os.Stderr, Bootloaders: *bootloaders,
		PkgResolver: func(dir string) (string, error) { return buildyml.Ref(ctx, dir) },
	}
	if *quiet {
		opt.Log = nil
	}
	_, err = assemble.Build(ctx, opt)
	return err
}

func runValidate(_ context.Context, args []string) error {
	fs := newFlags("validate", "kiln validate FILE.yml...", "Check YAML files (schema and semantics) without resolving images.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"no YAML file given"}
	}
	res, err := config.Load(fs.Args()...)
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(os.Stderr, "warning:", w.Error())
	}
	fmt.Fprintf(os.Stderr, "%s: valid\n", strings.Join(fs.Args(), ", "))
	return nil
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH (seconds since 1970); unset means 0.
func sourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: expected a non-negative number of seconds", v)
	}
	return time.Unix(n, 0).UTC(), nil
}

func openCache(dir string, opts ...ocicache.Option) (*ocicache.Cache, error) {
	if dir == "" {
		var err error
		if dir, err = ocicache.DefaultRoot(); err != nil {
			return nil, err
		}
	}
	return ocicache.Open(dir, opts...)
}

// envOr is the environment variable's value, or def when it is unset or empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
