package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/platforms"

	"github.com/kiln-os/kiln/builder"
	"github.com/kiln-os/kiln/internal/ocicache"
	"github.com/kiln-os/kiln/pkg/pkgbuild"
)

type pkgCommand struct {
	name, usage, summary string
	run                  func(ctx context.Context, args []string) error
}

func pkgCommands() []pkgCommand {
	return []pkgCommand{
		{"build", "kiln pkg build [flags] DIR...", "build packages with BuildKit into the kiln cache (dependencies first; cached ones skipped)", pkgBuild},
		{"show-tag", "kiln pkg show-tag [-hash] DIR...", "print each package's image reference (its tag is the folder's git tree hash)", pkgShowTag},
		{"manifest", "kiln pkg manifest [-platforms P,...] DIR...", "push the multi-arch index of packages whose platform images were pushed as REF-ARCH", pkgManifest},
	}
}

func runPkg(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		printPkgUsage(os.Stderr)
		if len(args) == 0 {
			return usageError{"no pkg command given"}
		}
		return nil
	}
	for _, pc := range pkgCommands() {
		if pc.name == args[0] {
			return pc.run(ctx, args[1:])
		}
	}
	printPkgUsage(os.Stderr)
	return usageError{fmt.Sprintf("unknown pkg command %q", args[0])}
}

func printPkgUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: kiln pkg COMMAND [flags] DIR...\n\nA package is a folder with build.yml and a Dockerfile.\n\nCommands:")
	for _, pc := range pkgCommands() {
		fmt.Fprintf(w, "  %-9s %s\n", pc.name, pc.summary)
	}
}

func lookupPkg(name string) pkgCommand {
	for _, pc := range pkgCommands() {
		if pc.name == name {
			return pc
		}
	}
	return pkgCommand{}
}

const buildersHelp = `builder nodes by platform, "linux/arm64=tcp://host:port,..." (default $KILN_BUILDERS); ` +
	`other platforms build on the local builder`

func pkgBuild(ctx context.Context, args []string) error {
	pc := lookupPkg("build")
	fs := newFlags("pkg build", pc.usage, pc.summary+".\n\n"+
		"Each platform builds on its builder node; the local buildkitd (kiln builder) is started when needed.\n"+
		"Builds are hermetic (RUN steps have no network unless build.yml says network: true) and\n"+
		"reproducible (SOURCE_DATE_EPOCH is the package's last commit time).")
	plats := fs.String("platforms", "", "comma-separated platforms to build, e.g. linux/amd64,linux/arm64 (default: build.yml's arches, else the host's)")
	builders := fs.String("builders", os.Getenv("KILN_BUILDERS"), buildersHelp)
	force := fs.Bool("force", false, "build even when the image is in the cache")
	push := fs.Bool("push", false, "push each image and its REF-ARCH platform images to its registry (refused for a dirty tree)")
	progress := fs.String("progress", "auto", "progress output: auto, tty, plain, quiet or rawjson")
	cacheDir := fs.String("cache", "", "image cache folder (default $KILN_CACHE or ~/.kiln/cache)")
	builderRoot := fs.String("builder-root", "", "local builder state folder (default $KILN_BUILDER_ROOT or ~/.kiln/builder)")
	insecure := insecureRegistryFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"no package folder given"}
	}
	hosts, err := insecure()
	if err != nil {
		return err
	}
	cache, err := openCache(*cacheDir, ocicache.WithInsecureRegistries(hosts...))
	if err != nil {
		return err
	}
	root, err := builderRootDir(*builderRoot)
	if err != nil {
		return err
	}
	nodes, err := builder.ParseNodes(*builders, filepath.Join(root, "certs"))
	if err != nil {
		return usageError{err.Error()}
	}
	var want []string
	if *plats != "" {
		for _, p := range strings.Split(*plats, ",") {
			n, err := builder.NormalizePlatform(p)
			if err != nil {
				return usageError{"-platforms: " + err.Error()}
			}
			want = append(want, n)
		}
	}
	pool := &builder.Pool{Nodes: nodes, Root: root, Log: os.Stderr}
	defer pool.Close()
	results, err := pkgbuild.Build(ctx, fs.Args(), pkgbuild.Options{
		Cache:            cache,
		Connect:          pool.Connect,
		Platforms:        want,
		DefaultPlatforms: []string{platforms.Format(platforms.DefaultSpec())},
		Force:            *force,
		Push:             *push,
		Progress:         os.Stderr,
		ProgressMode:     *progress,
		Log:              os.Stderr,
	})
	for _, r := range results {
		fmt.Printf("%s %s\n", r.Ref, r.Digest)
	}
	return err
}

func pkgShowTag(ctx context.Context, args []string) error {
	pc := lookupPkg("show-tag")
	fs := newFlags("pkg show-tag", pc.usage, pc.summary+".\nA tree with uncommitted changes gets \"-dirty-<content hash>\"; the same content always gives the same tag.")
	hashOnly := fs.Bool("hash", false, "print only the tag, not ORG/IMAGE:TAG")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"no package folder given"}
	}
	pkgs, err := pkgbuild.Load(ctx, fs.Args(), nil)
	if err != nil {
		return err
	}
	// Print in the order given, not the build order.
	byDir := map[string]*pkgbuild.Package{}
	for _, p := range pkgs {
		byDir[p.Dir] = p
	}
	for _, d := range fs.Args() {
		abs, err := filepath.Abs(d)
		if err != nil {
			return err
		}
		p := byDir[abs]
		if *hashOnly {
			fmt.Println(p.Tag.String())
		} else {
			fmt.Println(p.Ref)
		}
	}
	return nil
}

func pkgManifest(ctx context.Context, args []string) error {
	pc := lookupPkg("manifest")
	fs := newFlags("pkg manifest", pc.usage, pc.summary+".")
	plats := fs.String("platforms", "", "platforms the index lists (default: build.yml's arches)")
	insecure := insecureRegistryFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"no package folder given"}
	}
	hosts, err := insecure()
	if err != nil {
		return err
	}
	var want []string
	if *plats != "" {
		want = strings.Split(*plats, ",")
	}
	return pkgbuild.Manifest(ctx, fs.Args(), want, os.Stderr, ocicache.InsecureRegistries(hosts...))
}
