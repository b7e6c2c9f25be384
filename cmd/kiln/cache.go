package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-os/kiln/assemble"
	"github.com/kiln-os/kiln/internal/archive"
	"github.com/kiln-os/kiln/internal/atomicfile"
	"github.com/kiln-os/kiln/internal/layers"
	"github.com/kiln-os/kiln/internal/ocicache"
)

type cacheCommand struct {
	name, usage, summary string
	run                  func(ctx context.Context, c *ocicache.Cache, args []string) error
}

func cacheCommands() []cacheCommand {
	return []cacheCommand{
		{"ls", "kiln cache ls", "list the images in the cache", cacheLs},
		{"rm", "kiln cache rm REF...", "remove images and the blobs only they used", cacheRm},
		{"clean", "kiln cache clean [-all]", "remove unreferenced blobs and stale temporary files (-all: everything)", cacheClean},
		{"repair", "kiln cache repair", "rebuild a missing or damaged index.json from the manifests in the cache's blobs", cacheRepair},
		{"import", "kiln cache import [-name REF] FILE.tar|-\n       kiln cache import -rootfs -platform OS/ARCH[/VARIANT] -name REF [-created UNIX] ROOTFS.tar|-",
			"import an OCI layout tar (BuildKit's OCI exporter, LinuxKit, skopeo), or with -rootfs a root filesystem tar as an image", cacheImport},
		{"export", "kiln cache export [-format oci|filesystem] [-arch A] -o FILE|- REF...", "export images as an OCI layout tar, or one image's files as a tar", cacheExport},
		{"pull", "kiln cache pull [-arch A] [-insecure-registry HOST[:PORT]]... REF...", "pull images from their registry into the cache", cachePull},
		{"push", "kiln cache push [-insecure-registry HOST[:PORT]]... REF...", "push images (and multi-arch indexes) from the cache to their registry", cachePush},
	}
}

func runCache(ctx context.Context, args []string) error {
	cacheDir := ""
	// A -cache flag may come before the subcommand.
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := strings.TrimLeft(args[0], "-")
		switch {
		case a == "cache" && len(args) > 1:
			cacheDir, args = args[1], args[2:]
		case strings.HasPrefix(a, "cache="):
			cacheDir, args = strings.TrimPrefix(a, "cache="), args[1:]
		case a == "h" || a == "help":
			printCacheUsage(os.Stderr)
			return nil
		default:
			return usageError{"unknown flag " + args[0]}
		}
	}
	if len(args) == 0 {
		printCacheUsage(os.Stderr)
		return usageError{"no cache command given"}
	}
	for _, cc := range cacheCommands() {
		if cc.name != args[0] {
			continue
		}
		var opts []ocicache.Option
		if cc.name == "repair" || cc.name == "clean" {
			// The ways out of a damaged index.json; clean without -all still refuses.
			opts = append(opts, ocicache.WithoutIndexCheck())
		}
		c, err := openCache(cacheDir, opts...)
		if err != nil {
			return err
		}
		return cc.run(ctx, c, args[1:])
	}
	printCacheUsage(os.Stderr)
	return usageError{fmt.Sprintf("unknown cache command %q", args[0])}
}

func printCacheUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: kiln cache [-cache DIR] COMMAND ...\n\nThe cache is an OCI image layout (default $KILN_CACHE or ~/.kiln/cache).\n\nCommands:")
	for _, cc := range cacheCommands() {
		fmt.Fprintf(w, "  %-7s %s\n", cc.name, cc.summary)
	}
}

func lookupCache(name string) cacheCommand {
	for _, cc := range cacheCommands() {
		if cc.name == name {
			return cc
		}
	}
	return cacheCommand{}
}

func cacheLs(_ context.Context, c *ocicache.Cache, args []string) error {
	cc := lookupCache("ls")
	fs := newFlags("cache ls", cc.usage, cc.summary)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	entries, err := c.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REFERENCE\tDIGEST\tPLATFORMS")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Familiar, shortDigest(e.Digest), strings.Join(e.Platforms, ","))
	}
	return tw.Flush()
}

func cacheRm(_ context.Context, c *ocicache.Cache, args []string) error {
	cc := lookupCache("rm")
	fs := newFlags("cache rm", cc.usage, cc.summary)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"no reference given"}
	}
	return c.Remove(fs.Args()...)
}

func cacheClean(_ context.Context, c *ocicache.Cache, args []string) error {
	cc := lookupCache("clean")
	fs := newFlags("cache clean", cc.usage, cc.summary)
	all := fs.Bool("all", false, "remove every image, not only unreferenced blobs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rep, err := c.Clean(*all)
	if n := len(rep.TempFiles); n > 0 || rep.Blobs > 0 || err == nil {
		fmt.Fprintf(os.Stderr, "removed %d stale temporary file%s (%s) and %d unused blob%s (%s, and %s of their unpacked copies)\n",
			n, plural(n), humanBytes(rep.TempBytes), rep.Blobs, plural(rep.Blobs), humanBytes(rep.BlobBytes), humanBytes(rep.CopyBytes))
	}
	return err
}

func cacheRepair(_ context.Context, c *ocicache.Cache, args []string) error {
	cc := lookupCache("repair")
	fs := newFlags("cache repair", cc.usage, cc.summary+".\n\n"+
		"Every manifest or index no other one points at gets an entry, named by its\n"+
		"io.containerd.image.name or org.opencontainers.image.ref.name annotation (on the blob or on\n"+
		"an index's descriptor of it), else "+ocicache.RecoveredRepo+"@DIGEST. A damaged index.json is\n"+
		"kept as index.json.damaged. An intact index.json is left alone.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{"repair takes no arguments"}
	}
	rep, err := c.Repair()
	if err != nil {
		return err
	}
	if rep.Intact {
		fmt.Fprintf(os.Stderr, "%s is intact: nothing to repair\n", ocicache.IndexPath(c.Root()))
		return nil
	}
	if rep.SavedAs != "" {
		fmt.Fprintf(os.Stderr, "kept the damaged index as %s\n", rep.SavedAs)
	}
	for _, r := range rep.Recovered {
		how := "by its digest"
		if r.NamedBy != "" {
			how = "from " + r.NamedBy
		}
		fmt.Fprintf(os.Stderr, "recovered %s %s (%s, named %s)\n", r.Familiar, shortDigest(r.Digest), r.MediaType, how)
	}
	for _, h := range rep.Corrupt {
		fmt.Fprintf(os.Stderr, "skipped %s: its content does not match its digest\n", h)
	}
	entries := "entries"
	if len(rep.Recovered) == 1 {
		entries = "entry"
	}
	fmt.Fprintf(os.Stderr, "wrote %s with %d %s", ocicache.IndexPath(c.Root()), len(rep.Recovered), entries)
	if len(rep.Corrupt) > 0 {
		fmt.Fprintf(os.Stderr, "; %d damaged blob%s left in place (kiln cache clean removes them)", len(rep.Corrupt), plural(len(rep.Corrupt)))
	}
	fmt.Fprintln(os.Stderr)
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// humanBytes renders a size for people: 512 B, 1.5 KiB, 12.0 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// insecureRegistries is the repeatable -insecure-registry flag, which adds to
// $KILN_INSECURE_REGISTRIES.
type insecureRegistries []string

func (r *insecureRegistries) String() string { return strings.Join(*r, ",") }

func (r *insecureRegistries) Set(v string) error {
	hosts, err := ocicache.ParseInsecureRegistries(v)
	if err != nil {
		return err
	}
	*r = append(*r, hosts...)
	return nil
}

// insecureRegistryFlag adds -insecure-registry to fs. Call the returned function after
// parsing: it returns the flag's registries and those of $KILN_INSECURE_REGISTRIES.
func insecureRegistryFlag(fs *flag.FlagSet) func() ([]string, error) {
	var r insecureRegistries
	fs.Var(&r, "insecure-registry", "HOST or HOST:PORT of a registry that may be reached over plain HTTP (repeatable; adds to $"+
		ocicache.EnvInsecureRegistries+"); loopback registries always may, no other one does")
	return func() ([]string, error) {
		env, err := ocicache.ParseInsecureRegistries(os.Getenv(ocicache.EnvInsecureRegistries))
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", ocicache.EnvInsecureRegistries, err)
		}
		return append(env, r...), nil
	}
}

func cacheImport(_ context.Context, c *ocicache.Cache, args []string) error {
	cc := lookupCache("import")
	fs := newFlags("cache import", cc.usage, cc.summary)
	name := fs.String("name", "", "reference to give the image when the tar does not name it (with -rootfs: the index to add the image to, required)")
	rootfs := fs.Bool("rootfs", false, "the file is a tar of a root filesystem (uncompressed or gzip), not an OCI layout: store it as a one-layer image")
	platform := fs.String("platform", "", "with -rootfs: the image's platform, such as linux/arm64 (required)")
	created := fs.String("created", "", "with -rootfs: the image's creation time in seconds since 1970 (default $SOURCE_DATE_EPOCH, else 0)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"give exactly one tar file (or - for standard input)"}
	}
	if !*rootfs && (*platform != "" || *created != "") {
		return usageError{"-platform and -created apply only with -rootfs"}
	}
	var ropts []ocicache.RootfsOption
	var plat v1.Platform
	if *rootfs {
		if *name == "" {
			return usageError{"-rootfs needs -name REF: the image index to add the root filesystem to, such as kiln/debian-base:bookworm"}
		}
		if *platform == "" {
			return usageError{"-rootfs needs -platform OS/ARCH[/VARIANT], such as linux/arm64"}
		}
		p, err := v1.ParsePlatform(*platform)
		if err != nil || p.OS == "" || p.Architecture == "" {
			return usageError{fmt.Sprintf("-platform %q: expected OS/ARCH[/VARIANT], such as linux/arm64", *platform)}
		}
		plat = *p
		when, err := createdTime(*created)
		if err != nil {
			return err
		}
		ropts = append(ropts, ocicache.WithCreated(when))
	}
	var r io.Reader = os.Stdin
	if fs.Arg(0) != "-" {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	if *rootfs {
		d, err := c.ImportRootfs(r, *name, plat, ropts...)
		if err != nil {
			return err
		}
		fmt.Printf("%s %s\n", ocicache.Familiar(*name), d.Digest)
		return nil
	}
	var opts []ocicache.ImportOption
	if *name != "" {
		opts = append(opts, ocicache.WithName(*name))
	}
	refs, err := c.Import(r, opts...)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		fmt.Fprintln(os.Stderr, "imported", ocicache.Familiar(ref))
	}
	return nil
}

// createdTime is the -created flag (seconds since 1970) or, when empty, SOURCE_DATE_EPOCH.
func createdTime(flag string) (time.Time, error) {
	if flag == "" {
		return sourceDateEpoch()
	}
	n, err := strconv.ParseInt(flag, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, usageError{fmt.Sprintf("-created %q: expected a non-negative number of seconds since 1970", flag)}
	}
	return time.Unix(n, 0).UTC(), nil
}

func cacheExport(ctx context.Context, c *ocicache.Cache, args []string) error {
	cc := lookupCache("export")
	fs := newFlags("cache export", cc.usage, cc.summary)
	format := fs.String("format", "oci", "oci (an OCI layout tar) or filesystem (one image's files, flattened)")
	arch := fs.String("arch", "", "platform architecture for -format filesystem (default: the host's)")
	out := fs.String("o", "", "output file, - for standard output (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageError{"-o FILE is required"}
	}
	if fs.NArg() == 0 {
		return usageError{"no reference given"}
	}
	return writeAtomically(*out, func(w io.Writer) error {
		switch *format {
		case "oci":
			return c.ExportOCI(w, fs.Args()...)
		case "filesystem":
			if fs.NArg() != 1 {
				return usageError{"-format filesystem exports exactly one image"}
			}
			return exportFilesystem(ctx, c, fs.Arg(0), *arch, w)
		}
		return usageError{fmt.Sprintf("unknown export format %q; expected oci or filesystem", *format)}
	})
}

func exportFilesystem(ctx context.Context, c *ocicache.Cache, ref, arch string, w io.Writer) error {
	p := hostPlatform(arch)
	img, _, err := c.Image(ref, &p)
	if err != nil {
		return err
	}
	ls := assemble.ImageLayers(img, ocicache.Familiar(ref))
	epoch, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	tw := archive.NewTarWriter(w, archive.WithModTime(epoch))
	if _, err := layers.Flatten(ctx, ls, tw); err != nil {
		return err
	}
	return tw.Close()
}

func cachePull(ctx context.Context, c *ocicache.Cache, args []string) error {
	cc := lookupCache("pull")
	fs := newFlags("cache pull", cc.usage, cc.summary)
	arch := fs.String("arch", "", "pull only this architecture of a multi-arch image (default: all)")
	insecure := insecureRegistryFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"no reference given"}
	}
	hosts, err := insecure()
	if err != nil {
		return err
	}
	opts := []ocicache.RemoteOption{ocicache.InsecureRegistries(hosts...)}
	if *arch != "" {
		opts = append(opts, ocicache.WithPlatforms(hostPlatform(*arch)))
	}
	for _, ref := range fs.Args() {
		d, err := c.Pull(ctx, ref, opts...)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "pulled %s %s\n", ocicache.Familiar(ref), d.Digest)
	}
	return nil
}

func cachePush(ctx context.Context, c *ocicache.Cache, args []string) error {
	cc := lookupCache("push")
	fs := newFlags("cache push", cc.usage, cc.summary)
	insecure := insecureRegistryFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"no reference given"}
	}
	hosts, err := insecure()
	if err != nil {
		return err
	}
	for _, ref := range fs.Args() {
		if err := c.Push(ctx, ref, ocicache.InsecureRegistries(hosts...)); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "pushed %s\n", ocicache.Familiar(ref))
	}
	return nil
}

func hostPlatform(arch string) v1.Platform {
	if arch == "" {
		arch = goarch()
	}
	return v1.Platform{OS: "linux", Architecture: arch}
}

func shortDigest(h v1.Hash) string {
	if len(h.Hex) < 12 {
		return h.String()
	}
	return h.Algorithm + ":" + h.Hex[:12]
}

// writeAtomically writes a file completely or not at all ("-" is standard output).
func writeAtomically(path string, write func(io.Writer) error) error {
	if path == "-" {
		return write(os.Stdout)
	}
	return atomicfile.WriteFile(path, 0o644, write)
}

func goarch() string { return runtime.GOARCH }
