package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kiln-os/kiln/assemble"
	"github.com/kiln-os/kiln/internal/ocicache"
)

// seedOnce fills a cache with the kernel image and what fill writes, once, and returns the
// bytes of file content fill reported: a finished seed leaves a marker file holding that
// number, and a cache without one is seeded again from scratch.
func seedOnce(cacheDir string, fill func(c *ocicache.Cache, scratch string) (int64, error)) (int64, error) {
	marker := filepath.Join(cacheDir, ".kilnbench-seeded-v2") // v2: configs with DiffIDs
	if b, err := os.ReadFile(marker); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return n, nil
		}
	}
	if err := os.RemoveAll(cacheDir); err != nil {
		return 0, err
	}
	c, err := ocicache.Open(cacheDir)
	if err != nil {
		return 0, err
	}
	fmt.Printf("kilnbench: seeding %s (once)\n", cacheDir)
	scratch, err := os.MkdirTemp(filepath.Dir(cacheDir), "seed-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(scratch)
	if err := seedKernel(c); err != nil {
		return 0, err
	}
	if err := seedInit(c); err != nil {
		return 0, err
	}
	n, err := fill(c, scratch)
	if err != nil {
		return 0, err
	}
	return n, os.WriteFile(marker, []byte(strconv.FormatInt(n, 10)+"\n"), 0o644)
}

// seedKernel writes kiln/bench-kernel:v1, whose kernel is a placeholder file: the benchmark
// measures the streaming of content, not a bootable system.
func seedKernel(c *ocicache.Cache) error {
	modules, err := tarBytes(map[string][]byte{"lib/modules/bench/modules.dep": nil})
	if err != nil {
		return err
	}
	kernel, err := tarLayer(map[string][]byte{
		"kernel":     bytes.Repeat([]byte("placeholder kernel for the benchmark\n"), 1<<14),
		"kernel.tar": modules,
	})
	if err != nil {
		return err
	}
	return writeImage(c, "kiln/bench-kernel:v1", kernel)
}

// seedInit writes kiln/bench-init:v1, a placeholder PID 1 that declares what kiln's init
// does (assemble.InitSharedRootfsLabel), so systems of several containers from one image are
// laid out as with kiln's init: one copy of the image.
func seedInit(c *ocicache.Cache) error {
	l, err := tarLayer(map[string][]byte{"init": []byte("placeholder init for the benchmark\n")})
	if err != nil {
		return err
	}
	return writeImageLabels(c, "kiln/bench-init:v1", map[string]string{assemble.InitSharedRootfsLabel: "true"}, l)
}

func writeImage(c *ocicache.Cache, ref string, layers ...v1.Layer) error {
	return writeImageLabels(c, ref, nil, layers...)
}

func writeImageLabels(c *ocicache.Cache, ref string, labels map[string]string, layers ...v1.Layer) error {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return err
	}
	// The config keeps the RootFS that AppendLayers computed: every image has its DiffIDs.
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{Entrypoint: []string{"/bin/sh"}, Labels: labels}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return err
	}
	_, err = c.WriteImage(ref, img)
	return err
}

// layerFiles describes one generated layer: count files (or until size bytes), each of
// minSize << rng.IntN(shifts) bytes, 64 to a directory.
type layerFiles struct {
	seed            uint64
	size            int64
	count           int
	minSize, shifts int
}

// fileLayer writes a layer tar under scratch and returns it as a gzip layer, with the bytes
// of file content it holds.
func fileLayer(scratch string, spec layerFiles) (v1.Layer, int64, error) {
	path := filepath.Join(scratch, fmt.Sprintf("layer-%d.tar", spec.seed))
	n, err := writeLayer(path, spec)
	if err != nil {
		return nil, 0, err
	}
	l, err := tarball.LayerFromFile(path)
	return l, n, err
}

// writeLayer writes an uncompressed layer tar: directories of files whose text mixed with
// random bytes compresses about 2:1, as binaries do.
func writeLayer(path string, spec layerFiles) (written int64, err error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	tw := tar.NewWriter(f)
	rng := rand.New(rand.NewPCG(spec.seed, 42))
	words := strings.Fields("kiln builds lean immutable bootable linux systems from yaml every part is an oci image " +
		"0x7f45 ELF text data bss init services onboot containerd runc kernel modules firmware lib usr bin")
	for i := 0; (spec.size > 0 && written < spec.size) || i < spec.count; i++ {
		dir := fmt.Sprintf("data/l%d/d%04d", spec.seed, i/64)
		if i%64 == 0 {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}); err != nil {
				return 0, err
			}
		}
		fsize := int64(spec.minSize) << rng.IntN(spec.shifts)
		if spec.size > 0 && written+fsize > spec.size {
			fsize = spec.size - written
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%s/f%06d", dir, i), Mode: 0o644, Size: fsize}); err != nil {
			return 0, err
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
			return 0, err
		}
		written += fsize
	}
	return written, tw.Close()
}

// tarBytes writes an in-memory tar.
func tarBytes(files map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range sortedNames(files) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(files[name]))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(files[name]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func tarLayer(files map[string][]byte) (v1.Layer, error) {
	data, err := tarBytes(files)
	if err != nil {
		return nil, err
	}
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
