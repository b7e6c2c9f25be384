package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/internal/qemu/qemutest"
	"github.com/kiln-os/kiln/internal/testenv"
)

func TestRunQemuArguments(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "sys")
	if err := os.WriteFile(prefix+"-kernel", []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		args  []string
		usage bool   // a usageError
		want  string // part of the message
	}{
		{"nothing to boot", nil, true, "nothing to boot"},
		{"three arguments", []string{"a", "b", "c"}, true, "3 arguments"},
		{"bad publish", []string{"-publish", "80", prefix}, true, "want [ADDR:]HOST:GUEST"},
		{"bad disk", []string{"-disk", "x.img,format=vmdk", prefix}, true, `format "vmdk"`},
		{"bad cpus", []string{"-cpus", "0", prefix}, true, "-cpus 0"},
		{"no such prefix", []string{filepath.Join(dir, "other")}, false, "other-kernel: give the output name"},
		{"prefix without initrd", []string{prefix}, false, "sys-initrd.img does not"},
		{"kernel without initrd file", []string{prefix + "-kernel", filepath.Join(dir, "nope")}, false, "initrd:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := runQemu(context.Background(), tc.args, nil, &bytes.Buffer{}, &bytes.Buffer{})
			var ue usageError
			if err == nil || errors.As(err, &ue) != tc.usage || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("runQemu(%q) = %v; want usage error %v containing %q", tc.args, err, tc.usage, tc.want)
			}
		})
	}
	if err := runRun(context.Background(), []string{"vbox"}); err == nil || !strings.Contains(err.Error(), `unknown machine "vbox"`) {
		t.Errorf("kiln run vbox: %v", err)
	}
}

// TestRunQemuBoots boots `kiln build`-style outputs (NAME-kernel, NAME-initrd.img,
// NAME-cmdline) for arm64 from this host, the architecture taken from the kernel: the
// console reaches standard output, the command line file is used, and a guest power-off
// is a clean exit.
func TestRunQemuBoots(t *testing.T) {
	testenv.Short(t, "boots a VM")
	const marker = "kiln run test marker"
	prefix := filepath.Join(t.TempDir(), "sys")
	link := func(src, dst string) {
		t.Helper()
		if err := os.Symlink(src, dst); err != nil {
			t.Fatal(err)
		}
	}
	link(qemutest.Kernel(t, "arm64"), prefix+"-kernel")
	link(qemutest.MarkerInitrd(t, "arm64", marker), prefix+"-initrd.img")
	if err := os.WriteFile(prefix+"-cmdline", []byte("quiet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := runQemu(t.Context(), []string{"-v", "-net", "-cmdline-append", "loglevel=3", prefix}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatalf("runQemu: %v\nstderr:\n%s\nconsole:\n%s", err, &stderr, &stdout)
	}
	if !strings.Contains(stdout.String(), marker) {
		t.Errorf("the console on standard output lacks the marker:\n%s", &stdout)
	}
	if s := stderr.String(); !strings.Contains(s, "qemu-system-aarch64") || !strings.Contains(s, "'quiet loglevel=3 console=ttyAMA0 panic=-1'") {
		t.Errorf("-v did not print the command line with the cmdline file and -cmdline-append:\n%s", s)
	}
}

// TestRunQemuExitCodes: a kernel panic (a kernel with no initrd) and a QEMU that refuses to
// start end kiln with code 1, through exitCodeError.
func TestRunQemuExitCodes(t *testing.T) {
	testenv.Short(t, "boots a VM")
	kernel := qemutest.Kernel(t, "amd64")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"kernel panic", []string{"-cmdline-append", "quiet", kernel}, "the guest kernel panicked: "},
		{"qemu refuses", []string{"-mem", "999999999G", kernel}, "qemu exited with status 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runQemu(t.Context(), tc.args, nil, &stdout, &stderr)
			var ec exitCodeError
			if !errors.As(err, &ec) || ec.ExitCode() != 1 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("runQemu = %v; want exit code 1 and %q\nstderr:\n%s", err, tc.want, &stderr)
			}
		})
	}
}

// Media are known by the names kiln build gives them, and "-efi"/"-bios" pick the firmware.
func TestMediumOf(t *testing.T) {
	for _, tc := range []struct {
		path, kind, format, firmware string
	}{
		{"out/sys.efi", "efi", "", "efi"},
		{"out/sys-efi.img", "disk", "raw", "efi"},
		{"out/sys-bios.img", "disk", "raw", "bios"},
		{"out/sys-efi.qcow2", "disk", "qcow2", "efi"},
		{"out/sys.iso", "cdrom", "", "bios"},
		{"out/sys-efi.iso", "cdrom", "", "efi"},
		{"out/sys-efi-initrd.iso", "cdrom", "", "efi"},
		{"out/sys.vhd", "disk", "vpc", "efi"},
		{"out/sys-dynamic.vhd", "disk", "vpc", "efi"},
		{"out/sys.vmdk", "disk", "vmdk", "efi"},
		{"out/sys-aws.raw", "disk", "raw", "efi"},
		{"out/other.img", "disk", "raw", ""},
		{"out/sys-kernel", "", "", ""},
	} {
		m, fw := mediumOf(tc.path)
		if tc.kind == "" {
			if m != nil {
				t.Errorf("%s: a medium (%+v)", tc.path, *m)
			}
			continue
		}
		if m == nil || m.Kind != tc.kind || m.Format != tc.format || fw != tc.firmware || m.Path != tc.path {
			t.Errorf("%s: %+v, %q; want %s %s %q", tc.path, m, fw, tc.kind, tc.format, tc.firmware)
		}
	}
}
