package assemble

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-os/kiln/internal/archive"
	"github.com/kiln-os/kiln/internal/atomicfile"
	"github.com/kiln-os/kiln/internal/ocicache"
)

// leftovers lists the temporary files in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	l, err := filepath.Glob(filepath.Join(dir, atomicfile.Prefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// assertEmpty fails unless dir holds nothing: no output, no lock file, no temporary file.
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		t.Errorf("a failed build left %s", e.Name())
	}
}

// buildWithin fails the test instead of hanging when a build does not return in time.
func buildWithin(t *testing.T, d time.Duration, ctx context.Context, opt Options) (*Result, error) {
	t.Helper()
	if opt.Arch == "" {
		opt.Arch = "amd64"
	}
	type ret struct {
		res *Result
		err error
	}
	ch := make(chan ret, 1)
	go func() {
		res, err := Build(ctx, opt)
		ch <- ret{res, err}
	}()
	select {
	case r := <-ch:
		return r.res, r.err
	case <-time.After(d):
		t.Fatalf("the build did not return within %v", d)
		return nil, nil
	}
}

func formats(t *testing.T, list string) []Format {
	t.Helper()
	f, err := LookupFormats(list)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// A kernel section without cmdline is legitimate: the kernel uses its built-in command line.
// kernel+initrd with another format used to hand a nil body to the fan-out and panic.
func TestKernelWithoutCmdline(t *testing.T) {
	for _, list := range []string{"kernel+initrd", "kernel+initrd,tar", "kernel+initrd,tar,tar-kernel-initrd,docker"} {
		t.Run(list, func(t *testing.T) {
			out := t.TempDir()
			yml := writeYAML(t, "kernel:\n  image: kiln/test-kernel:v1\ninit:\n  - kiln/test-init:v1\n")
			res, err := buildWithin(t, time.Minute, context.Background(),
				Options{Files: []string{yml}, Dir: out, Cache: seedCache(t), Formats: formats(t, list)})
			if err != nil {
				t.Fatal(err)
			}
			prefix := filepath.Join(out, "system")
			b, err := os.ReadFile(CmdlineFile(prefix))
			if err != nil || len(b) != 0 {
				t.Errorf("cmdline file = %q, %v; want an empty file", b, err)
			}
			if b, _ := os.ReadFile(KernelFile(prefix)); string(b) != "KERNEL-IMAGE-BYTES" {
				t.Errorf("kernel = %q", b)
			}
			if strings.Contains(list, ",tar,") || strings.HasSuffix(list, ",tar") {
				_, bodies := listTar(t, TarFile(prefix))
				if c, ok := bodies["boot/cmdline"]; !ok || c != "" {
					t.Errorf("tar: boot/cmdline = %q (present %v), want empty", c, ok)
				}
			}
			if strings.Contains(list, "tar-kernel-initrd") {
				_, bodies := listTar(t, InitrdTarFile(prefix))
				if c, ok := bodies["cmdline"]; !ok || c != "" {
					t.Errorf("tar-kernel-initrd: cmdline = %q (present %v), want empty", c, ok)
				}
			}
			if len(res.Outputs) == 0 || len(leftovers(t, out)) > 0 {
				t.Errorf("outputs %v, leftovers %v", res.Outputs, leftovers(t, out))
			}
		})
	}
}

// An empty kernel binary cannot boot: a clear error, and nothing written.
func TestEmptyKernelBinary(t *testing.T) {
	cache := seedCache(t)
	if _, err := cache.WriteImage("kiln/empty-kernel:v1", testImage(t, "amd64", v1.Config{},
		[]file{reg("kernel", ""), reg("kernel.tar", string(tarOf(dir("lib"))))})); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	yml := writeYAML(t, "kernel:\n  image: kiln/empty-kernel:v1\n  cmdline: console=ttyS0\n")
	_, err := buildWithin(t, time.Minute, context.Background(),
		Options{Files: []string{yml}, Dir: out, Cache: cache, Formats: formats(t, "kernel+initrd,tar")})
	if err == nil || !strings.Contains(err.Error(), "/kernel is empty") {
		t.Fatalf("error = %v, want one saying the kernel is empty", err)
	}
	assertEmpty(t, out)
}

// recorder keeps the entries a tree writes.
type recorder struct{ entries []*tar.Header }

func (r *recorder) WriteEntry(e archive.Entry, body io.Reader) error {
	h := *e.Header
	r.entries = append(r.entries, &h)
	if body != nil {
		_, err := io.Copy(io.Discard, body)
		return err
	}
	return nil
}
func (r *recorder) Close() error { return nil }

// assertSafeStream fails when an entry lies below a symlink or another non-directory written
// before it: what `cpio -idm` or Python's tarfile would follow outside their folder.
func assertSafeStream(t *testing.T, hdrs []*tar.Header) {
	t.Helper()
	kind := map[string]byte{}
	for _, h := range hdrs {
		name := strings.Trim(h.Name, "/")
		for p := path.Dir(name); p != "."; p = path.Dir(p) {
			if k, ok := kind[p]; ok && k != tar.TypeDir {
				t.Errorf("entry %s lies below %s, a %s", name, p, typeName(k))
			}
		}
		if k, ok := kind[name]; ok && (k == tar.TypeDir) != (h.Typeflag == tar.TypeDir) {
			t.Errorf("%s is both a %s and a %s in the stream", name, typeName(k), typeName(h.Typeflag))
		}
		kind[name] = h.Typeflag
	}
}

// TestTreeSymlinkParent writes a symlink and a directory with a file below it at the same
// path, from two parts, in both orders: both fail, and the stream never holds an entry below
// the symlink.
func TestTreeSymlinkParent(t *testing.T) {
	link := func(tr *tree) error {
		tr.setOwner("part L")
		return tr.WriteEntry(archive.Entry{Header: &tar.Header{Typeflag: tar.TypeSymlink, Name: "x", Linkname: "/etc"}}, nil)
	}
	below := func(tr *tree) error {
		tr.setOwner("part D")
		if err := tr.WriteEntry(archive.Entry{Header: &tar.Header{Typeflag: tar.TypeDir, Name: "x", Mode: 0o755}}, nil); err != nil {
			return err
		}
		return tr.WriteEntry(regular("x/passwd", 0o644, 4), strings.NewReader("evil"))
	}
	implicit := func(tr *tree) error { // no directory entry: the tree would synthesise x
		tr.setOwner("part F")
		return tr.WriteEntry(regular("x/passwd", 0o644, 4), strings.NewReader("evil"))
	}
	file := func(tr *tree) error {
		tr.setOwner("part R")
		return tr.WriteEntry(regular("x", 0o644, 1), strings.NewReader("r"))
	}
	cases := []struct {
		name          string
		first, second func(*tree) error
		want          string
	}{
		{"symlink then directory", link, below, "/x is a directory here but a symlink in part L"},
		{"symlink then file below", link, implicit, "/x/passwd lies below /x, which is a symlink in part L"},
		{"file then file below", file, implicit, "/x/passwd lies below /x, which is a file in part R"},
		{"directory then symlink", below, link, "/x is a symlink here but a directory in part D"},
		{"directory then file", below, file, "/x is a file here but a directory in part D"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			tr := newTree(context.Background(), rec, nil)
			if err := tc.first(tr); err != nil {
				t.Fatal(err)
			}
			err := tc.second(tr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
			assertSafeStream(t, rec.entries)
		})
	}
	// A non-directory may replace another one: nothing can lie below either.
	rec := &recorder{}
	var warned []string
	tr := newTree(context.Background(), rec, func(f string, a ...any) { warned = append(warned, f) })
	if err := file(tr); err != nil {
		t.Fatal(err)
	}
	if err := link(tr); err != nil {
		t.Errorf("a symlink replacing a file: %v", err)
	}
	if len(warned) != 1 {
		t.Errorf("warnings %v, want one for the overwrite", warned)
	}
	assertSafeStream(t, rec.entries)
}

// TestBuildSymlinkParent checks the rule through whole builds, for each part a symlink can
// come from (an init image, the kernel's kernel.tar, the files section), in both orders: the
// build fails naming both parts, writes no file, and the stream it sent to standard output
// never holds an entry below the symlink.
func TestBuildSymlinkParent(t *testing.T) {
	cache := seedCache(t)
	modules := func(files ...file) string { return string(tarOf(files...)) }
	images := map[string]v1.Image{
		"kiln/link-init:v1":  testImage(t, "amd64", v1.Config{}, []file{sym("x", "/etc")}),
		"kiln/below-init:v1": testImage(t, "amd64", v1.Config{}, []file{dir("x"), reg("x/passwd", "evil\n")}),
		"kiln/link-kernel:v1": testImage(t, "amd64", v1.Config{},
			[]file{reg("kernel", "K"), reg("kernel.tar", modules(sym("x", "/etc")))}),
		"kiln/below-kernel:v1": testImage(t, "amd64", v1.Config{},
			[]file{reg("kernel", "K"), reg("kernel.tar", modules(dir("x"), reg("x/passwd", "evil\n")))}),
		// One tar holding both: the symlink and, after it, a file below it.
		"kiln/self-kernel:v1": testImage(t, "amd64", v1.Config{},
			[]file{reg("kernel", "K"), reg("kernel.tar", modules(sym("x", "/etc"), reg("x/passwd", "evil\n")))}),
	}
	for ref, img := range images {
		if _, err := cache.WriteImage(ref, img); err != nil {
			t.Fatal(err)
		}
	}
	const (
		filesLink  = "files:\n  - path: x\n    symlink: /etc\n"
		filesBelow = "files:\n  - path: x/passwd\n    contents: evil\n"
	)
	cases := []struct{ name, yaml, want string }{
		{"init symlink, then init file below", "init:\n  - kiln/link-init:v1\n  - kiln/below-init:v1\n",
			"init image kiln/below-init:v1: /x is a directory here but a symlink in init image kiln/link-init:v1"},
		{"init file below, then init symlink", "init:\n  - kiln/below-init:v1\n  - kiln/link-init:v1\n",
			"init image kiln/link-init:v1: /x is a symlink here but a directory in init image kiln/below-init:v1"},
		{"kernel.tar symlink, then init file below", "kernel:\n  image: kiln/link-kernel:v1\ninit:\n  - kiln/below-init:v1\n",
			"/x is a directory here but a symlink in kernel kiln/link-kernel:v1"},
		{"kernel.tar file below, then init symlink", "kernel:\n  image: kiln/below-kernel:v1\ninit:\n  - kiln/link-init:v1\n",
			"/x is a symlink here but a directory in kernel kiln/below-kernel:v1"},
		{"kernel.tar symlink and file below", "kernel:\n  image: kiln/self-kernel:v1\n",
			"/x/passwd lies below /x, which is a symlink in kernel kiln/self-kernel:v1"},
		{"files symlink, then files file below", filesLink + "  - path: x/passwd\n    contents: evil\n",
			"files entry x/passwd: /x/passwd lies below /x, which is a symlink in files entry x"},
		{"init symlink, then files file below", "init:\n  - kiln/link-init:v1\n" + filesBelow,
			"/x/passwd lies below /x, which is a symlink in init image kiln/link-init:v1"},
		{"init file below, then files symlink", "init:\n  - kiln/below-init:v1\n" + filesLink,
			"files entry x: /x is a symlink here but a directory in init image kiln/below-init:v1"},
		{"kernel.tar symlink, then files file below", "kernel:\n  image: kiln/link-kernel:v1\n" + filesBelow,
			"/x/passwd lies below /x, which is a symlink in kernel kiln/link-kernel:v1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Every format into a folder: nothing may be left there.
			out := t.TempDir()
			yml := writeYAML(t, tc.yaml)
			list := "tar,docker"
			if strings.Contains(tc.yaml, "kernel:") {
				list = "kernel+initrd,tar,tar-kernel-initrd,docker"
			}
			_, err := buildWithin(t, time.Minute, context.Background(),
				Options{Files: []string{yml}, Dir: out, Cache: cache, Formats: formats(t, list)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
			assertEmpty(t, out)

			// The system stream itself, as every format receives it: whatever went out before
			// the error is safe to unpack.
			hdrs, err := streamSystem(t, cache, yml)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("streaming: error = %v", err)
			}
			if len(hdrs) == 0 {
				t.Fatal("nothing was streamed before the error")
			}
			assertSafeStream(t, hdrs)
		})
	}
}

// streamSystem runs a build's pipeline up to the system stream and records that stream.
func streamSystem(t *testing.T, cache *ocicache.Cache, yml string) ([]*tar.Header, error) {
	t.Helper()
	b, err := newBuilder(Options{Files: []string{yml}, Cache: cache, Arch: "amd64", Formats: formats(t, "tar")})
	if err != nil {
		t.Fatal(err)
	}
	sys, err := b.load()
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.resolveAll(context.Background(), sys, &lockFile{Images: map[string]v1.Hash{}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	err = b.writeSystem(context.Background(), sys, res, rec)
	return rec.entries, err
}

// TestNonRegularSources: a named pipe as a files source, as the YAML file or as the lock file
// fails at once with an error naming it, where reading it used to block for ever.
func TestNonRegularSources(t *testing.T) {
	tmp := t.TempDir()
	fifo := filepath.Join(tmp, "pipe")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	cache := seedCache(t)
	tarOnly := formats(t, "tar")

	t.Run("files source", func(t *testing.T) {
		out := t.TempDir()
		yml := writeYAML(t, "files:\n  - path: etc/x\n    source: "+fifo+"\n")
		_, err := buildWithin(t, 10*time.Second, context.Background(), Options{Files: []string{yml}, Dir: out, Cache: cache, Formats: tarOnly})
		if err == nil || !strings.Contains(err.Error(), fifo+" is a named pipe (FIFO), not a regular file") {
			t.Fatalf("error = %v", err)
		}
		assertEmpty(t, out)
	})
	t.Run("optional files source", func(t *testing.T) {
		out := t.TempDir()
		yml := writeYAML(t, "files:\n  - path: etc/x\n    source: "+fifo+"\n    optional: true\n")
		_, err := buildWithin(t, 10*time.Second, context.Background(), Options{Files: []string{yml}, Dir: out, Cache: cache, Formats: tarOnly})
		if err == nil || !strings.Contains(err.Error(), "named pipe") {
			t.Fatalf("error = %v (optional covers a missing file, not a pipe)", err)
		}
	})
	t.Run("device source", func(t *testing.T) {
		out := t.TempDir()
		yml := writeYAML(t, "files:\n  - path: etc/x\n    source: /dev/zero\n")
		_, err := buildWithin(t, 10*time.Second, context.Background(), Options{Files: []string{yml}, Dir: out, Cache: cache, Formats: tarOnly})
		if err == nil || !strings.Contains(err.Error(), "/dev/zero is a character device") {
			t.Fatalf("error = %v", err)
		}
		assertEmpty(t, out)
	})
	t.Run("yaml file", func(t *testing.T) {
		out := t.TempDir()
		_, err := buildWithin(t, 10*time.Second, context.Background(), Options{Files: []string{fifo}, Dir: out, Cache: cache, Formats: tarOnly})
		if err == nil || !strings.Contains(err.Error(), fifo+" is a named pipe") {
			t.Fatalf("error = %v", err)
		}
		assertEmpty(t, out)
	})
	t.Run("lock file", func(t *testing.T) {
		out := t.TempDir()
		if err := syscall.Mkfifo(LockFile(filepath.Join(out, "system")), 0o644); err != nil {
			t.Fatal(err)
		}
		yml := writeYAML(t, "init:\n  - kiln/test-init:v1\n")
		_, err := buildWithin(t, 10*time.Second, context.Background(), Options{Files: []string{yml}, Dir: out, Cache: cache, Formats: tarOnly})
		if err == nil || !strings.Contains(err.Error(), "system.lock.yml is a named pipe") {
			t.Fatalf("error = %v", err)
		}
	})
}

// bigSource makes a sparse file of size bytes: no disk used, and reading it takes a while.
func bigSource(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// TestCancelBuild cancels builds at several points: the error wraps context.Canceled, it
// comes promptly (not after the rest of a 3 GiB file), and nothing is left behind.
func TestCancelBuild(t *testing.T) {
	cache := seedCache(t)
	big := bigSource(t, 3<<30) // newc holds at most 4 GiB - 1
	yml := writeYAML(t, systemYAML+"  - path: big\n    source: "+big+"\n")

	t.Run("while adding the init image", func(t *testing.T) {
		out := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		log := logHook{on: "adding init", do: cancel}
		_, err := buildWithin(t, 30*time.Second, ctx, Options{Files: []string{yml}, Dir: out, Cache: cache,
			Formats: formats(t, "kernel+initrd,tar,tar-kernel-initrd,docker"), Log: &log})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error = %v, want context.Canceled", err)
		}
		assertEmpty(t, out)
	})
	t.Run("in the middle of a large file", func(t *testing.T) {
		out := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Cancel once the tar being written holds a few MiB of the large file.
		go func() {
			for ctx.Err() == nil {
				tmps, _ := filepath.Glob(filepath.Join(out, atomicfile.Prefix+"*"))
				for _, l := range tmps {
					if fi, err := os.Stat(l); err == nil && fi.Size() > 4<<20 {
						cancel()
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
		start := time.Now()
		_, err := buildWithin(t, 60*time.Second, ctx, Options{Files: []string{yml}, Dir: out, Cache: cache,
			Formats: formats(t, "kernel+initrd,tar")})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error = %v, want context.Canceled", err)
		}
		t.Logf("cancelled after %v", time.Since(start))
		assertEmpty(t, out)
	})
	t.Run("streaming to standard output", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := &cancelAfter{n: 8 << 20, cancel: cancel}
		_, err := buildWithin(t, 60*time.Second, ctx, Options{Files: []string{yml}, Dir: t.TempDir(), Cache: cache,
			Formats: formats(t, "tar"), Output: "-", Stdout: w})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error = %v, want context.Canceled", err)
		}
		if w.got > 64<<20 {
			t.Errorf("%d bytes were written after the cancel, want it to stop within one buffer", w.got-w.n)
		}
	})
}

// logHook calls do once when a log line contains on.
type logHook struct {
	on   string
	do   func()
	done bool
}

func (l *logHook) Write(p []byte) (int, error) {
	if !l.done && bytes.Contains(p, []byte(l.on)) {
		l.done = true
		l.do()
	}
	return len(p), nil
}

// cancelAfter cancels once n bytes were written to it, and counts what comes after.
type cancelAfter struct {
	n, got int64
	cancel func()
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.got += int64(len(p))
	if c.got >= c.n {
		c.cancel()
	}
	return len(p), nil
}

// TestCleanStaleOnBuild: temporary files a killed build left in the output folder are
// removed (and counted) by the next build there; a live writer's file is kept.
func TestCleanStaleOnBuild(t *testing.T) {
	out := t.TempDir()
	// A killed writer's file: its lock died with it, which a closed descriptor also gives.
	stale := filepath.Join(out, atomicfile.Prefix+"system.tar-123")
	if err := os.WriteFile(stale, bytes.Repeat([]byte("x"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	live, err := atomicfile.Create(filepath.Join(out, "other.tar"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()
	var log bytes.Buffer
	yml := writeYAML(t, "init:\n  - kiln/test-init:v1\n")
	if _, err := buildWithin(t, time.Minute, context.Background(), Options{Files: []string{yml}, Dir: out, Cache: seedCache(t),
		Formats: formats(t, "tar"), Log: &log}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "removed 1 stale temporary file(s) (1000 bytes) in "+out) {
		t.Errorf("log lacks the clean-up:\n%s", log.String())
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("the stale temporary file is still there")
	}
	if _, err := os.Stat(live.Name()); err != nil {
		t.Errorf("a live writer's temporary file was removed: %v", err)
	}
}
