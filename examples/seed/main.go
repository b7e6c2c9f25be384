// Command seed fills a kiln image cache with the images of the demo system
// (examples/demo.yml), made on this machine from what it can reach: our own Go program
// (examples/hello) and Debian's kernel package. It stands in for `kiln pkg build` until real
// kiln packages exist; it is not a general image builder.
//
//	go run ./examples/seed -cache DIR [-arch amd64] [-kernel=false] [-all-modules]
//
// It writes, for linux/ARCH:
//
//	kiln/demo-hello:v1          /bin/hello, entrypoint /bin/hello, an org.mobyproject.config label
//	kiln/demo-init:v1           /init (the same program, which acts as PID 1)
//	kiln/demo-kernel:VERSION    /kernel, /kernel.tar (modules), /config from linux-image-VERSION
//	kiln/demo-kernel:bookworm   the same kernel image, under a name that outlives Debian updates
//
// The output is deterministic: sorted tar entries owned by 0:0, every time set to
// SOURCE_DATE_EPOCH (0 when unset), a reproducible Go build and gzip at a fixed level, so two
// runs on machines with the same Go toolchain and the same Debian kernel give the same digests.
// An image already in the cache with the same digest is left alone. Each run holds the images
// of one architecture: seeding another architecture retags the names.
//
// Downloaded .deb files are kept in -debs (default $XDG_CACHE_HOME/kiln-demo/debs, else
// ~/.cache/kiln-demo/debs) and checked against apt's sha256, so re-runs do not download again.
package main

import (
	"archive/tar"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-os/kiln/internal/ocicache"
)

// The references the demo uses; examples/demo.yml names the same ones.
const (
	helloRef        = "kiln/demo-hello:v1"
	initRef         = "kiln/demo-init:v1"
	kernelRepo      = "kiln/demo-kernel"
	kernelAliasTag  = "bookworm"
	mobyConfigLabel = "org.mobyproject.config"
	// helloLabel is the runtime defaults the hello image carries in its label; the demo YAML
	// adds to them, which shows the label's place in the precedence.
	helloLabel = `{"capabilities":["CAP_SYS_BOOT"],"readonly":true}`
)

// options is everything one seed run needs.
type options struct {
	cache         string
	arch          string
	helloDir      string // the examples/hello package folder
	debDir        string
	kernel        bool
	kernelVersion string // "" asks apt which version linux-image-ARCH depends on
	allModules    bool
	epoch         time.Time
	log           io.Writer
}

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	o := options{log: os.Stderr}
	fs.StringVar(&o.cache, "cache", os.Getenv("KILN_CACHE"), "image cache folder (default $KILN_CACHE)")
	fs.StringVar(&o.arch, "arch", "amd64", "architecture of the images: amd64, arm64 or s390x")
	fs.StringVar(&o.helloDir, "hello", "examples/hello", "folder of the hello program's Go package")
	fs.StringVar(&o.debDir, "debs", "", "folder that keeps downloaded .deb files (default $XDG_CACHE_HOME/kiln-demo/debs)")
	fs.BoolVar(&o.kernel, "kernel", true, "also make the kernel image from Debian's package (needs apt-get and dpkg-deb)")
	fs.StringVar(&o.kernelVersion, "kernel-version", "", "kernel ABI to use, such as 6.1.0-48-amd64 (default: what linux-image-ARCH depends on)")
	fs.BoolVar(&o.allModules, "all-modules", false, "put every module in kernel.tar (about 390 MB) instead of the demo set (about 2 MB)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.cache == "" {
		return errors.New("no cache folder: pass -cache DIR or set KILN_CACHE")
	}
	switch o.arch {
	case "amd64", "arm64", "s390x":
	default:
		return fmt.Errorf("-arch %q: want amd64, arm64 or s390x", o.arch)
	}
	if o.debDir == "" {
		d, err := defaultDebDir()
		if err != nil {
			return err
		}
		o.debDir = d
	}
	var err error
	if o.epoch, err = sourceDateEpoch(); err != nil {
		return err
	}
	return seed(ctx, o)
}

// defaultDebDir is $XDG_CACHE_HOME/kiln-demo/debs, else ~/.cache/kiln-demo/debs.
func defaultDebDir() (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no folder for downloads: pass -debs DIR: %w", err)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "kiln-demo", "debs"), nil
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH (seconds since 1970); unset means 0.
func sourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want a non-negative number of seconds", v)
	}
	return time.Unix(n, 0).UTC(), nil
}

// seed makes every image and stores the ones the cache does not hold yet.
func seed(ctx context.Context, o options) error {
	c, err := ocicache.Open(o.cache)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "kiln-seed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	bin := filepath.Join(work, "hello")
	if err := buildHello(ctx, o.helloDir, o.arch, bin); err != nil {
		return err
	}
	helloLayer, err := fileLayer(filepath.Join(work, "hello-layer.tar"), []entry{
		{name: "bin", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/hello", typ: tar.TypeReg, mode: 0o755, src: bin},
	}, o.epoch)
	if err != nil {
		return err
	}
	hello, err := oneLayerImage(o.arch, o.epoch, v1.Config{
		Entrypoint: []string{"/bin/hello"},
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Labels:     map[string]string{mobyConfigLabel: helloLabel},
	}, helloLayer, "kiln demo seed: /bin/hello")
	if err != nil {
		return err
	}
	if err := store(c, o.log, hello, helloRef); err != nil {
		return err
	}

	initLayer, err := fileLayer(filepath.Join(work, "init-layer.tar"), []entry{
		{name: "init", typ: tar.TypeReg, mode: 0o755, src: bin},
	}, o.epoch)
	if err != nil {
		return err
	}
	initImg, err := oneLayerImage(o.arch, o.epoch, v1.Config{Entrypoint: []string{"/init"}}, initLayer, "kiln demo seed: /init")
	if err != nil {
		return err
	}
	if err := store(c, o.log, initImg, initRef); err != nil {
		return err
	}

	if !o.kernel {
		return nil
	}
	return seedKernel(ctx, c, work, o)
}

// seedKernel fetches and unpacks Debian's kernel package and stores the kernel image.
func seedKernel(ctx context.Context, c *ocicache.Cache, work string, o options) error {
	a := &apt{log: o.log}
	version := o.kernelVersion
	if version == "" {
		var err error
		if version, err = a.kernelABI(ctx, o.arch); err != nil {
			return err
		}
	}
	deb, info, err := a.fetchDeb(ctx, o.debDir, "linux-image-"+version, o.arch)
	if err != nil {
		return err
	}
	root := filepath.Join(work, "deb")
	if _, err := output(ctx, "", "dpkg-deb", "-x", deb, root); err != nil {
		return err
	}
	fmt.Fprintf(o.log, "seed: kernel linux-image-%s %s\n", version, info.Version)
	img, err := kernelImage(work, root, version, o.arch, info, o.allModules, o.epoch, o.log)
	if err != nil {
		return err
	}
	return store(c, o.log, img, kernelRepo+":"+version, kernelRepo+":"+kernelAliasTag)
}

// buildHello compiles the hello program reproducibly: static, no paths, no VCS stamp, no
// build ID, and the baseline instruction set whatever the environment asks for.
func buildHello(ctx context.Context, dir, arch, out string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", abs, "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid=", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch,
		"GOAMD64=v1", "GOARM64=v8.0", "GOEXPERIMENT=")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", dir, err, strings.TrimSpace(string(msg)))
	}
	return nil
}

// store names img by every ref, writing it only when the first ref does not already name
// an image with the same digest.
func store(c *ocicache.Cache, log io.Writer, img v1.Image, refs ...string) error {
	want, err := img.Digest()
	if err != nil {
		return fmt.Errorf("%s: %w", refs[0], err)
	}
	var desc v1.Descriptor
	if d, err := c.Resolve(refs[0]); err == nil && d.Digest == want {
		desc = d
		fmt.Fprintf(log, "seed: %s %s (already in the cache)\n", refs[0], want)
	} else {
		if desc, err = c.WriteImage(refs[0], img); err != nil {
			return err
		}
		fmt.Fprintf(log, "seed: %s %s\n", refs[0], desc.Digest)
	}
	for _, ref := range refs[1:] {
		if d, err := c.Resolve(ref); err == nil && d.Digest == desc.Digest {
			fmt.Fprintf(log, "seed: %s %s (already in the cache)\n", ref, desc.Digest)
			continue
		}
		if err := c.Tag(ref, desc); err != nil {
			return err
		}
		fmt.Fprintf(log, "seed: %s %s\n", ref, desc.Digest)
	}
	return nil
}
