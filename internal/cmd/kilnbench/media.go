package main

import (
	"debug/pe"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kiln-os/kiln/assemble"
	"github.com/kiln-os/kiln/assemble/uki/ukitest"
	"github.com/kiln-os/kiln/internal/ocicache"
)

// mediaBootloaders is the stand-in bootloaders image of the media case: an EFI stub that is a
// minimal PE file and placeholder BIOS loaders. What the case measures is the writers'
// streaming of the kernel and initramfs, which does not depend on the loaders' content.
const mediaBootloaders = "kiln/bench-bootloaders:v1"

func seedBootloaders(c *ocicache.Cache) error {
	l, err := tarLayer(map[string][]byte{
		"efi/linux.efi.stub":   ukitest.Stub(pe.IMAGE_FILE_MACHINE_AMD64, false),
		"efi/systemd-boot.efi": []byte("placeholder systemd-boot"),
		"bios/isolinux.bin":    []byte(strings.Repeat("I", 4096)),
		"bios/ldlinux.c32":     []byte("placeholder ldlinux"),
		"bios/isohdpfx.bin":    []byte(strings.Repeat("\x90", 432)),
		"bios/grub/boot.img":   []byte(strings.Repeat("B", 512)),
		"bios/grub/core.img":   []byte(strings.Repeat("C", 30000)),
	})
	if err != nil {
		return err
	}
	return writeImage(c, mediaBootloaders, l)
}

// mediaFormats are the bootable media the case builds, each alone, after kernel+initrd.
var mediaFormats = []string{"uki", "raw-efi", "qcow2-efi", "iso-efi", "raw-bios", "iso-bios"}

// benchMedia builds the big case's system as each bootable medium alone, each build paired
// with a kernel+initrd build, and reports each medium's time over kernel+initrd's (the
// budget: under 20% more) and its peak RSS (flat: the writers stream).
func benchMedia(c config, t *table) error {
	cache, content, err := seedBig(c)
	if err != nil {
		return err
	}
	oc, err := ocicache.Open(cache)
	if err != nil {
		return err
	}
	if err := seedBootloaders(oc); err != nil {
		return err
	}
	yml := filepath.Join(c.dir, "media.yml")
	if err := os.WriteFile(yml, []byte(bigSystem), 0o644); err != nil {
		return err
	}
	what := fmt.Sprintf("%d MiB system as media", content>>20)
	fmt.Printf("kilnbench: %s\n", what)
	out := filepath.Join(c.dir, "out-media")
	args := func(format string) []string {
		return []string{"build", "-q", "-pull=false", "-cache", cache, "-bootloaders", mediaBootloaders, "-format", format, "-dir", out, "-name", "bench", yml}
	}
	// A warm-up: the lock file, the layers' index and unpacked copies, the page cache.
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if _, err := measure(c.kiln, args("kernel+initrd")); err != nil {
		return err
	}
	// Each medium's build is paired with a kernel+initrd build just before it, and its cost is
	// the median of the pairs' ratios: other work on the machine slows both of a pair alike.
	var bases []result
	var baseLoad string
	for _, format := range mediaFormats {
		load := loadAvg()
		if baseLoad == "" {
			baseLoad = load
		}
		var results []result
		var ratios []float64
		for range c.runs {
			b, err := measure(c.kiln, args("kernel+initrd"))
			if err != nil {
				return err
			}
			r, err := measure(c.kiln, args(format))
			if err != nil {
				return err
			}
			bases = append(bases, b)
			results = append(results, r)
			ratios = append(ratios, r.took.Seconds()/b.took.Seconds())
		}
		slices.Sort(ratios)
		label := fmt.Sprintf("%s: %s (%+.0f%% over kernel+initrd: the median of %d paired builds)", what, format, 100*(ratios[len(ratios)/2]-1), len(ratios))
		outFile, err := mediaOutput(out, format)
		if err != nil {
			return err
		}
		fi, err := os.Stat(outFile)
		if err != nil {
			return err
		}
		row := buildRow(label, results, content, fi.Size(), load)
		t.add(row)
		fmt.Println("  " + row.text())
	}
	fi, err := os.Stat(assemble.InitrdFile(filepath.Join(out, "bench")))
	if err != nil {
		return err
	}
	row := buildRow(what+": kernel+initrd (the pairs' base builds)", bases, content, fi.Size(), baseLoad)
	t.add(row)
	fmt.Println("  " + row.text())
	return nil
}

// mediaOutput is the file a format writes for the output name "bench" in dir.
func mediaOutput(dir, format string) (string, error) {
	if format == "kernel+initrd" {
		return assemble.InitrdFile(filepath.Join(dir, "bench")), nil
	}
	fs, err := assemble.LookupFormats(format)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "bench"+strings.TrimPrefix(fs[0].Files, "NAME")), nil
}
