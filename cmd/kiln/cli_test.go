package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLI builds kiln with go build, once, and runs the tests that exec it, so they see what
// a user sees: the exit code, standard output and standard error of the real binary. (One
// parent test owns the binary's folder, which goes when it ends; the package's TestMain
// belongs to the fault tests.)
func TestCLI(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kiln")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		run  func(*testing.T, string)
	}{
		{"ExitCodes", testCLIExitCodes},
		{"BuildOutputFile", testCLIBuildOutputFile},
		{"BuildQuiet", testCLIBuildQuiet},
		{"BuildGzipLevel", testCLIBuildGzipLevel},
		{"BuildSourceDateEpoch", testCLIBuildSourceDateEpoch},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, bin) })
	}
}

// cliResult is how one kiln run ended.
type cliResult struct {
	code           int
	stdout, stderr string
}

// kilnExec runs the kiln binary in dir with a private cache and home folder (no ~/.kiln is
// touched) and no SOURCE_DATE_EPOCH unless env sets one.
func kilnExec(t *testing.T, bin, dir string, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SOURCE_DATE_EPOCH=") && !strings.HasPrefix(e, "KILN_CACHE=") && !strings.HasPrefix(e, "HOME=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+filepath.Join(dir, "home"), "KILN_CACHE="+filepath.Join(dir, "cache"))
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("kiln %s: %v\nstderr:\n%s", strings.Join(args, " "), err, r.stderr)
	}
	return r
}

// testCLIExitCodes: 0 for success and help, 2 only for mistakes in how kiln was called, 1 for
// everything that goes wrong after that; a usage mistake prints the usage.
func testCLIExitCodes(t *testing.T, bin string) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	if err := os.WriteFile(good, []byte("files:\n  - path: etc/motd\n    contents: hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args      []string
		code      int
		stderr    string // must be in standard error
		stdout    string // must be in standard output
		noUsage   bool   // standard error must not print the usage line
		wantUsage bool   // standard error prints the usage line
	}{
		{args: []string{"version"}, code: 0, stdout: "kiln "},
		{args: []string{"help"}, code: 0, stderr: "Commands:"},
		{args: []string{"build", "-h"}, code: 0, stderr: "usage: kiln build"},
		{args: []string{"help", "build"}, code: 0, stderr: "usage: kiln build"},
		{args: []string{"validate", good}, code: 0, stderr: "valid"},
		{args: []string{"build", "-dry-run", "-arch", "amd64", "-pull=false", good}, code: 0, stdout: "etc/motd"},

		// Usage mistakes: exit 2.
		{args: nil, code: 2, stderr: "Commands:"},
		{args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{args: []string{"build", "-frob", good}, code: 2, stderr: "flag provided but not defined: -frob", wantUsage: true},
		{args: []string{"build", "-gzip-level", "max", good}, code: 2, stderr: `invalid value "max" for flag -gzip-level`, wantUsage: true},
		{args: []string{"build", "-initrd-compression", "xz", good}, code: 2, stderr: `-initrd-compression: unknown compression "xz"; expected one of gzip, zstd, none`, wantUsage: true},
		{args: []string{"build", "-o"}, code: 2, stderr: "flag needs an argument: -o", wantUsage: true},
		{args: []string{"build"}, code: 2, stderr: "no YAML file given", wantUsage: true},
		{args: []string{"validate"}, code: 2, stderr: "no YAML file given", wantUsage: true},
		{args: []string{"version", "-x"}, code: 2, stderr: "flag provided but not defined: -x"},
		{args: []string{"cache", "frob"}, code: 2, stderr: `unknown cache command "frob"`},
		{args: []string{"cache", "rm"}, code: 2, stderr: "no reference given"},
		{args: []string{"builder", "-root", filepath.Join(dir, "b"), "certs", "-force", "-reissue"}, code: 2, stderr: "-force and -reissue exclude each other"},

		// Failures of the run: exit 1, no usage.
		{args: []string{"validate", filepath.Join(dir, "missing.yml")}, code: 1, stderr: "missing.yml", noUsage: true},
		{args: []string{"build", "-arch", "amd64", "-pull=false", "-dir", dir, filepath.Join(dir, "missing.yml")}, code: 1, stderr: "missing.yml", noUsage: true},
		{args: []string{"build", "-arch", "riscv64", "-pull=false", "-dir", dir, good}, code: 1, stderr: `unsupported architecture "riscv64"`, noUsage: true},
		{args: []string{"build", "-gzip-level", "12", "-arch", "amd64", "-pull=false", "-dir", dir, good}, code: 1,
			stderr: "gzip level 12: expected 1 (fastest) to 9 (smallest)", noUsage: true},
		{args: []string{"build", "-zstd-level", "2", "-arch", "amd64", "-pull=false", "-dir", dir, good}, code: 1,
			stderr: "a zstd level (2) was given with compression gzip", noUsage: true},
		{args: []string{"build", "-format", "kernel+initrd", "-o", "-", "-arch", "amd64", "-pull=false", good}, code: 1,
			stderr: "-o works with exactly one single-file format", noUsage: true},
		{args: []string{"build", "-format", "tar,docker", "-o", filepath.Join(dir, "x.tar"), "-arch", "amd64", "-pull=false", good}, code: 1,
			stderr: "-o works with exactly one single-file format", noUsage: true},
		{args: []string{"builder", "-root", filepath.Join(dir, "b"), "certs", "-reissue"}, code: 1,
			stderr: "reading the CA to issue certificates from", noUsage: true},
		{args: []string{"build", "-format", "tar", "-o", filepath.Join(good, "x.tar"), "-arch", "amd64", "-pull=false", good}, code: 1,
			stderr: "not a directory", noUsage: true},
	}
	for _, tt := range tests {
		name := strings.ReplaceAll(strings.Join(tt.args, " "), dir+string(filepath.Separator), "")
		if name == "" {
			name = "no arguments"
		}
		t.Run(name, func(t *testing.T) {
			r := kilnExec(t, bin, dir, nil, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit code %d, want %d\nstderr:\n%s", r.code, tt.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, r.stdout)
			}
			if tt.wantUsage && !strings.Contains(r.stderr, "usage: kiln") {
				t.Errorf("a usage mistake without the usage line:\n%s", r.stderr)
			}
			if tt.noUsage && strings.Contains(r.stderr, "usage:") {
				t.Errorf("a failure of the run prints the usage:\n%s", r.stderr)
			}
			if r.code != 0 && strings.Contains(r.stderr, "goroutine ") {
				t.Errorf("a panic reached the user:\n%s", r.stderr)
			}
		})
	}
	// None of the failed builds left anything behind.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		switch e.Name() {
		case "good.yml", "cache", "home":
		default:
			t.Errorf("a run left %s in the folder", e.Name())
		}
	}
}

// buildFixture is a folder with a cache holding a small kernel image (imported with
// `kiln cache import -rootfs`) and a system using it, with a file that compresses well.
func buildFixture(t *testing.T, bin string) (dir, yml string) {
	t.Helper()
	dir = t.TempDir()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	kernel := bytes.Repeat([]byte("not really a kernel "), 512)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "kernel", Mode: 0o644, Size: int64(len(kernel))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(kernel); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(dir, "kernel-rootfs.tar")
	if err := os.WriteFile(rootfs, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := kilnExec(t, bin, dir, nil, "cache", "import", "-rootfs", "-name", "kiln/test-kernel:1", "-platform", "linux/amd64", rootfs); r.code != 0 {
		t.Fatalf("cache import: exit %d\n%s", r.code, r.stderr)
	}
	// Text that gzip levels 1 and 9 compress to different sizes.
	var data bytes.Buffer
	for i := range 40000 {
		fmt.Fprintf(&data, "line %d of a file %x\n", i, i*i%7919)
	}
	if err := os.WriteFile(filepath.Join(dir, "data.txt"), data.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	yml = filepath.Join(dir, "sys.yml")
	sys := "kernel:\n  image: kiln/test-kernel:1\n  cmdline: console=ttyS0\n  tar: none\n" +
		"files:\n  - path: etc/data.txt\n    source: data.txt\n    mode: \"0644\"\n"
	if err := os.WriteFile(yml, []byte(sys), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, yml
}

// buildArgs is a kiln build command line for amd64 from the cache only, then extra.
func buildArgs(extra ...string) []string {
	return append([]string{"build", "-arch", "amd64", "-pull=false"}, extra...)
}

// tarNames lists a tar's entries and their modification times.
func tarNames(t *testing.T, data []byte) (names []string, mtimes map[string]time.Time) {
	t.Helper()
	mtimes = map[string]time.Time{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, mtimes
		}
		if err != nil {
			t.Fatalf("reading the tar: %v", err)
		}
		names = append(names, h.Name)
		mtimes[h.Name] = h.ModTime
	}
}

func testCLIBuildOutputFile(t *testing.T, bin string) {
	dir, yml := buildFixture(t, bin)
	file := filepath.Join(dir, "out", "system.tar")
	if err := os.Mkdir(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	r := kilnExec(t, bin, dir, nil, buildArgs("-format", "tar", "-o", file, yml)...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("-o FILE printed on standard output: %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "wrote "+file) {
		t.Errorf("stderr does not say it wrote %s:\n%s", file, r.stderr)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	names, _ := tarNames(t, data)
	for _, want := range []string{"boot/kernel", "boot/cmdline", "etc/data.txt"} {
		if !strings.Contains(strings.Join(names, "\n")+"\n", want+"\n") {
			t.Errorf("the tar lacks %s: %q", want, names)
		}
	}
	if _, err := os.Stat(file + ".lock.yml"); err != nil {
		t.Errorf("no lock file beside -o's file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sys.tar")); err == nil {
		t.Error("-o FILE also wrote sys.tar in the working folder")
	}

	// -o - writes the same bytes to standard output, and nothing else there.
	r = kilnExec(t, bin, dir, nil, buildArgs("-format", "tar", "-o", "-", yml)...)
	if r.code != 0 {
		t.Fatalf("-o -: exit %d\n%s", r.code, r.stderr)
	}
	if r.stdout != string(data) {
		t.Errorf("-o - gave %d bytes on standard output, want the %d bytes of -o FILE", len(r.stdout), len(data))
	}
	if _, err := os.Stat(filepath.Join(dir, "-")); err == nil {
		t.Error("-o - wrote a file named -")
	}
}

func testCLIBuildQuiet(t *testing.T, bin string) {
	dir, yml := buildFixture(t, bin)
	tests := []struct {
		name    string
		flags   []string
		talking bool
	}{
		{"default", nil, true},
		{"-q", []string{"-q"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			r := kilnExec(t, bin, dir, nil, buildArgs(append(tt.flags, "-format", "tar", "-dir", out, yml)...)...)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			if tt.talking != (r.stderr != "") {
				t.Errorf("stderr %q; want output: %v", r.stderr, tt.talking)
			}
			if _, err := os.Stat(filepath.Join(out, "sys.tar")); err != nil {
				t.Errorf("no output: %v", err)
			}
		})
	}
	// -q still prints errors.
	r := kilnExec(t, bin, dir, nil, buildArgs("-q", "-format", "tar", "-dir", t.TempDir(), filepath.Join(dir, "missing.yml"))...)
	if r.code != 1 || !strings.Contains(r.stderr, "missing.yml") {
		t.Errorf("-q with a missing file: exit %d, stderr %q; want 1 and the error", r.code, r.stderr)
	}
}

func testCLIBuildGzipLevel(t *testing.T, bin string) {
	dir, yml := buildFixture(t, bin)
	initrds := map[string][]byte{}
	for _, level := range []string{"1", "9"} {
		out := t.TempDir()
		r := kilnExec(t, bin, dir, nil, buildArgs("-q", "-gzip-level", level, "-format", "kernel+initrd", "-dir", out, yml)...)
		if r.code != 0 {
			t.Fatalf("-gzip-level %s: exit %d\n%s", level, r.code, r.stderr)
		}
		data, err := os.ReadFile(filepath.Join(out, "sys-initrd.img"))
		if err != nil {
			t.Fatal(err)
		}
		initrds[level] = data
	}
	fast, small := initrds["1"], initrds["9"]
	if len(small) >= len(fast) {
		t.Errorf("-gzip-level 9 gave %d bytes, -gzip-level 1 %d: want level 9 smaller", len(small), len(fast))
	}
	unzip := func(b []byte) []byte {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if !bytes.Equal(unzip(fast), unzip(small)) {
		t.Error("the two levels hold different initramfs contents")
	}
}

func testCLIBuildSourceDateEpoch(t *testing.T, bin string) {
	dir, yml := buildFixture(t, bin)
	tests := []struct {
		epoch   string
		code    int
		wantErr string
		mtime   time.Time
	}{
		{epoch: "", mtime: time.Unix(0, 0)},
		{epoch: "1700000000", mtime: time.Unix(1700000000, 0)},
		{epoch: "yesterday", code: 1, wantErr: `SOURCE_DATE_EPOCH="yesterday": expected a non-negative number of seconds`},
		{epoch: "-5", code: 1, wantErr: `SOURCE_DATE_EPOCH="-5"`},
		{epoch: "1.5", code: 1, wantErr: `SOURCE_DATE_EPOCH="1.5"`},
	}
	for _, tt := range tests {
		t.Run("SOURCE_DATE_EPOCH="+tt.epoch, func(t *testing.T) {
			out := t.TempDir()
			var env []string
			if tt.epoch != "" {
				env = []string{"SOURCE_DATE_EPOCH=" + tt.epoch}
			}
			r := kilnExec(t, bin, dir, env, buildArgs("-format", "tar", "-dir", out, yml)...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d\n%s", r.code, tt.code, r.stderr)
			}
			if tt.wantErr != "" {
				if !strings.Contains(r.stderr, tt.wantErr) || strings.Contains(r.stderr, "usage:") {
					t.Errorf("stderr %q; want %q and no usage", r.stderr, tt.wantErr)
				}
				if ents, _ := os.ReadDir(out); len(ents) != 0 {
					t.Errorf("a refused build wrote %d files, the first %s", len(ents), ents[0].Name())
				}
				return
			}
			data, err := os.ReadFile(filepath.Join(out, "sys.tar"))
			if err != nil {
				t.Fatal(err)
			}
			_, mtimes := tarNames(t, data)
			if got := mtimes["etc/data.txt"]; !got.Equal(tt.mtime) {
				t.Errorf("etc/data.txt mtime %v, want %v", got, tt.mtime)
			}
		})
	}
}
