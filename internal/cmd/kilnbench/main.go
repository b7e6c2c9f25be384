// Command kilnbench measures `kiln build` on a large system: an image whose layers hold 1 GiB
// of files (generated deterministically, seeded once into a cache under out/bench), built to
// kernel+initrd and to tar by a child kiln process. It reports wall time, throughput of
// uncompressed content and the child's peak RSS. `make bench` runs it.
//
// The kernel image it seeds holds a placeholder file named kernel: the benchmark measures
// the streaming of content, not a bootable system.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kiln-os/kiln/internal/ocicache"
)

func main() {
	kiln := flag.String("kiln", "bin/kiln", "the kiln binary to measure")
	dir := flag.String("dir", "out/bench", "work folder (the seeded cache is kept there)")
	size := flag.Int64("size", 1<<30, "bytes of file content in the image")
	layers := flag.Int("layers", 4, "number of layers")
	runs := flag.Int("runs", 2, "builds per format (the best is reported)")
	flag.Parse()
	if err := run(*kiln, *dir, *size, *layers, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "kilnbench:", err)
		os.Exit(1)
	}
}

func run(kiln, dir string, size int64, nLayers, runs int) error {
	cacheDir := filepath.Join(dir, fmt.Sprintf("cache-%d-%d", size, nLayers))
	if err := seed(cacheDir, size, nLayers); err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	yml := filepath.Join(dir, "bench.yml")
	const system = "kernel:\n  image: kiln/bench-kernel:v1\n  cmdline: console=ttyS0\n" +
		"services:\n  - name: big\n    image: kiln/bench-big:v1\n"
	if err := os.WriteFile(yml, []byte(system), 0o644); err != nil {
		return err
	}
	content := size
	fmt.Printf("kilnbench: one service image with %d MiB of file content in %d layers\n", size>>20, nLayers)
	for _, format := range []string{"kernel+initrd", "tar"} {
		var best time.Duration
		var rss int64
		for i := 0; i < runs; i++ {
			out := filepath.Join(dir, "out")
			os.RemoveAll(out)
			cmd := exec.Command(kiln, "build", "-q", "-pull=false", "-update-lock", "-cache", cacheDir,
				"-format", format, "-dir", out, "-name", "bench", yml)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			start := time.Now()
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("kiln build -format %s: %w", format, err)
			}
			took := time.Since(start)
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			if best == 0 || took < best {
				best = took
			}
			if r := ru.Maxrss * 1024; r > rss {
				rss = r
			}
		}
		outSize := dirSize(filepath.Join(dir, "out"))
		fmt.Printf("%-14s wall %6.2fs  throughput %6.1f MiB/s  peak RSS %5.1f MiB  output %6.1f MiB\n",
			format, best.Seconds(), float64(content)/(1<<20)/best.Seconds(), float64(rss)/(1<<20), float64(outSize)/(1<<20))
	}
	return nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// seed writes the benchmark images once; a finished seed leaves a marker file.
func seed(cacheDir string, size int64, nLayers int) error {
	marker := filepath.Join(cacheDir, ".kilnbench-seeded")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	os.RemoveAll(cacheDir)
	c, err := ocicache.Open(cacheDir)
	if err != nil {
		return err
	}
	fmt.Printf("kilnbench: seeding %s (once)\n", cacheDir)
	img := empty.Image
	per := size / int64(nLayers)
	for i := 0; i < nLayers; i++ {
		path := filepath.Join(cacheDir, fmt.Sprintf("layer%d.tar", i))
		if err := writeLayer(path, i, per); err != nil {
			return err
		}
		l, err := tarball.LayerFromFile(path)
		if err != nil {
			return err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return err
		}
	}
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: "amd64",
		Config: v1.Config{Entrypoint: []string{"/bin/sh"}}})
	if err != nil {
		return err
	}
	if _, err := c.WriteImage("kiln/bench-big:v1", img); err != nil {
		return err
	}
	kernel, err := tarLayer(map[string][]byte{
		"kernel":     bytes.Repeat([]byte("placeholder kernel for the benchmark\n"), 1<<14),
		"kernel.tar": mustTar(map[string][]byte{"lib/modules/bench/modules.dep": nil}),
	})
	if err != nil {
		return err
	}
	kimg, err := mutate.AppendLayers(empty.Image, kernel)
	if err != nil {
		return err
	}
	if kimg, err = mutate.ConfigFile(kimg, &v1.ConfigFile{OS: "linux", Architecture: "amd64"}); err != nil {
		return err
	}
	if _, err := c.WriteImage("kiln/bench-kernel:v1", kimg); err != nil {
		return err
	}
	for i := 0; i < nLayers; i++ {
		os.Remove(filepath.Join(cacheDir, fmt.Sprintf("layer%d.tar", i)))
	}
	return os.WriteFile(marker, nil, 0o644)
}

// writeLayer writes an uncompressed layer tar of about size bytes: directories of files
// from 4 KiB to 4 MiB whose text compresses about as well as binaries do (3:1).
func writeLayer(path string, n int, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	words := strings.Fields("kiln builds lean immutable bootable linux systems from yaml every part is an oci image " +
		"0x7f45 ELF text data bss init services onboot containerd runc kernel modules firmware lib usr bin")
	var written int64
	for i := 0; written < size; i++ {
		dir := fmt.Sprintf("data/l%d/d%03d", n, i/64)
		if i%64 == 0 {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}); err != nil {
				return err
			}
		}
		fsize := int64(4096) << rng.IntN(11)
		if written+fsize > size {
			fsize = size - written
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%s/f%05d", dir, i), Mode: 0o644, Size: fsize}); err != nil {
			return err
		}
		var buf bytes.Buffer
		for int64(buf.Len()) < fsize {
			if rng.IntN(4) == 0 {
				var b [8]byte
				for j := range b {
					b[j] = byte(rng.Uint32())
				}
				buf.Write(b[:])
			} else {
				buf.WriteString(words[rng.IntN(len(words))])
				buf.WriteByte(' ')
			}
		}
		if _, err := io.Copy(tw, io.LimitReader(&buf, fsize)); err != nil {
			return err
		}
		written += fsize
	}
	return tw.Close()
}

// mustTar writes an in-memory tar; writing to a bytes.Buffer cannot fail.
func mustTar(files map[string][]byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range sortedNames(files) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(files[name]))}); err != nil {
			panic(err)
		}
		if _, err := tw.Write(files[name]); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func tarLayer(files map[string][]byte) (v1.Layer, error) {
	data := mustTar(files)
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

func sortedNames(m map[string][]byte) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
