// Command kerneltools turns an unpacked Debian kernel package (dpkg-deb -x) into the files of
// kiln's kernel image: /kernel, /vmlinux (x86 only), /config and /kernel.tar with the modules
// and a modules.dep written in depmod's format, optionally narrowed to the modules an image
// needs. It runs inside the kernel package's build (kernel/Dockerfile) on the build machine,
// whatever the kernel's architecture.
//
//	kerneltools pack    [-modules LIST] [-epoch N] -o OUTDIR ROOT   all of the image's files
//	kerneltools modules [-modules LIST] [-epoch N] -o FILE ROOT     kernel.tar only
//	kerneltools vmlinux -o FILE BZIMAGE                             the ELF kernel inside a bzImage
//
// ROOT holds boot/vmlinuz-VERSION, boot/config-VERSION and lib/modules/VERSION (for modules,
// only the last). LIST is comma-separated module names; each is kept with everything it
// depends on; a name ending in "?" may be absent; no list keeps every module. N (default
// $SOURCE_DATE_EPOCH, else 0) is the time of every entry of kernel.tar.
//
// It does not download packages (apt does that), and it does not build kernels.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"kiln.example/kerneltools/internal/bzimage"
	"kiln.example/kerneltools/internal/kmod"
	"kiln.example/kerneltools/internal/ktar"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kerneltools:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  kerneltools pack    [-modules LIST] [-epoch N] -o OUTDIR ROOT
  kerneltools modules [-modules LIST] [-epoch N] -o FILE ROOT
  kerneltools vmlinux -o FILE BZIMAGE`

// run runs one subcommand; log receives what was written.
func run(args []string, log io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("o", "", "output (a folder for pack, a file otherwise)")
	var modules, epoch *string
	if cmd == "pack" || cmd == "modules" {
		modules = fs.String("modules", "", "comma-separated module names to keep, with their dependencies (default: all)")
		epoch = fs.String("epoch", "", "time of kernel.tar's entries, in seconds (default $SOURCE_DATE_EPOCH, else 0)")
	}
	switch cmd {
	case "pack", "modules", "vmlinux":
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s: %w\n%s", cmd, err, usage)
	}
	if *out == "" || fs.NArg() != 1 {
		return fmt.Errorf("%s: want -o and one argument\n%s", cmd, usage)
	}
	in := fs.Arg(0)
	if cmd == "vmlinux" {
		return writeVmlinux(in, *out, log)
	}
	mtime, err := parseEpoch(*epoch)
	if err != nil {
		return err
	}
	names := splitList(*modules)
	if cmd == "modules" {
		version, err := onlyVersion(in)
		if err != nil {
			return err
		}
		return writeModules(in, version, names, mtime, *out, log)
	}
	return pack(in, names, mtime, *out, log)
}

// parseEpoch returns the time kernel.tar's entries get: flag, else $SOURCE_DATE_EPOCH, else 0.
func parseEpoch(flagValue string) (time.Time, error) {
	v, what := flagValue, "-epoch"
	if v == "" {
		v, what = os.Getenv("SOURCE_DATE_EPOCH"), "SOURCE_DATE_EPOCH"
	}
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("%s=%q: want a non-negative number of seconds since 1970", what, v)
	}
	return time.Unix(n, 0).UTC(), nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// onlyVersion returns the name of the only folder in root/lib/modules.
func onlyVersion(root string) (string, error) {
	entries, err := os.ReadDir(filepath.Join(root, "lib", "modules"))
	if err != nil {
		return "", fmt.Errorf("want a root folder holding lib/modules/VERSION: %w", err)
	}
	var versions []string
	for _, e := range entries {
		if e.IsDir() {
			versions = append(versions, e.Name())
		}
	}
	if len(versions) != 1 {
		return "", fmt.Errorf("want exactly one kernel version in %s, found %q", filepath.Join(root, "lib", "modules"), versions)
	}
	return versions[0], nil
}

// writeModules writes kernel.tar for the modules of root/lib/modules/version that names asks
// for (all when empty).
func writeModules(root, version string, names []string, mtime time.Time, out string, log io.Writer) error {
	dir := filepath.Join(root, "lib", "modules", version)
	tree, err := kmod.Load(dir)
	if err != nil {
		return err
	}
	all := len(tree.Modules)
	if tree, err = tree.Select(names); err != nil {
		return fmt.Errorf("kernel %s: %w", version, err)
	}
	files, err := moduleFiles(tree, dir, "lib/modules/"+version)
	if err != nil {
		return err
	}
	if err := writeFile(out, func(w io.Writer) error { return ktar.Write(w, files, mtime) }); err != nil {
		return err
	}
	fmt.Fprintf(log, "kerneltools: %s: %d of %d modules of %s\n", out, len(tree.Modules), all, version)
	return nil
}

// moduleFiles lists what kernel.tar holds below base (lib/modules/VERSION): the tree's
// modules, its generated indexes, and the kernel's lists of built-in modules.
func moduleFiles(tree *kmod.Tree, dir, base string) ([]ktar.File, error) {
	var files []ktar.File
	for _, m := range tree.Modules {
		files = append(files, ktar.File{Name: base + "/" + m.Path, Src: filepath.Join(dir, filepath.FromSlash(m.Path))})
	}
	for _, idx := range []struct {
		name  string
		write func(io.Writer) error
	}{
		{"modules.dep", tree.WriteDep},
		{"modules.alias", tree.WriteAlias},
		{"modules.softdep", tree.WriteSoftdep},
		{"modules.order", tree.WriteOrder},
	} {
		var b strings.Builder
		if err := idx.write(&b); err != nil {
			return nil, fmt.Errorf("%s: %w", idx.name, err)
		}
		files = append(files, ktar.File{Name: base + "/" + idx.name, Data: []byte(b.String())})
	}
	for _, name := range []string{"modules.builtin", "modules.builtin.modinfo"} {
		src := filepath.Join(dir, name)
		if _, err := os.Stat(src); err == nil {
			files = append(files, ktar.File{Name: base + "/" + name, Src: src})
		}
	}
	return files, nil
}

// pack writes every file of the kernel image into outDir.
func pack(root string, names []string, mtime time.Time, outDir string, log io.Writer) error {
	images, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		return fmt.Errorf("want exactly one boot/vmlinuz-VERSION in %s (an unpacked linux-image package), found %q", root, images)
	}
	version := strings.TrimPrefix(filepath.Base(images[0]), "vmlinuz-")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	for _, c := range []struct{ src, dst string }{
		{images[0], "kernel"},
		{filepath.Join(root, "boot", "config-"+version), "config"},
	} {
		if err := copyFile(c.src, filepath.Join(outDir, c.dst)); err != nil {
			return err
		}
	}
	bz, err := os.ReadFile(images[0])
	if err != nil {
		return err
	}
	if _, _, err := bzimage.Payload(bz); err == nil { // an x86 bzImage: add the ELF kernel
		if err := writeVmlinux(images[0], filepath.Join(outDir, "vmlinux"), log); err != nil {
			return err
		}
	}
	return writeModules(root, version, names, mtime, filepath.Join(outDir, "kernel.tar"), log)
}

// writeVmlinux writes the ELF kernel inside a bzImage; the kernel must have a PVH entry, or
// QEMU could not boot it directly.
func writeVmlinux(bzImage, out string, log io.Writer) error {
	bz, err := os.ReadFile(bzImage)
	if err != nil {
		return err
	}
	vmlinux, err := bzimage.Vmlinux(bz)
	if err != nil {
		return fmt.Errorf("%s: %w", bzImage, err)
	}
	entry, ok, err := bzimage.PVHEntry(vmlinux)
	if err != nil {
		return fmt.Errorf("%s: the uncompressed kernel: %w", bzImage, err)
	}
	if !ok {
		return fmt.Errorf("%s: the kernel has no PVH entry note (built without CONFIG_PVH), so its vmlinux cannot be booted directly; boot the bzImage instead", bzImage)
	}
	if err := writeFile(out, func(w io.Writer) error { _, err := w.Write(vmlinux); return err }); err != nil {
		return err
	}
	fmt.Fprintf(log, "kerneltools: %s: %d bytes, PVH entry %#x\n", out, len(vmlinux), entry)
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeFile(dst, func(w io.Writer) error { _, err := io.Copy(w, in); return err })
}

// writeFile writes a file through f, completely or not at all.
func writeFile(name string, f func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := f(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
