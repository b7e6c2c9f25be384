package e2e

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-os/kiln/assemble"
	"github.com/kiln-os/kiln/internal/qemu"
)

// TestMediaBoots builds images/minimal.yml (with the console on the serial port) as the
// bootable media kiln writes, for amd64 and for arm64's EFI, twice (the same bytes), and boots
// each kind through its firmware: OVMF for the raw and qcow2 EFI disks and the EFI ISO (each
// starts the UKI), SeaBIOS for GRUB's raw disk and the ISOLINUX ISO, AAVMF for arm64's raw EFI
// disk (and, in make test-heavy, s390x's iso-ipl through its firmware's IPL). Each must reach "all services
// up", power off from its console shell and show no failure anywhere on its console.
func TestMediaBoots(t *testing.T) {
	w := setup(t)
	w.pkgBuild(t, append(minimalPackages, "tools/bootloaders")...)
	out := t.TempDir()
	amd64 := "uki,raw-efi,qcow2-efi,iso-efi,iso-bios,raw-bios"
	build := func(dir, arch, formats string) {
		w.must(t, w.kiln, "build", "-q", "-arch", arch, "-format", formats, "-dir", dir, "-name", "media-"+arch,
			"images/minimal.yml", "internal/e2e/testdata/console-"+arch+".yml")
	}
	build(out, "amd64", amd64)
	build(out, "arm64", "raw-efi")
	if slices.Contains(e2eArches, "s390x") { // make test-heavy
		build(out, "s390x", "iso-ipl")
	}

	// Built again from the first build's lock: the same bytes, every format.
	again := t.TempDir()
	lock, err := os.ReadFile(filepath.Join(out, "media-amd64.lock.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(again, "media-amd64.lock.yml"), lock, 0o644); err != nil {
		t.Fatal(err)
	}
	build(again, "amd64", amd64)
	p := "media-amd64"
	files := []string{assemble.UKIFile(p), assemble.RawEFIFile(p), assemble.QCOW2EFIFile(p), assemble.ISOEFIFile(p), assemble.ISOBIOSFile(p),
		assemble.RawBIOSFile(p)}
	if err := sameFiles(out, again, files); err != nil {
		t.Fatalf("the media built twice: %v", err)
	}

	boots := []struct {
		file, arch, firmware string
		medium               qemu.Medium
	}{
		// The UKI is what raw-efi, qcow2-efi and iso-efi start: booted through them.
		{assemble.RawEFIFile(p), "amd64", "efi", qemu.Medium{Kind: "disk", Format: "raw"}},
		{assemble.RawBIOSFile(p), "amd64", "bios", qemu.Medium{Kind: "disk", Format: "raw"}},
		{assemble.QCOW2EFIFile(p), "amd64", "efi", qemu.Medium{Kind: "disk", Format: "qcow2"}},
		{assemble.ISOEFIFile(p), "amd64", "efi", qemu.Medium{Kind: "cdrom"}},
		{assemble.ISOBIOSFile(p), "amd64", "bios", qemu.Medium{Kind: "cdrom"}},
		{assemble.RawEFIFile("media-arm64"), "arm64", "efi", qemu.Medium{Kind: "disk", Format: "raw"}},
	}
	if slices.Contains(e2eArches, "s390x") {
		boots = append(boots, struct {
			file, arch, firmware string
			medium               qemu.Medium
		}{assemble.ISOIPLFile("media-s390x"), "s390x", "bios", qemu.Medium{Kind: "cdrom"}})
	}
	for _, b := range boots {
		t.Run(b.file, func(t *testing.T) {
			t.Parallel()
			m := b.medium
			m.Path = filepath.Join(out, b.file)
			bootMedium(t, m, b.arch, b.firmware)
		})
	}
}

// bootMedium boots a medium to "all services up", powers it off from the console shell and
// checks the whole console.
func bootMedium(t *testing.T, m qemu.Medium, arch, firmware string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	t.Cleanup(cancel)
	log, err := os.Create(m.Path + "-console.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	stdin, typer := io.Pipe()
	t.Cleanup(func() { typer.Close() })
	start := time.Now()
	vm, err := qemu.Start(ctx, qemu.Config{Arch: arch, Medium: &m, Firmware: firmware, Memory: "1024M", Console: log, Stdin: stdin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Kill)
	want := []string{"kiln-init: onboot hello-onboot exited 0", "kiln-init: all services up"}
	for _, line := range want {
		if _, err := vm.WaitFor(ctx, line, 2*markerTimeout); err != nil {
			t.Fatalf("%s (%s, %s): %v\n(the console is in %s)", filepath.Base(m.Path), arch, firmware, err, log.Name())
		}
	}
	t.Logf("%s: all services up after %s", filepath.Base(m.Path), time.Since(start).Round(100*time.Millisecond))
	typeUntil(t, vm, typer, "kill -TERM 1", "kiln-init: powering off")
	waitExit(t, vm)
	if err := vm.Check(append(want, "kiln-init: powering off")...); err != nil {
		t.Errorf("%s: %v", filepath.Base(m.Path), strings.TrimSpace(err.Error()))
	}
}
