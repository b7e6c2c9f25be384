package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/assemble"
)

func TestCLIExitCodesAndMessages(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("services:\n  - name: x\n    image: y\n    capabilities: [CAP_NOPE]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yml")
	if err := os.WriteFile(good, []byte("init:\n  - kiln/nothing:v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KILN_CACHE", filepath.Join(dir, "cache"))
	systems := filepath.Join(dir, "out")
	for _, f := range []string{"sys-kernel", "sys-initrd.img", "sys-cmdline"} {
		if err := os.MkdirAll(systems, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(systems, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Commands:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"build"}, 2, "no YAML file given"},
		{[]string{"build", "-format", "floppy", good}, 2, `unknown output format "floppy"; expected one of kernel+initrd, tar`},
		{[]string{"build", "-arch", "s390x", "-format", "raw-efi", good}, 1, `format raw-efi boots amd64 and arm64 only, not s390x`},
		{[]string{"build", "-format", "tar,tar", good}, 2, `output format "tar" given twice`},
		{[]string{"validate", bad}, 1, "bad.yml:4:20: services[0].capabilities[0]: unknown capability"},
		{[]string{"validate", good}, 0, ""},
		{[]string{"build", "-pull=false", "-dir", dir, good}, 1, "image kiln/nothing:v1: not found in the cache"},
		{[]string{"build", "-arch", "riscv64", good}, 1, `unsupported architecture "riscv64"`},
		{[]string{"cache", "frob"}, 2, `unknown cache command "frob"`},
		{[]string{"cache", "rm"}, 2, "no reference given"},
		{[]string{"cache", "export", "kiln/x:v1"}, 2, "-o FILE is required"},
		{[]string{"serve"}, 2, "give one folder of systems"},
		{[]string{"serve", dir}, 1, "no system in " + dir + ": kiln build -format kernel+initrd"},
		{[]string{"serve", filepath.Join(dir, "nope")}, 1, "not a folder of systems"},
		{[]string{"serve", "-url", "https://node:8080", systems}, 2, "-url https://node:8080: want http://HOST:PORT"},
		{[]string{"serve", "-system", "other", systems}, 1, "-system other: not in " + systems + " (it has sys)"},
		{[]string{"serve", "-machines", filepath.Join(dir, "nope"), systems}, 1, "-machines: stat " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{[]string{"builder", "certs", "-trust", bad}, 2, "-trust goes into the node configuration: give -node-config DIR too"},
		{[]string{"builder", "certs", "-node-config", filepath.Join(dir, "node"), "-trust", bad}, 1, "-trust " + bad + ": no PEM certificate in it"},
		{[]string{"run", "qemu", "-netboot", "http://10.0.2.2:8080/boot.ipxe", "out/sys"}, 2, "the kernel comes from the network"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stderr)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr.String())
			}
		})
	}
	if _, err := os.Stat(assemble.LockFile(filepath.Join(dir, "good"))); err == nil {
		t.Error("a failed build wrote a lock file")
	}
}

func TestInterleaveFlagsAfterFiles(t *testing.T) {
	fs := newFlags("build", "", "")
	format := fs.String("format", "", "")
	dry := fs.Bool("dry-run", false, "")
	if err := parseFlags(fs, []string{"a.yml", "-format", "tar", "b.yml", "-dry-run"}); err != nil {
		t.Fatal(err)
	}
	if *format != "tar" || !*dry || strings.Join(fs.Args(), ",") != "a.yml,b.yml" {
		t.Errorf("format=%q dry=%v args=%v", *format, *dry, fs.Args())
	}
}
