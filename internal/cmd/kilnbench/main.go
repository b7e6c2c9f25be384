// Command kilnbench measures `kiln build` and prints every figure of docs/performance.md as
// one markdown table (and, with -doc, writes it there). `make bench` runs it. Its cases:
//
//   - big: one service image whose 4 gzip layers hold 1 GiB of generated files (4 KiB to
//     4 MiB), built once as a first build (no layer index or unpacked copy in the cache),
//     then to kernel+initrd (gzip, then zstd) and to tar;
//   - files: one image of 100,000 small files (256 B to 2 KiB), same formats;
//   - small: five services from one 2 MiB image, built to kernel+initrd from a warm cache
//     (the "small systems are instant" target: under 50 ms);
//   - media: big's system built as kernel+initrd, then as each bootable medium alone (uki,
//     raw-efi, qcow2-efi, iso-efi, raw-bios, iso-bios, with a stand-in bootloaders image):
//     each medium's time over kernel+initrd's, and its peak memory;
//   - with -pkgbench, -micro and -boot-system: internal/cmd/pkgbench, the Go micro-benchmarks
//     of internal/archive and internal/layers, and QEMU boots (internal/cmd/bootcheck) of a
//     real system built with each initramfs compression.
//
// The images are generated deterministically and seeded once into caches under -dir
// (default _out/bench). Every build is a child kiln process: the table gives the median wall
// time of the runs, the content throughput at that median, the highest peak RSS of the
// child alone, the output size and the machine's load average before the case.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-os/kiln/internal/ocicache"
)

type config struct {
	kiln, dir, doc  string
	size            int64
	layers, files   int
	runs, smallRuns int
	cases           []string
	pkgbench, micro bool
	bootSystem      string
	bootCache       string
	bootLock        string
	bootRuns        int
}

func main() {
	var c config
	flag.StringVar(&c.kiln, "kiln", "bin/kiln", "the kiln binary to measure")
	flag.StringVar(&c.dir, "dir", "_out/bench", "work folder (the seeded caches are kept there)")
	flag.StringVar(&c.doc, "doc", "", "markdown file whose table (between the kilnbench markers) is replaced with the results")
	flag.Int64Var(&c.size, "size", 1<<30, "bytes of file content in the big image")
	flag.IntVar(&c.layers, "layers", 4, "number of layers of the big image")
	flag.IntVar(&c.files, "files", 100000, "number of files in the small-files image")
	flag.IntVar(&c.runs, "runs", 3, "builds per case of the big and small-files images (the median is reported)")
	flag.IntVar(&c.smallRuns, "small-runs", 11, "builds per case of the five-container system, after one warm-up")
	cases := flag.String("cases", "big,files,small,media", "cases to run, comma separated: big, files, small, media")
	flag.BoolVar(&c.pkgbench, "pkgbench", false, "also run internal/cmd/pkgbench (go run) and report its median")
	flag.BoolVar(&c.micro, "micro", false, "also run the Go micro-benchmarks of internal/archive and internal/layers (3 counts, medians)")
	flag.StringVar(&c.bootSystem, "boot-system", "", "YAML file of a bootable system to build with each initramfs compression and boot in QEMU (internal/cmd/bootcheck)")
	flag.StringVar(&c.bootCache, "boot-cache", "", "image cache of -boot-system (read only: builds use -pull=false and -boot-lock)")
	flag.StringVar(&c.bootLock, "boot-lock", "", "lock file pinning -boot-system's images (copied beside the outputs)")
	flag.IntVar(&c.bootRuns, "boot-runs", 3, "boots per initramfs compression")
	flag.Parse()
	if err := c.check(*cases); err != nil {
		fmt.Fprintln(os.Stderr, "kilnbench:", err)
		flag.Usage()
		os.Exit(2)
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "kilnbench:", err)
		os.Exit(1)
	}
}

func (c *config) check(cases string) error {
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	for _, name := range strings.Split(cases, ",") {
		switch name = strings.TrimSpace(name); name {
		case "big", "files", "small", "media":
			c.cases = append(c.cases, name)
		case "":
		default:
			return fmt.Errorf("-cases: unknown case %q; expected big, files, small or media", name)
		}
	}
	switch {
	case c.size <= 0:
		return fmt.Errorf("-size %d: expected a positive number of bytes", c.size)
	case c.layers < 1:
		return fmt.Errorf("-layers %d: expected at least 1", c.layers)
	case c.files < 1:
		return fmt.Errorf("-files %d: expected at least 1", c.files)
	case c.runs < 1 || c.smallRuns < 1 || c.bootRuns < 1:
		return fmt.Errorf("-runs, -small-runs and -boot-runs must be at least 1")
	case c.bootSystem != "" && (c.bootCache == "" || c.bootLock == ""):
		return fmt.Errorf("-boot-system needs -boot-cache and -boot-lock")
	}
	return nil
}

func run(c config) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	t := &table{}
	for _, name := range c.cases {
		var err error
		switch name {
		case "big":
			err = benchBig(c, t)
		case "files":
			err = benchFiles(c, t)
		case "small":
			err = benchSmall(c, t)
		case "media":
			err = benchMedia(c, t)
		}
		if err != nil {
			return fmt.Errorf("case %s: %w", name, err)
		}
	}
	if c.pkgbench {
		if err := benchPkg(c, t); err != nil {
			return fmt.Errorf("pkgbench: %w", err)
		}
	}
	if c.micro {
		if err := benchMicro(t); err != nil {
			return fmt.Errorf("micro-benchmarks: %w", err)
		}
	}
	if c.bootSystem != "" {
		if err := benchBoot(c, t); err != nil {
			return fmt.Errorf("boot: %w", err)
		}
	}
	md := t.markdown()
	fmt.Print("\n" + md)
	if c.doc != "" {
		if err := replaceTable(c.doc, md); err != nil {
			return err
		}
		fmt.Printf("kilnbench: wrote the table into %s\n", c.doc)
	}
	return nil
}

const bigSystem = "kernel:\n  image: kiln/bench-kernel:v1\n  cmdline: console=ttyS0\n" +
	"services:\n  - name: big\n    image: kiln/bench-big:v1\n"

func benchBig(c config, t *table) error {
	cache, content, err := seedBig(c)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("%d MiB in %d layers (files of 4 KiB-4 MiB)", content>>20, c.layers)
	return buildCases(c, t, cache, "big", bigSystem, what, content, c.runs, false)
}

// seedBig seeds the big case's cache once and returns it with its bytes of content.
func seedBig(c config) (string, int64, error) {
	cache := filepath.Join(c.dir, fmt.Sprintf("cache-%d-%d", c.size, c.layers))
	content, err := seedOnce(cache, func(oc *ocicache.Cache, scratch string) (int64, error) {
		var layers []v1.Layer
		var total int64
		for i := range c.layers {
			l, n, err := fileLayer(scratch, layerFiles{seed: uint64(i), size: c.size / int64(c.layers), minSize: 4096, shifts: 11})
			if err != nil {
				return 0, err
			}
			layers = append(layers, l)
			total += n
		}
		return total, writeImage(oc, "kiln/bench-big:v1", layers...)
	})
	if err != nil {
		return "", 0, fmt.Errorf("seeding: %w", err)
	}
	return cache, content, nil
}

func benchFiles(c config, t *table) error {
	cache := filepath.Join(c.dir, fmt.Sprintf("cache-files-%d", c.files))
	spec := layerFiles{seed: 100, count: c.files, minSize: 256, shifts: 4}
	content, err := seedOnce(cache, func(oc *ocicache.Cache, scratch string) (int64, error) {
		l, n, err := fileLayer(scratch, spec)
		if err != nil {
			return 0, err
		}
		return n, writeImage(oc, "kiln/bench-files:v1", l)
	})
	if err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	system := strings.ReplaceAll(bigSystem, "big", "files")
	count := strconv.Itoa(c.files)
	if c.files%1000 == 0 {
		count = strconv.Itoa(c.files/1000) + "k"
	}
	what := fmt.Sprintf("%s files of 256 B-2 KiB (%.0f MiB)", count, float64(content)/(1<<20))
	return buildCases(c, t, cache, "files", system, what, content, c.runs, false)
}

func benchSmall(c config, t *table) error {
	cache := filepath.Join(c.dir, "cache-small")
	content, err := seedOnce(cache, func(oc *ocicache.Cache, scratch string) (int64, error) {
		l, n, err := fileLayer(scratch, layerFiles{seed: 200, size: 2 << 20, minSize: 4096, shifts: 5})
		if err != nil {
			return 0, err
		}
		return n, writeImage(oc, "kiln/bench-small:v1", l)
	})
	if err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	system := "kernel:\n  image: kiln/bench-kernel:v1\n  cmdline: console=ttyS0\ninit:\n  - kiln/bench-init:v1\nservices:\n"
	for i := range 5 {
		system += fmt.Sprintf("  - name: svc%d\n    image: kiln/bench-small:v1\n", i)
	}
	return buildCases(c, t, cache, "small", system, "five services from one 2 MiB image, warm cache", 5*content, c.smallRuns, true)
}

// buildCases times kiln build of one system to kernel+initrd (gzip, zstd) and, unless
// small, to tar.
func buildCases(c config, t *table, cache, name, system, what string, content int64, runs int, small bool) error {
	yml := filepath.Join(c.dir, name+".yml")
	if err := os.WriteFile(yml, []byte(system), 0o644); err != nil {
		return err
	}
	fmt.Printf("kilnbench: %s\n", what)
	type variant struct{ label, format, compression string }
	variants := []variant{{"kernel+initrd, gzip", "kernel+initrd", "gzip"}, {"kernel+initrd, zstd", "kernel+initrd", "zstd"}}
	if !small {
		variants = append([]variant{{"first build (no layer index, no unpacked copy yet), kernel+initrd, zstd", "kernel+initrd", "zstd"}},
			variants...)
		variants = append(variants, variant{"tar", "tar", ""})
	}
	for i, v := range variants {
		out := filepath.Join(c.dir, "out-"+name)
		args := []string{"build", "-q", "-pull=false", "-cache", cache, "-format", v.format, "-dir", out, "-name", "bench", yml}
		if v.compression != "" {
			args = append(args[:len(args)-1], "-initrd-compression", v.compression, yml)
		}
		// The first build writes the lock file; a warm-up run also fills the page cache.
		if err := os.RemoveAll(out); err != nil {
			return err
		}
		load := loadAvg()
		n := runs
		if !small && i == 0 {
			// What a first build of these layers costs: it reads each layer once, writing its
			// header index and its unpacked copy into the cache for the builds after it.
			for _, d := range []string{"index", "unpacked"} {
				if err := os.RemoveAll(filepath.Join(cache, "kiln", d)); err != nil {
					return err
				}
			}
			n = 1
		}
		if small {
			if _, err := measure(c.kiln, args); err != nil {
				return err
			}
		}
		var results []result
		for range n {
			r, err := measure(c.kiln, args)
			if err != nil {
				return err
			}
			results = append(results, r)
		}
		outFile := filepath.Join(out, "bench.tar")
		if v.format == "kernel+initrd" {
			outFile = filepath.Join(out, "bench-initrd.img")
		}
		fi, err := os.Stat(outFile)
		if err != nil {
			return err
		}
		row := buildRow(what+": "+v.label, results, content, fi.Size(), load)
		t.add(row)
		fmt.Println("  " + row.text())
	}
	return nil
}

type result struct {
	took time.Duration
	rss  int64
}

// measure runs kiln once and returns its wall time and its own peak RSS.
//
// Go starts a child with vfork semantics (CLONE_VM): until it execs, the child runs on this
// process's memory, and the kernel carries that memory's high-water mark into the child's
// ru_maxrss at exec. So the child's rusage would report this process's peak (the seeding's)
// when that is larger than kiln's. Returning the freed heap to the kernel and resetting the
// high-water mark (/proc/self/clear_refs, "5") first leaves only this process's current RSS,
// a few MiB, as the floor.
func measure(kiln string, args []string) (result, error) {
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return result{}, fmt.Errorf("resetting this process's peak RSS: %w", err)
	}
	cmd := exec.Command(kiln, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("kiln %s: %w", strings.Join(args, " "), err)
	}
	took := time.Since(start)
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return result{}, fmt.Errorf("no resource usage for kiln on %s", runtime.GOOS)
	}
	return result{took: took, rss: ru.Maxrss * 1024}, nil
}

func buildRow(what string, results []result, content, outSize int64, load string) row {
	var took []time.Duration
	var rss int64
	for _, r := range results {
		took = append(took, r.took)
		rss = max(rss, r.rss)
	}
	med := median(took)
	return row{
		what:       what,
		median:     fmt.Sprintf("%s (%d runs)", fmtDuration(med), len(results)),
		throughput: fmt.Sprintf("%.1f MiB/s", float64(content)/(1<<20)/med.Seconds()),
		rss:        fmt.Sprintf("%.1f MiB", float64(rss)/(1<<20)),
		output:     fmtSize(outSize),
		load:       load,
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

func fmtSize(n int64) string {
	if n < 10<<20 {
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// loadAvg returns the 1, 5 and 15 minute load averages from /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// goRun runs `go run PKG ARGS...` from the module root, copying its output to stdout, and
// returns that output.
func goRun(pkg string, args ...string) (string, error) {
	var buf strings.Builder
	cmd := exec.Command("go", append([]string{"run", pkg}, args...)...)
	cmd.Stdout = io.MultiWriter(os.Stdout, &buf)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return buf.String(), fmt.Errorf("go run %s %s: %w", pkg, strings.Join(args, " "), err)
	}
	return buf.String(), nil
}
