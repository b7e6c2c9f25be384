// Package testdeb finds and unpacks Debian kernel packages (linux-image-*.deb) for the tests
// of the other packages, which check their work against real kernels. The packages are not
// part of the repository: the tests look in $KILN_KERNEL_DEBS (a folder), else in the folder
// where the demo seed and kiln's QEMU tests keep the ones they downloaded
// ($XDG_CACHE_HOME/kiln-demo/debs, else ~/.cache/kiln-demo/debs). When that folder has none
// for an architecture, the test downloads it there with apt-get download (as root, after
// dpkg --add-architecture and apt-get update when apt does not know the architecture yet).
// Only when apt fails too is the test skipped, or failed under CI (see testenv).
//
// It is for tests only.
package testdeb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"kiln.example/kerneltools/internal/testenv"
)

// DebsEnv names the environment variable that points at a folder of kernel packages.
const DebsEnv = "KILN_KERNEL_DEBS"

// lockName is the lock file in the folder that downloads hold; kiln's qemutest package takes
// the same one, so parallel test binaries fetch each package once and never see half a file.
const lockName = ".download.lock"

// Dir is the folder the packages are looked for and downloaded in.
func Dir() (string, error) {
	if d := os.Getenv(DebsEnv); d != "" {
		return d, nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no folder for kernel packages (set %s): %w", DebsEnv, err)
	}
	return filepath.Join(c, "kiln-demo", "debs"), nil
}

// Find returns the path of the last (by name) linux-image package for arch in Dir,
// downloading apt's current one first when there is none. It skips the test (fails it under
// CI) when there is none and apt cannot get it.
func Find(t testing.TB, arch string) string {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		testenv.SkipOrFail(t, "testdeb: %v", err)
	}
	if deb := newest(dir, arch); deb != "" {
		return deb
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	deb, err := fetch(ctx, dir, arch, t.Logf)
	if err != nil {
		testenv.SkipOrFail(t, "testdeb: no linux-image-*_%s.deb in %s, and apt could not download one: %v (set %s to a folder holding one)", arch, dir, err, DebsEnv)
	}
	return deb
}

// newest returns the last (by name) linux-image-VERSION package of arch in dir, or "".
func newest(dir, arch string) string {
	debs, _ := filepath.Glob(filepath.Join(dir, "linux-image-[0-9]*_"+arch+".deb"))
	if len(debs) == 0 {
		return ""
	}
	sort.Strings(debs)
	return debs[len(debs)-1]
}

// fetch downloads the kernel package linux-image-ARCH currently depends on into dir, holding
// the folder's lock, unless another process put a package of arch there meanwhile.
func fetch(ctx context.Context, dir, arch string, logf func(string, ...any)) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("package folder: %w", err)
	}
	unlock, err := lock(filepath.Join(dir, lockName))
	if err != nil {
		return "", err
	}
	defer unlock()
	if deb := newest(dir, arch); deb != "" {
		return deb, nil
	}
	a := &apt{arch: arch, logf: logf}
	version, err := a.kernelVersion(ctx)
	if err != nil {
		return "", err
	}
	return a.download(ctx, dir, "linux-image-"+version)
}

// lock takes an exclusive flock on path, creating it, and returns the release function.
func lock(path string) (func(), error) {
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

// apt asks Debian's package tools for the packages of one architecture. As root it makes apt
// know the architecture and refreshes its lists, at most once, when a look-up fails.
type apt struct {
	arch    string
	logf    func(string, ...any)
	updated bool
}

// run runs a command in dir and returns its standard output; the error carries its stderr.
func run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
		}
		return nil, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out, nil
}

// host returns dpkg's architecture of this machine.
func host(ctx context.Context) (string, error) {
	out, err := run(ctx, "", "dpkg", "--print-architecture")
	return strings.TrimSpace(string(out)), err
}

// name is the name apt knows package name of a.arch by (name:arch for a foreign one).
func (a *apt) name(ctx context.Context, name string) (string, error) {
	h, err := host(ctx)
	if err != nil {
		return "", err
	}
	if h == a.arch {
		return name, nil
	}
	return name + ":" + a.arch, nil
}

// retry runs f; when it fails and this is root, it registers a foreign architecture with dpkg
// and runs apt-get update (once per apt), then runs f again.
func (a *apt) retry(ctx context.Context, f func() error) error {
	err := f()
	if err == nil || a.updated || os.Geteuid() != 0 {
		return err
	}
	a.updated = true
	if uerr := a.prepare(ctx); uerr != nil {
		return errors.Join(err, uerr)
	}
	return f()
}

func (a *apt) prepare(ctx context.Context) error {
	h, err := host(ctx)
	if err != nil {
		return err
	}
	if h != a.arch {
		foreign, err := run(ctx, "", "dpkg", "--print-foreign-architectures")
		if err != nil {
			return err
		}
		if !strings.Contains("\n"+string(foreign), "\n"+a.arch+"\n") {
			a.logf("testdeb: dpkg --add-architecture %s", a.arch)
			if _, err := run(ctx, "", "dpkg", "--add-architecture", a.arch); err != nil {
				return err
			}
		}
	}
	a.logf("testdeb: apt-get update")
	_, err = run(ctx, "", "apt-get", "update")
	return err
}

// kernelVersion asks apt which kernel linux-image-ARCH depends on, such as 6.1.0-48-arm64.
func (a *apt) kernelVersion(ctx context.Context) (string, error) {
	meta, err := a.name(ctx, "linux-image-"+a.arch)
	if err != nil {
		return "", err
	}
	var v string
	err = a.retry(ctx, func() error {
		out, err := run(ctx, "", "apt-cache", "depends", meta)
		if err != nil {
			return err
		}
		v, err = parseDepends(out)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("finding the kernel package of %s (as root: dpkg --add-architecture %s && apt-get update): %w", meta, a.arch, err)
	}
	return v, nil
}

// parseDepends returns the VERSION of the first linux-image-VERSION dependency in the output
// of apt-cache depends.
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

// download fetches package name of a.arch into a temporary folder inside dir and renames the
// file into dir once complete, so dir never holds part of a package.
func (a *apt) download(ctx context.Context, dir, name string) (string, error) {
	pkg, err := a.name(ctx, name)
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, ".download-")
	if err != nil {
		return "", fmt.Errorf("download folder: %w", err)
	}
	defer os.RemoveAll(tmp)
	// apt downloads as the _apt user and warns when it cannot write here; it then downloads as
	// root, so opening the folder up only spares the warning.
	_ = os.Chmod(tmp, 0o777)
	a.logf("testdeb: apt-get download %s", pkg)
	if err := a.retry(ctx, func() error {
		_, err := run(ctx, tmp, "apt-get", "download", pkg)
		return err
	}); err != nil {
		return "", err
	}
	got, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(got) != 1 {
		return "", fmt.Errorf("apt-get download %s left %d package files, want 1", pkg, len(got))
	}
	file := filepath.Join(dir, filepath.Base(got[0]))
	if err := os.Rename(got[0], file); err != nil {
		return "", fmt.Errorf("keeping the download: %w", err)
	}
	return file, nil
}

// Unpack unpacks the package Find returns for arch into a temporary folder (dpkg-deb -x) and
// returns the folder; it skips the test (fails it under CI) when dpkg-deb is missing.
func Unpack(t testing.TB, arch string) string {
	t.Helper()
	deb := Find(t, arch)
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		testenv.SkipOrFail(t, "testdeb: dpkg-deb is not installed (apt-get install dpkg): %v", err)
	}
	dir := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", deb, dir).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", deb, err, out)
	}
	return dir
}

// ModuleDir returns root's only lib/modules/VERSION folder and VERSION.
func ModuleDir(t testing.TB, root string) (string, string) {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(root, "lib", "modules", "*"))
	if len(dirs) != 1 {
		t.Fatalf("want one lib/modules/VERSION folder in %s, found %q", root, dirs)
	}
	return dirs[0], filepath.Base(dirs[0])
}
