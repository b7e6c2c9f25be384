package qemutest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-os/kiln/internal/testenv"
)

// Kernel returns the path of a Debian bookworm kernel for arch (amd64, arm64 or s390x) that
// boots fastest under QEMU: for amd64 the uncompressed ELF vmlinux taken out of the bzImage
// (it boots through its PVH entry), for arm64 and s390x the vmlinuz as Debian ships it.
//
// The kernel package is fetched with apt-get download (registering arch with dpkg and running
// apt-get update first when running as root and apt does not know the architecture yet), and
// the extracted files are kept under the user cache folder (kiln/kernels/VERSION), so only the
// first run downloads. When apt cannot supply the kernel the test is skipped, or fails under
// CI (see testenv.SkipOrFail).
func Kernel(t testing.TB, arch string) string {
	t.Helper()
	k := kernelFiles(t, arch)
	if k.vmlinux != "" {
		return k.vmlinux
	}
	return k.vmlinuz
}

// PackagedKernel returns the kernel image exactly as Debian's package ships it
// (/boot/vmlinuz-VERSION; a bzImage on amd64), fetched and cached like Kernel.
func PackagedKernel(t testing.TB, arch string) string {
	t.Helper()
	return kernelFiles(t, arch).vmlinuz
}

// kernel is one extracted kernel in the cache.
type kernel struct {
	vmlinuz, vmlinux string // vmlinux is set for amd64 only
}

// kernelFiles finds or fetches the kernel of arch; it serialises on a lock file so parallel
// tests and test binaries fetch each kernel once.
func kernelFiles(t testing.TB, arch string) kernel {
	t.Helper()
	switch arch {
	case "amd64", "arm64", "s390x":
	default:
		t.Fatalf("qemutest: no Debian kernel for architecture %q (want amd64, arm64 or s390x)", arch)
	}
	skip := func(format string, args ...any) {
		t.Helper()
		testenv.SkipOrFail(t, "qemutest: %s", fmt.Sprintf(format, args...))
	}
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip("getting a %s kernel needs Debian's %s: %v", arch, tool, err)
		}
	}
	root, err := cacheRoot()
	if err != nil {
		skip("%v", err)
	}
	unlock, err := lockFile(filepath.Join(root, ".lock"))
	if err != nil {
		t.Fatalf("qemutest: %v", err)
	}
	defer unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	f := fetcher{log: t.Logf}
	version, err := f.kernelVersion(ctx, arch)
	if err != nil {
		// Offline: any kernel of arch extracted before will do.
		if k, ok := cachedAny(root, arch); ok {
			t.Logf("qemutest: %v; using the cached %s", err, k.vmlinuz)
			return k
		}
		skip("%v", err)
	}
	dir := filepath.Join(root, version)
	if k, ok := cached(dir, arch); ok {
		return k
	}
	deb, err := f.download(ctx, version, arch)
	if err != nil {
		skip("%v", err)
	}
	k, err := extract(ctx, deb, version, arch, dir)
	if err != nil {
		t.Fatalf("qemutest: %v", err)
	}
	t.Logf("qemutest: extracted %s into %s", filepath.Base(deb), dir)
	return k
}

// cacheRoot is the folder extracted kernels live in: $XDG_CACHE_HOME/kiln/kernels or
// ~/.cache/kiln/kernels.
func cacheRoot() (string, error) {
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache folder for kernels: %w", err)
	}
	root := filepath.Join(c, "kiln", "kernels")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("kernel cache: %w", err)
	}
	return root, nil
}

// debLock is the lock file in debDir that downloads hold.
const debLock = ".download.lock"

// debDir is where downloaded packages are kept, shared with the demo's seed.
func debDir() (string, error) {
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache folder for packages: %w", err)
	}
	return filepath.Join(c, "kiln-demo", "debs"), nil
}

// lockFile takes an exclusive flock on path, creating it, and returns the release function.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// cached reports the kernel of arch extracted into dir, when it is complete.
func cached(dir, arch string) (kernel, bool) {
	k := kernel{vmlinuz: filepath.Join(dir, "vmlinuz")}
	if arch == "amd64" {
		k.vmlinux = filepath.Join(dir, "vmlinux")
	}
	for _, p := range []string{k.vmlinuz, k.vmlinux} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			return kernel{}, false
		}
	}
	return k, true
}

// cachedAny returns the last (by name) complete kernel of arch in root.
func cachedAny(root, arch string) (kernel, bool) {
	dirs, _ := filepath.Glob(filepath.Join(root, "*-"+arch))
	for i := len(dirs) - 1; i >= 0; i-- {
		if k, ok := cached(dirs[i], arch); ok {
			return k, true
		}
	}
	return kernel{}, false
}

// fetcher runs apt; it registers a foreign architecture and updates apt's lists at most once.
type fetcher struct {
	log     func(format string, args ...any)
	updated bool
}

func run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
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

// pkgName is the name apt knows a package of arch by.
func pkgName(ctx context.Context, name, arch string) (string, error) {
	host, err := run(ctx, "", "dpkg", "--print-architecture")
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(string(host)) == arch {
		return name, nil
	}
	return name + ":" + arch, nil
}

// prepare makes apt able to answer for arch: as root it registers a foreign architecture and
// runs apt-get update, once. It returns false when there is nothing more to try.
func (f *fetcher) prepare(ctx context.Context, arch string) bool {
	if f.updated || os.Geteuid() != 0 {
		return false
	}
	f.updated = true
	host, err := run(ctx, "", "dpkg", "--print-architecture")
	if err != nil {
		return false
	}
	if strings.TrimSpace(string(host)) != arch {
		foreign, _ := run(ctx, "", "dpkg", "--print-foreign-architectures")
		if !strings.Contains("\n"+string(foreign)+"\n", "\n"+arch+"\n") {
			f.log("qemutest: dpkg --add-architecture %s", arch)
			if _, err := run(ctx, "", "dpkg", "--add-architecture", arch); err != nil {
				return false
			}
		}
	}
	f.log("qemutest: apt-get update")
	_, err = run(ctx, "", "apt-get", "update")
	return err == nil
}

// kernelVersion asks apt which kernel linux-image-ARCH depends on, such as 6.1.0-48-arm64.
func (f *fetcher) kernelVersion(ctx context.Context, arch string) (string, error) {
	meta, err := pkgName(ctx, "linux-image-"+arch, arch)
	if err != nil {
		return "", err
	}
	for {
		out, err := run(ctx, "", "apt-cache", "depends", meta)
		if err == nil {
			var v string
			if v, err = parseDepends(out); err == nil {
				return v, nil
			}
		}
		if !f.prepare(ctx, arch) {
			return "", fmt.Errorf("finding the kernel package for %s (as root: dpkg --add-architecture %s && apt-get update): %w", arch, arch, err)
		}
	}
}

// parseDepends returns the VERSION of the first linux-image-VERSION line of apt-cache depends.
func parseDepends(out []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		dep, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Depends: ")
		if !ok {
			continue
		}
		dep, _, _ = strings.Cut(dep, ":")
		if v, ok := strings.CutPrefix(dep, "linux-image-"); ok && v != "" && v[0] >= '0' && v[0] <= '9' {
			return v, nil
		}
	}
	return "", errors.New("no linux-image-VERSION dependency in apt-cache's answer")
}

// download returns the linux-image-VERSION package file, downloading it unless the package
// folder holds it already. Downloads into the folder hold its lock file (debLock), which the
// kernel tools' tests (kernel/tools/internal/testdeb) take too, so each package is fetched once.
func (f *fetcher) download(ctx context.Context, version, arch string) (string, error) {
	dir, err := debDir()
	if err != nil {
		return "", err
	}
	name := "linux-image-" + version
	have := func() string {
		debs, _ := filepath.Glob(filepath.Join(dir, name+"_*_"+arch+".deb"))
		if len(debs) == 0 {
			return ""
		}
		return debs[len(debs)-1]
	}
	if deb := have(); deb != "" {
		return deb, nil
	}
	pkg, err := pkgName(ctx, name, arch)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("package folder: %w", err)
	}
	unlock, err := lockFile(filepath.Join(dir, debLock))
	if err != nil {
		return "", err
	}
	defer unlock()
	if deb := have(); deb != "" { // fetched by another process while this one waited
		return deb, nil
	}
	tmp, err := os.MkdirTemp(dir, ".download-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	// apt drops root to _apt for downloads and warns when that user cannot write here; the
	// download still works, so the warning is only noise.
	_ = os.Chmod(tmp, 0o777)
	f.log("qemutest: apt-get download %s", pkg)
	if _, err := run(ctx, tmp, "apt-get", "download", pkg); err != nil {
		return "", err
	}
	got, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(got) != 1 {
		return "", fmt.Errorf("apt-get download %s left %d package files, want 1", pkg, len(got))
	}
	file := filepath.Join(dir, filepath.Base(got[0]))
	if err := os.Rename(got[0], file); err != nil {
		return "", err
	}
	return file, nil
}

// extract writes vmlinuz (and, for amd64, vmlinux) from the package deb into dir.
func extract(ctx context.Context, deb, version, arch, dir string) (kernel, error) {
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return kernel{}, err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return kernel{}, err
	}
	if err := cmd.Start(); err != nil {
		return kernel{}, fmt.Errorf("dpkg-deb: %w", err)
	}
	want := map[string]string{
		"./boot/vmlinuz-" + version: "vmlinuz",
		"./boot/config-" + version:  "config",
	}
	found := 0
	tr := tar.NewReader(out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			stopDpkg(cmd)
			return kernel{}, fmt.Errorf("reading %s: %w", deb, err)
		}
		name, ok := want[h.Name]
		if !ok {
			continue
		}
		if err := writeFile(filepath.Join(tmp, name), tr); err != nil {
			stopDpkg(cmd)
			return kernel{}, err
		}
		found++
	}
	if err := cmd.Wait(); err != nil {
		return kernel{}, fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", deb, err, stderr.String())
	}
	if found != len(want) {
		return kernel{}, fmt.Errorf("%s has no /boot/vmlinuz-%s and /boot/config-%s", deb, version, version)
	}
	if arch == "amd64" {
		if err := bzImageToVmlinux(ctx, filepath.Join(tmp, "vmlinuz"), filepath.Join(tmp, "vmlinux")); err != nil {
			return kernel{}, err
		}
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return kernel{}, err
	}
	k, ok := cached(dir, arch)
	if !ok {
		return kernel{}, fmt.Errorf("kernel cache %s is incomplete after extraction", dir)
	}
	return k, nil
}

// stopDpkg ends dpkg-deb early after a read error; that error is the one to report.
func stopDpkg(cmd *exec.Cmd) {
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

func writeFile(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// bzImageToVmlinux writes the ELF kernel compressed inside an x86 bzImage: the setup header
// gives the payload's offset and length (boot protocol 2.08+); Debian compresses it with xz
// (decompressed by the xz tool, which every Debian host has) or gzip.
func bzImageToVmlinux(ctx context.Context, bzImage, out string) error {
	b, err := os.ReadFile(bzImage)
	if err != nil {
		return err
	}
	if len(b) < 0x250 || string(b[0x202:0x206]) != "HdrS" {
		return fmt.Errorf("%s is not an x86 bzImage (no HdrS setup header)", bzImage)
	}
	if binary.LittleEndian.Uint16(b[0x206:]) < 0x208 {
		return fmt.Errorf("%s: boot protocol older than 2.08 has no payload fields", bzImage)
	}
	setupSects := int(b[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	off := (setupSects+1)*512 + int(binary.LittleEndian.Uint32(b[0x248:]))
	n := int(binary.LittleEndian.Uint32(b[0x24c:]))
	if off < 0 || n <= 0 || off+n > len(b) {
		return fmt.Errorf("%s: payload %d+%d lies outside the file", bzImage, off, n)
	}
	payload := b[off : off+n]
	var elf []byte
	switch {
	case bytes.HasPrefix(payload, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		// The build appends the uncompressed size after the stream: read one stream only.
		cmd := exec.CommandContext(ctx, "xz", "--decompress", "--stdout", "--single-stream")
		cmd.Stdin = bytes.NewReader(payload)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if elf, err = cmd.Output(); err != nil {
			return fmt.Errorf("decompressing the kernel in %s with xz (apt-get install xz-utils): %w: %s", bzImage, err, stderr.String())
		}
	case bytes.HasPrefix(payload, []byte{0x1f, 0x8b}):
		z, err := gzip.NewReader(bytes.NewReader(payload))
		if err != nil {
			return fmt.Errorf("%s: %w", bzImage, err)
		}
		z.Multistream(false)
		if elf, err = io.ReadAll(z); err != nil {
			return fmt.Errorf("%s: %w", bzImage, err)
		}
	default:
		return fmt.Errorf("%s: kernel payload compressed with a method other than xz or gzip (magic % x)", bzImage, payload[:min(6, len(payload))])
	}
	if !bytes.HasPrefix(elf, []byte("\x7fELF")) {
		return fmt.Errorf("%s: decompressed payload is not an ELF file", bzImage)
	}
	return os.WriteFile(out, elf, 0o644)
}
