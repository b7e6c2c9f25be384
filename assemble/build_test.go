package assemble

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const systemYAML = `kernel:
  image: kiln/test-kernel:v1
  cmdline: console=ttyS0
init:
  - kiln/test-init:v1
onboot:
  - name: setup
    image: kiln/test-app:v1
    command: ["/bin/app", "setup"]
onshutdown:
  - name: bye
    image: kiln/test-app:v1
services:
  - name: app
    image: kiln/test-app:v1
    uid: daemon
    env: ["A=1"]
files:
  - path: etc/motd
    contents: "hello\n"
    mode: "0644"
  - path: var/lib/empty
    directory: true
  - path: etc/link
    symlink: /etc/motd
  - path: boot/extra
    contents: "x"
`

func writeYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "system.yml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func build(t *testing.T, opt Options) (*Result, error) {
	t.Helper()
	if opt.Formats == nil {
		f, err := LookupFormats("kernel+initrd,tar,tar-kernel-initrd,docker")
		if err != nil {
			t.Fatal(err)
		}
		opt.Formats = f
	}
	if opt.Arch == "" {
		opt.Arch = "amd64"
	}
	return Build(context.Background(), opt)
}

func TestBuildAllFormats(t *testing.T) {
	cache := seedCache(t)
	out := t.TempDir()
	var log bytes.Buffer
	res, err := build(t, Options{Files: []string{writeYAML(t, systemYAML)}, Dir: out, Cache: cache, Log: &log})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	var got []string
	for _, p := range res.Outputs {
		got = append(got, filepath.Base(p))
	}
	want := []string{KernelFile("system"), CmdlineFile("system"), InitrdFile("system"), TarFile("system"), InitrdTarFile("system"), DockerFile("system")}
	if !slices.Equal(sortedCopy(got), sortedCopy(want)) {
		t.Fatalf("outputs %v, want %v", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(out, KernelFile("system"))); string(b) != "KERNEL-IMAGE-BYTES" {
		t.Errorf("kernel = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(out, CmdlineFile("system"))); string(b) != "console=ttyS0" {
		t.Errorf("cmdline = %q", b)
	}

	names, bodies := listInitrd(t, filepath.Join(out, InitrdFile("system")))
	for _, n := range []string{
		"5 lib/modules/6.1.0-test", "0 lib/modules/6.1.0-test/modules.dep", "0 init", "0 etc/os-release",
		"5 containers/onboot/000-setup/rootfs", "0 containers/onboot/000-setup/config.json",
		"0 containers/onboot/000-setup/runtime.json", // its files: one shared copy (share_test.go)
		"0 containers/onshutdown/000-bye/config.json", "0 containers/services/app/config.json",
		"0 etc/motd", "5 var/lib/empty", "2 etc/link", "0 boot/extra",
	} {
		if !slices.Contains(names, n) {
			t.Errorf("initrd lacks %q", n)
		}
	}
	for _, n := range []string{"0 boot/kernel", "0 boot/cmdline", "0 usr/bin/ctr", "0 kernel.tar", "0 kernel"} {
		if slices.Contains(names, n) {
			t.Errorf("initrd should not hold %q", n)
		}
	}
	if bodies["etc/os-release"] != "ID=kiln-2\n" {
		t.Errorf("upper layer must win: os-release = %q", bodies["etc/os-release"])
	}
	assertParentsFirst(t, names)

	var onboot, svc specs.Spec
	mustJSON(t, bodies["containers/onboot/000-setup/config.json"], &onboot)
	mustJSON(t, bodies["containers/services/app/config.json"], &svc)
	if got := strings.Join(onboot.Process.Args, " "); got != "/bin/app setup" {
		t.Errorf("onboot args = %q (YAML command must win)", got)
	}
	if got := strings.Join(svc.Process.Args, " "); got != "/bin/app -v" {
		t.Errorf("service args = %q (image entrypoint+cmd)", got)
	}
	// uid sets only the uid (LinuxKit's rule); the name comes from the image's /etc/passwd.
	if svc.Process.User.UID != 7 || svc.Process.User.GID != 0 {
		t.Errorf("uid daemon = %d:%d, want 7:0", svc.Process.User.UID, svc.Process.User.GID)
	}
	if !slices.Contains(svc.Process.Capabilities.Bounding, "CAP_NET_ADMIN") {
		t.Errorf("label capabilities missing: %v", svc.Process.Capabilities.Bounding)
	}
	if !slices.Equal(svc.Process.Env, []string{"A=1"}) {
		t.Errorf("env = %v", svc.Process.Env)
	}

	tarNames, tarBodies := listTar(t, filepath.Join(out, TarFile("system")))
	if tarBodies["boot/kernel"] != "KERNEL-IMAGE-BYTES" || tarBodies["boot/cmdline"] != "console=ttyS0" {
		t.Errorf("tar lacks boot files: %v", tarNames[:min(5, len(tarNames))])
	}
	dockerNames, _ := listTar(t, filepath.Join(out, DockerFile("system")))
	if slices.Contains(dockerNames, "0 boot/kernel") || !slices.Contains(dockerNames, "0 init") {
		t.Errorf("docker tar: %v", dockerNames)
	}
	_, kit := listTar(t, filepath.Join(out, InitrdTarFile("system")))
	initrd, _ := os.ReadFile(filepath.Join(out, InitrdFile("system")))
	if kit["kernel"] != "KERNEL-IMAGE-BYTES" || kit["initrd.img"] != string(initrd) || kit["cmdline"] != "console=ttyS0" {
		t.Errorf("tar-kernel-initrd content differs from kernel+initrd")
	}

	lock, err := os.ReadFile(res.LockFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"kiln/test-kernel:v1: sha256:", "kiln/test-app:v1: sha256:"} {
		if !strings.Contains(string(lock), ref) {
			t.Errorf("lock file lacks %q:\n%s", ref, lock)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(out, ".kiln-tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func assertParentsFirst(t *testing.T, names []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, n := range names {
		name := n[2:]
		if parent := filepath.Dir(name); parent != "." && !seen[parent] {
			t.Errorf("%s comes before its parent directory", name)
		}
		if seen[name] && n[0] == '5' {
			t.Errorf("directory %s written twice", name)
		}
		seen[name] = true
	}
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v in %q", err, s)
	}
}

// TestBuildReproducible builds the same system twice, from different caches, folders and
// names, and compares every output byte for byte; then checks SOURCE_DATE_EPOCH changes them.
func TestBuildReproducible(t *testing.T) {
	yml := writeYAML(t, systemYAML)
	outs := []string{t.TempDir(), t.TempDir()}
	for _, out := range outs {
		if _, err := build(t, Options{Files: []string{yml}, Dir: out, Cache: seedCache(t)}); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(outs[0], "system*"))
	if len(files) < 7 {
		t.Fatalf("only %v", files)
	}
	for _, f := range files {
		a, _ := os.ReadFile(f)
		b, err := os.ReadFile(filepath.Join(outs[1], filepath.Base(f)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds (%v)", filepath.Base(f), err)
		}
	}
	third := t.TempDir()
	if _, err := build(t, Options{Files: []string{yml}, Dir: third, Cache: seedCache(t), Epoch: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(outs[0], TarFile("system")))
	b, _ := os.ReadFile(filepath.Join(third, TarFile("system")))
	if bytes.Equal(a, b) {
		t.Error("a different SOURCE_DATE_EPOCH must change the tar's timestamps")
	}
}

func TestBuildErrorsLeaveNothing(t *testing.T) {
	cases := []struct {
		name, yaml, want string
		arch             string
	}{
		{"missing image", "init:\n  - kiln/nope:v1\n", "image kiln/nope:v1: not found in the cache", ""},
		{"wrong arch", "init:\n  - kiln/test-init:v1\n", "is for linux/amd64, not linux/arm64", "arm64"},
		{"no kernel for kernel+initrd", "init:\n  - kiln/test-init:v1\n", "needs a kernel", ""},
		{"kernel without binary", "kernel:\n  image: kiln/test-kernel:v1\n  binary: vmlinuz\n", "has no /vmlinuz", ""},
		{"yaml error", "services:\n  - name: x\n    image: kiln/test-app:v1\n    capabilities: [CAP_NOPE]\n", "system.yml:4:20", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			_, err := build(t, Options{Files: []string{writeYAML(t, tc.yaml)}, Dir: out, Cache: seedCache(t), Arch: tc.arch})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
			left, _ := os.ReadDir(out)
			if len(left) != 0 {
				t.Errorf("a failed build left %d files", len(left))
			}
		})
	}
}

func TestDryRunPinsDigests(t *testing.T) {
	cache := seedCache(t)
	var stdout bytes.Buffer
	out := t.TempDir()
	_, err := build(t, Options{Files: []string{writeYAML(t, systemYAML)}, Dir: out, Cache: cache, DryRun: true, Stdout: &stdout})
	if err != nil {
		t.Fatal(err)
	}
	d, err := cache.Resolve("kiln/test-app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "image: kiln/test-app:v1@"+d.Digest.String()) {
		t.Errorf("dry run output lacks the pinned app image:\n%s", stdout.String())
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Errorf("a dry run wrote %d files", len(left))
	}
}

// TestLockFilePinsMovedTag moves a tag after a build and checks the next build beside the
// lock file still uses the old content, until -update-lock.
func TestLockFilePinsMovedTag(t *testing.T) {
	cache := seedCache(t)
	yml := writeYAML(t, "init:\n  - kiln/test-init:v1\n")
	out := t.TempDir()
	tarOnly, _ := LookupFormats("tar")
	if _, err := build(t, Options{Files: []string{yml}, Dir: out, Cache: cache, Formats: tarOnly}); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.WriteImage("kiln/test-init:v1", testImage(t, "amd64", v1Config(), []file{reg("init", "NEW")})); err != nil {
		t.Fatal(err)
	}
	if _, err := build(t, Options{Files: []string{yml}, Dir: out, Cache: cache, Formats: tarOnly}); err != nil {
		t.Fatal(err)
	}
	_, bodies := listTar(t, filepath.Join(out, TarFile("system")))
	if bodies["init"] != "#!init" {
		t.Errorf("the lock file must pin the old content, got init = %q", bodies["init"])
	}
	if _, err := build(t, Options{Files: []string{yml}, Dir: out, Cache: cache, Formats: tarOnly, UpdateLock: true}); err != nil {
		t.Fatal(err)
	}
	_, bodies = listTar(t, filepath.Join(out, TarFile("system")))
	if bodies["init"] != "NEW" {
		t.Errorf("-update-lock must resolve again, got init = %q", bodies["init"])
	}
}
