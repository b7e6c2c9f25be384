package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// apt runs Debian's package tools. It runs `apt-get update` at most once, and only after a
// look-up or download failed, and only as root.
type apt struct {
	log     io.Writer
	updated bool
}

// output runs a command and returns its standard output; the error carries its stderr.
func output(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// retry runs f, and when it fails runs `apt-get update` once (as root) and runs f again.
func (a *apt) retry(ctx context.Context, f func() error) error {
	err := f()
	if err == nil || a.updated || os.Geteuid() != 0 {
		return err
	}
	a.updated = true
	fmt.Fprintf(a.log, "seed: %v\nseed: running apt-get update and trying again\n", err)
	if _, uerr := output(ctx, "", "apt-get", "update"); uerr != nil {
		return errors.Join(err, uerr)
	}
	return f()
}

// aptPackage is the name apt knows a package of arch by (pkg:arch for a foreign architecture).
func aptPackage(ctx context.Context, name, arch string) (string, error) {
	host, err := output(ctx, "", "dpkg", "--print-architecture")
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(string(host)) == arch {
		return name, nil
	}
	return name + ":" + arch, nil
}

// kernelABI asks apt which kernel package linux-image-<arch> depends on and returns its
// version string, such as 6.1.0-48-amd64 (the name of its lib/modules folder).
func (a *apt) kernelABI(ctx context.Context, arch string) (string, error) {
	meta, err := aptPackage(ctx, "linux-image-"+arch, arch)
	if err != nil {
		return "", err
	}
	var abi string
	err = a.retry(ctx, func() error {
		out, err := output(ctx, "", "apt-cache", "depends", meta)
		if err != nil {
			return err
		}
		abi, err = parseDepends(out)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("finding the kernel of %s (for another architecture: dpkg --add-architecture %s && apt-get update): %w", meta, arch, err)
	}
	return abi, nil
}

// parseDepends reads `apt-cache depends linux-image-ARCH` and returns the version of the first
// linux-image-VERSION dependency.
func parseDepends(out []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		dep, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Depends: ")
		if !ok {
			continue
		}
		dep, _, _ = strings.Cut(dep, ":") // a foreign architecture's suffix
		if v, ok := strings.CutPrefix(dep, "linux-image-"); ok && v != "" && v[0] >= '0' && v[0] <= '9' {
			return v, nil
		}
	}
	return "", errors.New("no linux-image-VERSION dependency in apt-cache's answer")
}

// debInfo is what apt's lists say about the candidate version of a package.
type debInfo struct {
	Version, SHA256 string
}

// parseShow reads the first stanza of `apt-cache show --no-all-versions PKG`.
func parseShow(out []byte) (debInfo, error) {
	var d debInfo
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Version: "); ok {
			d.Version = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "SHA256: "); ok {
			d.SHA256 = strings.TrimSpace(v)
		}
	}
	if d.Version == "" || len(d.SHA256) != 64 {
		return debInfo{}, errors.New("no Version and SHA256 in apt-cache's answer")
	}
	return d, nil
}

// debFileName is the name apt-get download gives a package file.
func debFileName(name, version, arch string) string {
	return fmt.Sprintf("%s_%s_%s.deb", name, strings.ReplaceAll(version, ":", "%3a"), arch)
}

// fetchDeb returns a verified copy of package name (for arch) in dir, downloading it only
// when dir has no intact copy of apt's candidate version.
func (a *apt) fetchDeb(ctx context.Context, dir, name, arch string) (string, debInfo, error) {
	pkg, err := aptPackage(ctx, name, arch)
	if err != nil {
		return "", debInfo{}, err
	}
	var info debInfo
	err = a.retry(ctx, func() error {
		out, err := output(ctx, "", "apt-cache", "show", "--no-all-versions", pkg)
		if err != nil {
			return err
		}
		info, err = parseShow(out)
		return err
	})
	if err != nil {
		return "", debInfo{}, fmt.Errorf("looking up %s: %w", pkg, err)
	}
	file := filepath.Join(dir, debFileName(name, info.Version, arch))
	if fileSHA256(file) == info.SHA256 {
		fmt.Fprintf(a.log, "seed: using %s (already downloaded)\n", filepath.Base(file))
		return file, info, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", debInfo{}, err
	}
	tmp, err := os.MkdirTemp(dir, ".download-")
	if err != nil {
		return "", debInfo{}, err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(a.log, "seed: downloading %s=%s\n", pkg, info.Version)
	err = a.retry(ctx, func() error {
		_, err := output(ctx, tmp, "apt-get", "download", pkg+"="+info.Version)
		return err
	})
	if err != nil {
		return "", debInfo{}, err
	}
	got := filepath.Join(tmp, filepath.Base(file))
	if sum := fileSHA256(got); sum != info.SHA256 {
		return "", debInfo{}, fmt.Errorf("%s: sha256 %s, apt's lists say %s", filepath.Base(file), sum, info.SHA256)
	}
	if err := os.Rename(got, file); err != nil {
		return "", debInfo{}, err
	}
	return file, info, nil
}

// fileSHA256 returns the hex sha256 of a file, or "" when it cannot be read.
func fileSHA256(file string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// demoModule reports whether the file at rel (relative to lib/modules/VERSION) belongs in the
// demo's small module set: the modules.* indexes plus virtio, 9p and overlayfs.
func demoModule(rel string) bool {
	if !strings.Contains(rel, "/") {
		return strings.HasPrefix(rel, "modules.")
	}
	for _, p := range []string{
		"kernel/drivers/virtio/",
		"kernel/drivers/block/virtio_blk.ko",
		"kernel/drivers/net/virtio_net.ko",
		"kernel/drivers/net/net_failover.ko",
		"kernel/net/core/failover.ko",
		"kernel/fs/overlayfs/",
		"kernel/fs/9p/",
		"kernel/net/9p/",
	} {
		if rel == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(rel, p)) {
			return true
		}
	}
	return false
}

// moduleEntries lists lib/modules/VERSION under root (an unpacked kernel package) for
// kernel.tar: the files keep picks, and every folder above them. Modes are normalised (0755
// folders and executables, 0644 other files); hard links become separate copies.
func moduleEntries(root, version string, keep func(rel string) bool) ([]entry, error) {
	base := path.Join("lib/modules", version)
	hostBase := filepath.Join(root, filepath.FromSlash(base))
	dirs := map[string]bool{}
	var out []entry
	err := filepath.WalkDir(hostBase, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		r, err := filepath.Rel(hostBase, p)
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(r)
		if !keep(rel) {
			return nil
		}
		e := entry{name: path.Join(base, rel), src: p}
		switch {
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			e.typ, e.mode = tar.TypeReg, 0o644
			if fi.Mode()&0o111 != 0 {
				e.mode = 0o755
			}
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.typ, e.mode, e.linkname, e.src = tar.TypeSymlink, 0o777, target, ""
		default:
			return fmt.Errorf("%s: unsupported file type %s", rel, d.Type())
		}
		out = append(out, e)
		for dir := path.Dir(e.name); dir != "."; dir = path.Dir(dir) {
			dirs[dir] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing modules: %w", err)
	}
	for dir := range dirs { // writeTar sorts, so map order does not matter
		out = append(out, entry{name: dir, typ: tar.TypeDir, mode: 0o755})
	}
	return out, nil
}

// kernelImage makes the kernel image from an unpacked linux-image package: /kernel (the
// vmlinuz), /kernel.tar (lib/modules/VERSION, all of it or the demo set) and /config.
func kernelImage(work, root, version, arch string, info debInfo, allModules bool, mtime time.Time, log io.Writer) (v1.Image, error) {
	keep := demoModule
	if allModules {
		keep = func(string) bool { return true }
	}
	mods, err := moduleEntries(root, version, keep)
	if err != nil {
		return nil, err
	}
	modTar := filepath.Join(work, "kernel.tar")
	if err := writeTarFile(modTar, mods, mtime); err != nil {
		return nil, fmt.Errorf("writing kernel.tar: %w", err)
	}
	files := []entry{
		{name: "kernel", typ: tar.TypeReg, mode: 0o644, src: filepath.Join(root, "boot", "vmlinuz-"+version)},
		{name: "kernel.tar", typ: tar.TypeReg, mode: 0o644, src: modTar},
		{name: "config", typ: tar.TypeReg, mode: 0o644, src: filepath.Join(root, "boot", "config-"+version)},
	}
	for _, f := range files {
		fi, err := os.Stat(f.src)
		if err != nil {
			return nil, fmt.Errorf("kernel package: %w", err)
		}
		fmt.Fprintf(log, "seed:   /%-10s %9d bytes\n", f.name, fi.Size())
	}
	layer, err := fileLayer(filepath.Join(work, "kernel-layer.tar"), files, mtime)
	if err != nil {
		return nil, err
	}
	set := "demo set of modules (virtio, 9p, overlayfs)"
	if allModules {
		set = "all modules"
	}
	cfg := v1.Config{Labels: map[string]string{
		"org.opencontainers.image.title":       "Debian bookworm kernel " + version + " (kiln demo)",
		"org.opencontainers.image.version":     info.Version,
		"org.opencontainers.image.description": fmt.Sprintf("linux-image-%s %s, %s", version, info.Version, set),
	}}
	return oneLayerImage(arch, mtime, cfg, layer, "kiln demo seed: linux-image-"+version+" "+info.Version)
}
