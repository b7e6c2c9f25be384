package assemble

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/kiln-os/kiln/assemble/ipl"
	"github.com/kiln-os/kiln/assemble/uki/ukitest"
	"github.com/kiln-os/kiln/internal/archive"
	"github.com/kiln-os/kiln/internal/ocicache"
	"github.com/kiln-os/kiln/internal/testenv"
)

const testBootloaders = "kiln/test-bootloaders:v1"

// mediaCache is seedCache with a boot loaders image whose EFI stub is a stand-in.
func mediaCache(t *testing.T) *ocicache.Cache {
	t.Helper()
	c := seedCache(t)
	img := testImage(t, "amd64", v1Config(), []file{dir("efi"), reg("efi/linux.efi.stub", string(ukitest.Stub(pe.IMAGE_FILE_MACHINE_AMD64, false))),
		reg("efi/systemd-boot.efi", "BOOT"), dir("bios"), reg("bios/isolinux.bin", strings.Repeat("I", 4096)),
		reg("bios/ldlinux.c32", "LDLINUX"), reg("bios/isohdpfx.bin", strings.Repeat("\x90", 432)),
		dir("bios/grub"), reg("bios/grub/boot.img", strings.Repeat("B", 512)), reg("bios/grub/core.img", strings.Repeat("C", 1500))})
	if _, err := c.WriteImage(testBootloaders, img); err != nil {
		t.Fatal(err)
	}
	return c
}

func mediaFormats(t *testing.T, list string) []Format {
	t.Helper()
	f, err := LookupFormats(list)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// The UKI holds the kernel, the initramfs and the command line that kernel+initrd writes,
// the os-release of the system, and the raw EFI disk holds that UKI where firmware looks,
// on a GPT disk and a FAT32 file system that their checkers find clean. Two builds give the
// same bytes.
func TestMediaEFI(t *testing.T) {
	cache := mediaCache(t)
	out := t.TempDir()
	opt := Options{Files: []string{writeYAML(t, systemYAML)}, Dir: out, Cache: cache, Bootloaders: testBootloaders,
		Formats: mediaFormats(t, "kernel+initrd,uki,raw-efi,qcow2-efi,iso-efi,iso-bios,vhd,dynamic-vhd,vmdk,gcp,aws,raw-bios,qcow2-bios,iso-efi-initrd"), Epoch: time.Unix(1700000000, 0)}
	res, err := build(t, opt)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(out, "system")
	want := []string{KernelFile(p), CmdlineFile(p), InitrdFile(p), UKIFile(p), RawEFIFile(p), QCOW2EFIFile(p), ISOEFIFile(p), ISOBIOSFile(p),
		VHDFile(p), DynamicVHDFile(p), VMDKFile(p), GCPFile(p), AWSFile(p), RawBIOSFile(p), QCOW2BIOSFile(p), ISOEFIInitrdFile(p)}
	if strings.Join(res.Outputs, " ") != strings.Join(want, " ") {
		t.Errorf("outputs %q, want %q", res.Outputs, want)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f, err := pe.Open(UKIFile(p))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, want := range map[string][]byte{".linux": read(KernelFile(p)), ".initrd": read(InitrdFile(p)),
		".cmdline": bytes.TrimSpace(read(CmdlineFile(p))), ".osrel": []byte("ID=kiln-2\n")} {
		s := f.Section(name)
		if s == nil {
			t.Errorf("no %s section", name)
			continue
		}
		got, err := io.ReadAll(io.NewSectionReader(s, 0, int64(s.VirtualSize)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %q..., want %q...", name, got[:min(len(got), 16)], want[:min(len(want), 16)])
		}
	}
	lock := string(read(res.LockFile))
	if !strings.Contains(lock, testBootloaders) {
		t.Errorf("the lock file does not pin the boot loaders:\n%s", lock)
	}

	// Again, into another folder: the same bytes.
	again := t.TempDir()
	opt.Dir = again
	if _, err := build(t, opt); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{UKIFile("system"), RawEFIFile("system"), QCOW2EFIFile("system"), ISOEFIFile("system"), ISOBIOSFile("system"),
		VHDFile("system"), DynamicVHDFile("system"), VMDKFile("system"), GCPFile("system"), AWSFile("system"),
		RawBIOSFile("system"), QCOW2BIOSFile("system"), ISOEFIInitrdFile("system")} {
		if !bytes.Equal(read(filepath.Join(out, name)), read(filepath.Join(again, name))) {
			t.Errorf("%s differs between two builds", name)
		}
	}

	disk := RawEFIFile(p)
	if st, err := os.Stat(disk); err != nil || st.Size()%(1<<20) != 0 || st.Size() < 64<<20 {
		t.Fatalf("disk: %v %v", st, err)
	}
	testenv.NeedTool(t, "sgdisk", "gdisk")
	testenv.NeedTool(t, "mcopy", "mtools")
	testenv.NeedTool(t, "fsck.fat", "dosfstools")
	if b, err := exec.Command("sgdisk", "-v", disk).CombinedOutput(); err != nil || !strings.Contains(string(b), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, b)
	}
	// The partition, cut out, is a clean FAT32 volume holding the UKI.
	esp := filepath.Join(t.TempDir(), "esp.img")
	whole := read(disk)
	start := int64(2048 * 512)
	size := int64(len(whole)) - start - 34*512
	b, _ := exec.Command("sgdisk", "-i", "1", disk).CombinedOutput()
	if !strings.Contains(string(b), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B") || !strings.Contains(string(b), "First sector: 2048") {
		t.Errorf("partition 1 is not the EFI system partition at 1 MiB:\n%s", b)
	}
	if err := os.WriteFile(esp, whole[start:start+size], 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("fsck.fat", "-n", "-v", esp).CombinedOutput(); err != nil || !strings.Contains(string(b), "32 bit entries") {
		t.Errorf("fsck.fat: %v\n%s", err, b)
	}
	testenv.NeedTool(t, "qemu-img", "qemu-utils")
	if b, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", disk, QCOW2EFIFile(p)).CombinedOutput(); err != nil {
		t.Errorf("the qcow2 image is not the raw disk: %v\n%s", err, b)
	}
	if b, err := exec.Command("qemu-img", "check", QCOW2EFIFile(p)).CombinedOutput(); err != nil {
		t.Errorf("qemu-img check: %v\n%s", err, b)
	}
	// The cloud formats hold the same disk (GCP's grown to a GiB: its backup GPT moves).
	for _, c := range []struct{ file, format string }{{VHDFile(p), "vpc"}, {DynamicVHDFile(p), "vpc"}, {VMDKFile(p), "vmdk"}, {AWSFile(p), "raw"}} {
		if b, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", c.format, disk, c.file).CombinedOutput(); err != nil {
			t.Errorf("%s is not the raw disk: %v\n%s", c.file, err, b)
		}
	}
	// raw-bios: GRUB's boot code in the MBR, told where the core is (sector 2048), the core in
	// partition 1 with its block list, and GRUB's configuration on partition 2.
	disk2 := read(RawBIOSFile(p))
	le := binary.LittleEndian
	if le.Uint64(disk2[0x5c:]) != 2048 || disk2[0x64] != 0xFF || disk2[0x66] != 0x90 || disk2[0x1be] != 0x80 || disk2[0x1c2] != 0xEE {
		t.Errorf("raw-bios MBR: %x ... %x", disk2[0x5c:0x68], disk2[0x1be:0x1ce])
	}
	core := disk2[2048*512:]
	if le.Uint64(core[0x1f4:]) != 2049 || le.Uint16(core[0x1fc:]) != 2 || le.Uint16(core[0x1fe:]) != 0x820 || core[512] != 'C' {
		t.Errorf("raw-bios core block list: %x", core[0x1e8:0x200])
	}
	if b, err := exec.Command("sgdisk", "-v", RawBIOSFile(p)).CombinedOutput(); err != nil || !strings.Contains(string(b), "No problems found") {
		t.Errorf("sgdisk -v raw-bios: %v\n%s", err, b)
	}
	if b, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", RawBIOSFile(p), QCOW2BIOSFile(p)).CombinedOutput(); err != nil {
		t.Errorf("qcow2-bios is not raw-bios: %v\n%s", err, b)
	}
	biosPart := filepath.Join(t.TempDir(), "part2.img")
	if err := os.WriteFile(biosPart, disk2[4096*512:], 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("mtype", "-i", biosPart, "::boot/grub/grub.cfg").CombinedOutput(); err != nil ||
		!strings.Contains(string(b), "linux /boot/kernel 'console=ttyS0'") || !strings.Contains(string(b), "initrd /boot/initrd.img") {
		t.Errorf("grub.cfg: %v\n%s", err, b)
	}
	gcpDir := t.TempDir()
	if b, err := exec.Command("tar", "-xzf", GCPFile(p), "-C", gcpDir).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, b)
	}
	gcpDisk := filepath.Join(gcpDir, "disk.raw")
	if st, err := os.Stat(gcpDisk); err != nil || st.Size() != 1<<30 {
		t.Errorf("GCP's disk.raw: %v, %v (want 1 GiB)", st, err)
	}
	if b, err := exec.Command("sgdisk", "-v", gcpDisk).CombinedOutput(); err != nil || !strings.Contains(string(b), "No problems found") {
		t.Errorf("sgdisk -v disk.raw: %v\n%s", err, b)
	}
	// The ISOs: the EFI one's El Torito image is a FAT volume holding the UKI; the BIOS one
	// has ISOLINUX, its configuration, the kernel and the initramfs.
	testenv.NeedTool(t, "xorriso", "xorriso")
	isoDir := t.TempDir()
	for _, iso := range []string{ISOEFIFile(p), ISOBIOSFile(p)} {
		out, err := exec.Command("xorriso", "-osirrox", "on", "-indev", iso, "-report_el_torito", "plain", "-extract", "/", filepath.Join(isoDir, filepath.Base(iso))).CombinedOutput()
		if err != nil {
			t.Fatalf("xorriso %s: %v\n%s", iso, err, out)
		}
		want := "UEFI  y   none"
		if iso == ISOBIOSFile(p) {
			want = "BIOS  y   none  0x0000  0x00      4"
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("%s: no %q boot entry:\n%s", iso, want, out)
		}
	}
	efiboot := filepath.Join(isoDir, filepath.Base(ISOEFIFile(p)), "EFI", "EFIBOOT.IMG")
	if b, err := exec.Command("mcopy", "-n", "-i", efiboot, "::EFI/BOOT/BOOTX64.EFI", filepath.Join(isoDir, "from-iso.efi")).CombinedOutput(); err != nil {
		t.Errorf("the EFI image of the ISO: %v\n%s", err, b)
	} else if !bytes.Equal(read(filepath.Join(isoDir, "from-iso.efi")), read(UKIFile(p))) {
		t.Error("the ISO's EFI image does not hold the UKI")
	}
	// iso-efi-initrd: systemd-boot and its entry, with the kernel and initramfs beside them.
	if out, err := exec.Command("xorriso", "-osirrox", "on", "-indev", ISOEFIInitrdFile(p), "-extract", "/", filepath.Join(isoDir, "initrd-iso")).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	img := filepath.Join(isoDir, "initrd-iso", "EFI", "EFIBOOT.IMG")
	for file, want := range map[string]string{"::EFI/BOOT/BOOTX64.EFI": "BOOT", "::loader/entries/kiln.conf": "options console=ttyS0\n",
		"::loader/loader.conf": "default kiln.conf", "::kernel": "KERNEL-IMAGE-BYTES"} {
		if b, err := exec.Command("mtype", "-i", img, file).CombinedOutput(); err != nil || !strings.Contains(string(b), want) {
			t.Errorf("iso-efi-initrd's %s: %v\n%s", file, err, b)
		}
	}
	bios := filepath.Join(isoDir, filepath.Base(ISOBIOSFile(p)))
	if !bytes.Equal(read(filepath.Join(bios, "BOOT", "KERNEL")), read(KernelFile(p))) ||
		!bytes.Equal(read(filepath.Join(bios, "BOOT", "INITRD.IMG")), read(InitrdFile(p))) {
		t.Error("the BIOS ISO's kernel or initramfs differ from kernel+initrd's")
	}
	if cfg := string(read(filepath.Join(bios, "ISOLINUX", "ISOLINUX.CFG"))); !strings.Contains(cfg, "APPEND console=ttyS0\n") {
		t.Errorf("isolinux.cfg:\n%s", cfg)
	}

	got := filepath.Join(t.TempDir(), "BOOTX64.EFI")
	if b, err := exec.Command("mcopy", "-n", "-i", esp, "::EFI/BOOT/BOOTX64.EFI", got).CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, b)
	}
	if !bytes.Equal(read(got), read(UKIFile(p))) {
		t.Error("EFI/BOOT/BOOTX64.EFI is not the UKI")
	}
}

func TestMediaErrors(t *testing.T) {
	for _, tc := range []struct {
		name, formats, arch, bootloaders string
		want                             string
	}{
		{"s390x has no EFI", "uki", "s390x", testBootloaders, "format uki boots amd64 and arm64 only, not s390x; for s390x use iso-ipl"},
		{"arm64 has no BIOS", "iso-bios", "arm64", testBootloaders, "format iso-bios boots amd64 only, not arm64; for arm64 use uki, raw-efi, qcow2-efi, vhd"},
		{"no ISOLINUX", "iso-bios", "amd64", "kiln/test-app:v1", "has no /bios/isolinux.bin for amd64"},
		{"no bootloaders", "raw-efi", "amd64", "", "needs the boot loaders image"},
		{"bootloaders missing", "kernel+initrd,raw-efi", "amd64", "kiln/bootloaders:nope", "need the boot loaders image kiln/bootloaders:nope (kiln pkg build tools/bootloaders"},
		{"not a bootloaders image", "uki", "amd64", "kiln/test-app:v1", "has no /efi/linux.efi.stub for amd64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			_, err := build(t, Options{Files: []string{writeYAML(t, systemYAML)}, Dir: out, Cache: mediaCache(t), Arch: tc.arch,
				Bootloaders: tc.bootloaders, Formats: mediaFormats(t, tc.formats)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if left, _ := os.ReadDir(out); len(left) != 0 {
				t.Errorf("%d files left in the output folder", len(left))
			}
		})
	}
	if _, err := LookupFormats("iso-nope"); err == nil || !strings.Contains(err.Error(), `unknown output format "iso-nope"`) {
		t.Errorf("unknown format: %v", err)
	}
}

// TestMediaIPL builds iso-ipl for s390x from a stand-in s390 kernel (its magic, a 4 KiB
// command line area): the ISO's one El Torito entry is BOOT/KILN.IMG, a visible file, and
// that file is the kernel with its parameter area patched and the initramfs appended, as
// package ipl writes them from kernel+initrd's files. Two builds give the same bytes.
func TestMediaIPL(t *testing.T) {
	cache := seedCache(t)
	k := bytes.Repeat([]byte{0xA5}, 0x10480+4096+300)
	copy(k[8:], []byte{0x02, 0, 0, 0x18, 0x60, 0, 0, 0x50, 0x02, 0, 0, 0x68, 0x60, 0, 0, 0x50, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40})
	binary.BigEndian.PutUint64(k[0x10430:], 4096)
	copy(k[0x10480:], "root=/dev/ram0 ro\x00")
	for ref, img := range map[string]v1.Image{
		"kiln/test-kernel:s390x": testImage(t, "s390x", v1.Config{}, []file{reg("kernel", string(k))}),
		"kiln/test-init:s390x":   testImage(t, "s390x", v1.Config{}, []file{exe("init", "#!init"), dir("etc"), reg("etc/os-release", "ID=kiln\n")}),
	} {
		if _, err := cache.WriteImage(ref, img); err != nil {
			t.Fatal(err)
		}
	}
	yml := writeYAML(t, "kernel:\n  image: kiln/test-kernel:s390x\n  tar: none\n  cmdline: console=ttysclp0 kiln.x=1\ninit:\n  - kiln/test-init:s390x\n")
	out := t.TempDir()
	opt := Options{Files: []string{yml}, Dir: out, Cache: cache, Arch: "s390x", Formats: mediaFormats(t, "kernel+initrd,iso-ipl"), Epoch: time.Unix(1700000000, 0)}
	if _, err := build(t, opt); err != nil {
		t.Fatal(err)
	}
	again := t.TempDir()
	opt.Dir = again
	if _, err := build(t, opt); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(out, filepath.Base(strings.TrimSuffix(yml, ".yml")))
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	isoFile := ISOIPLFile(p)
	if !bytes.Equal(read(isoFile), read(filepath.Join(again, filepath.Base(isoFile)))) {
		t.Error("iso-ipl differs between two builds")
	}
	var want bytes.Buffer
	kernel, initrd := read(KernelFile(p)), read(InitrdFile(p))
	if _, err := ipl.Write(&want, bytes.NewReader(kernel), int64(len(kernel)), bytes.NewReader(initrd), int64(len(initrd)), "console=ttysclp0 kiln.x=1"); err != nil {
		t.Fatal(err)
	}
	testenv.NeedTool(t, "xorriso", "xorriso")
	dir := t.TempDir()
	report, err := exec.Command("xorriso", "-osirrox", "on", "-indev", isoFile, "-report_el_torito", "plain", "-extract", "/", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, report)
	}
	sectors := fmt.Sprintf("%d", (want.Len()+511)/512)
	if !strings.Contains(string(report), "El Torito boot img :   1  BIOS  y   none  0x0000  0x00  "+strings.Repeat(" ", max(0, 5-len(sectors)))+sectors) {
		t.Errorf("no BIOS-platform entry loading %s sectors:\n%s", sectors, report)
	}
	if !strings.Contains(string(report), "El Torito img path :   1  /BOOT/KILN.IMG") {
		t.Errorf("the boot image is not the visible file /BOOT/KILN.IMG:\n%s", report)
	}
	if !bytes.Equal(read(filepath.Join(dir, "BOOT", "KILN.IMG")), want.Bytes()) {
		t.Error("BOOT/KILN.IMG is not the kernel with its command line and the initramfs")
	}
}

// TestMediaIDsFollowContent: two systems of the same sizes and command line, whose files
// differ in one byte (an uncompressed initramfs: the same sizes), get other disk IDs (the hybrid MBR's of iso-bios, the GPT disk GUID of
// raw-bios): the IDs come from the content, not from the sizes.
func TestMediaIDsFollowContent(t *testing.T) {
	ids := func(app string) (mbr, guid []byte) {
		cache := mediaCache(t)
		img := testImage(t, "amd64", v1.Config{Entrypoint: []string{"/bin/app"}}, []file{dir("bin"), exe("bin/app", app), dir("etc"),
			reg("etc/passwd", "root:x:0:0::/root:/bin/sh\ndaemon:x:7:8::/:/bin/sh\n"), reg("etc/group", "root:x:0:\nwheel:x:10:\n")})
		if _, err := cache.WriteImage("kiln/test-app:v1", img); err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		if _, err := build(t, Options{Files: []string{writeYAML(t, systemYAML)}, Dir: out, Cache: cache, Bootloaders: testBootloaders,
			Formats: mediaFormats(t, "iso-bios,raw-bios"), Compression: archive.None, Epoch: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		iso, err := os.ReadFile(filepath.Join(out, ISOBIOSFile("system")))
		if err != nil {
			t.Fatal(err)
		}
		disk, err := os.ReadFile(filepath.Join(out, RawBIOSFile("system")))
		if err != nil {
			t.Fatal(err)
		}
		return iso[440:444], disk[512+56 : 512+72]
	}
	mbr1, guid1 := ids("APP")
	mbr2, guid2 := ids("APQ")
	if bytes.Equal(mbr1, mbr2) {
		t.Errorf("iso-bios: the same MBR disk ID %x for other content", mbr1)
	}
	if bytes.Equal(guid1, guid2) {
		t.Errorf("raw-bios: the same disk GUID %x for other content", guid1)
	}
}

// The UKI's .osrel follows os-release(5): etc/os-release, else usr/lib/os-release (Debian's
// etc/os-release is a symbolic link to it), else lines naming the system.
func TestUKIOsRelease(t *testing.T) {
	cache := mediaCache(t)
	for _, tc := range []struct {
		name  string
		files []file
		want  string
		under bool // test-init (a regular etc/os-release) comes first
	}{
		{"symbolic link to usr/lib", []file{dir("etc"), sym("etc/os-release", "../usr/lib/os-release"), dir("usr"), dir("usr/lib"),
			reg("usr/lib/os-release", "ID=debian\n")}, "ID=debian\n", false},
		{"both regular", []file{dir("etc"), reg("etc/os-release", "ID=etc\n"), dir("usr"), dir("usr/lib"),
			reg("usr/lib/os-release", "ID=usr\n")}, "ID=etc\n", false},
		{"none", []file{dir("etc")}, "ID=kiln\nNAME=kiln\nPRETTY_NAME=\"system (kiln)\"\n", false},
		{"a regular file replaced by a later image's link", []file{dir("etc"), sym("etc/os-release", "../usr/lib/os-release"),
			dir("usr"), dir("usr/lib"), reg("usr/lib/os-release", "ID=later\n")}, "ID=later\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := cache.WriteImage("kiln/test-osrel:v1", testImage(t, "amd64", v1.Config{}, append([]file{exe("init", "#!init")}, tc.files...))); err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			init := "  - kiln/test-osrel:v1\n"
			if tc.under {
				init = "  - kiln/test-init:v1\n" + init
			}
			yml := writeYAML(t, "kernel:\n  image: kiln/test-kernel:v1\ninit:\n"+init)
			if _, err := build(t, Options{Files: []string{yml}, Dir: out, Cache: cache, Bootloaders: testBootloaders,
				Formats: mediaFormats(t, "uki"), Epoch: time.Unix(1700000000, 0)}); err != nil {
				t.Fatal(err)
			}
			f, err := pe.Open(UKIFile(filepath.Join(out, "system")))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			s := f.Section(".osrel")
			if s == nil {
				t.Fatal("no .osrel section")
			}
			got, err := io.ReadAll(io.NewSectionReader(s, 0, int64(s.VirtualSize)))
			if err != nil || string(got) != tc.want {
				t.Errorf(".osrel = %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

// The sparse writer gives the file exactly the bytes written, whatever the sizes of the
// writes, and leaves the all-zero blocks as holes.
func TestSparseWriter(t *testing.T) {
	var want []byte
	data := func(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
	pieces := [][]byte{data(100, 1), data(sparseBlock-100, 0), data(3*sparseBlock, 0), data(sparseBlock+7, 2),
		data(5, 0), data(2*sparseBlock-12, 0), data(sparseBlock, 3), data(513, 4), data(sparseBlock, 0), data(10, 0)}
	for _, chunk := range []int{1, 512, 4096, 100000, 1 << 20} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "disk.img"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			want = want[:0]
			sw := newSparseWriter(f)
			for _, p := range pieces {
				want = append(want, p...)
				for len(p) > 0 {
					k := min(chunk, len(p))
					if n, err := sw.Write(p[:k]); n != k || err != nil {
						t.Fatalf("Write: %d, %v", n, err)
					}
					p = p[k:]
				}
			}
			if err := sw.finish(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(f.Name())
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("the file (%d bytes, %v) is not what was written (%d bytes)", len(got), err, len(want))
			}
			if off, err := f.Seek(0, io.SeekCurrent); err != nil || off != int64(len(want)) {
				t.Errorf("offset %d (%v), want the end, %d", off, err, len(want))
			}
			var st syscall.Stat_t
			if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			// Blocks 0, 4, 5, 7 and 8 hold data: at most those 5 blocks are allocated.
			if used := st.Blocks * 512; used > 5*sparseBlock {
				t.Errorf("%d bytes allocated for 5 blocks of data", used)
			}
		})
	}
}
