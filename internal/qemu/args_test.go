package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/internal/testenv"
)

// common is the start of every argument list after the binary.
var common = []string{"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-accel", "tcg"}

// rng is the virtio RNG every guest gets, on the bus named.
func rng(bus string) []string {
	return []string{"-object", "rng-random,id=kiln-rng,filename=/dev/urandom", "-device", "virtio-rng-" + bus + ",rng=kiln-rng"}
}

func TestArgs(t *testing.T) {
	dir := writeKernels(t)
	// In want, "D/" stands for the folder holding the test files.
	cases := []struct {
		name string
		cfg  Config
		want []string
	}{{
		name: "amd64 PVH vmlinux with defaults",
		cfg:  Config{Kernel: "D/vmlinux-pvh", Initrd: "D/initrd.img"},
		want: flat("qemu-system-x86_64", common, "-M", "q35", "-m", "1024M", "-smp", "1",
			"-kernel", "D/vmlinux-pvh", "-initrd", "D/initrd.img",
			"-append", "console=ttyS0 panic=-1", "-serial", "stdio", rng("pci")),
	}, {
		name: "arm64 Image with disks, network and forwards",
		cfg: Config{
			Kernel: "D/Image", Cmdline: " quiet  console=hvc0 ", Memory: "2G", CPUs: 2,
			Disks: []Disk{{Path: "D/disk.img"}, {Path: "D/disk,comma.img", Format: "qcow2", ReadOnly: true}},
			PortForwards: []Forward{
				{Host: 8080, Guest: 80},
				{Proto: "udp", HostAddr: "127.0.0.1", Host: 5353, Guest: 53},
			},
		},
		want: flat("qemu-system-aarch64", common, "-M", "virt", "-cpu", "cortex-a57", "-m", "2G", "-smp", "2",
			"-kernel", "D/Image", "-append", "quiet  console=hvc0 panic=-1", "-serial", "stdio", rng("pci"),
			"-drive", "if=none,id=disk0,format=raw,file=D/disk.img", "-device", "virtio-blk-pci,drive=disk0",
			"-drive", "if=none,id=disk1,format=qcow2,readonly=on,file=D/disk,,comma.img", "-device", "virtio-blk-pci,drive=disk1",
			"-netdev", "user,id=net0,hostfwd=tcp::8080-:80,hostfwd=udp:127.0.0.1:5353-:53", "-device", "virtio-net-pci,netdev=net0"),
	}, {
		name: "s390x interactive with QMP, CCW disk and NIC",
		cfg: Config{
			Arch: "s390x", Kernel: "D/image-s390x", Initrd: "D/initrd.img", Cmdline: "panic=5",
			Stdin: strings.NewReader(""), QMP: "D/qmp.sock", Network: true,
			Disks: []Disk{{Path: "D/disk.img", Format: "raw"}},
		},
		want: flat("qemu-system-s390x", common, "-M", "s390-ccw-virtio", "-m", "1024M", "-smp", "1",
			"-kernel", "D/image-s390x", "-initrd", "D/initrd.img", "-append", "panic=5 console=ttysclp0",
			"-chardev", "stdio,id=console,mux=on,signal=off", "-serial", "chardev:console",
			"-mon", "chardev=console,mode=readline", "-qmp", "unix:D/qmp.sock,server=on,wait=off", rng("ccw"),
			"-drive", "if=none,id=disk0,format=raw,file=D/disk.img", "-device", "virtio-blk-ccw,drive=disk0",
			"-netdev", "user,id=net0", "-device", "virtio-net-ccw,netdev=net0"),
	}, {
		name: "amd64 bzImage, own binary, extra arguments",
		cfg: Config{
			Arch: "amd64", Kernel: "D/bzImage", Cmdline: "console=ttyS0,115200", QEMU: "/opt/qemu/bin/qemu-system-x86_64",
			ExtraArgs: []string{"-device", "pvpanic"},
		},
		want: flat("/opt/qemu/bin/qemu-system-x86_64", common, "-M", "q35", "-m", "1024M", "-smp", "1",
			"-kernel", "D/bzImage", "-append", "console=ttyS0,115200 panic=-1", "-serial", "stdio", rng("pci"),
			"-device", "pvpanic"),
	}, {
		name: "s390x ELF kernel, architecture from the file",
		cfg:  Config{Kernel: "D/vmlinux-s390x", Memory: "512m"},
		want: flat("qemu-system-s390x", common, "-M", "s390-ccw-virtio", "-m", "512m", "-smp", "1",
			"-kernel", "D/vmlinux-s390x", "-append", "console=ttysclp0 panic=-1", "-serial", "stdio", rng("ccw")),
	}}
	ovmf, aavmf := EFIFirmware["amd64"], EFIFirmware["arm64"]
	cases = append(cases, []struct {
		name string
		cfg  Config
		want []string
	}{{
		name: "amd64 raw EFI disk",
		cfg:  Config{Arch: "amd64", Medium: &Medium{Path: "D/disk.img", Kind: "disk"}, Firmware: "efi"},
		want: flat("qemu-system-x86_64", common, "-M", "q35", "-m", "1024M", "-smp", "1",
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmf.Code,
			"-drive", "if=pflash,format=raw,unit=1,snapshot=on,file="+ovmf.Vars,
			"-drive", "if=none,id=boot,snapshot=on,format=raw,file=D/disk.img", "-device", "virtio-blk-pci,drive=boot,bootindex=1",
			"-serial", "stdio", rng("pci")),
	}, {
		name: "amd64 ISO, BIOS by default",
		cfg:  Config{Arch: "amd64", Medium: &Medium{Path: "D/disk.img", Kind: "cdrom"}},
		want: flat("qemu-system-x86_64", common, "-M", "q35", "-m", "1024M", "-smp", "1",
			"-drive", "if=none,id=boot,media=cdrom,readonly=on,format=raw,file=D/disk.img",
			"-device", "virtio-scsi-pci,id=scsi0", "-device", "scsi-cd,bus=scsi0.0,drive=boot,bootindex=1",
			"-serial", "stdio", rng("pci")),
	}, {
		name: "arm64 UKI, EFI by default",
		cfg:  Config{Arch: "arm64", Medium: &Medium{Path: "D/disk.img", Kind: "efi"}},
		want: flat("qemu-system-aarch64", common, "-M", "virt", "-cpu", "cortex-a57", "-m", "1024M", "-smp", "1",
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+aavmf.Code,
			"-drive", "if=pflash,format=raw,unit=1,snapshot=on,file="+aavmf.Vars,
			"-kernel", "D/disk.img", "-serial", "stdio", rng("pci")),
	}, {
		name: "amd64 network boot through BIOS's iPXE ROM",
		cfg:  Config{Arch: "amd64", Netboot: "http://10.0.2.2:8080/boot.ipxe"},
		want: flat("qemu-system-x86_64", common, "-M", "q35", "-m", "1024M", "-smp", "1", "-serial", "stdio", rng("pci"),
			"-netdev", "user,id=net0,bootfile=http://10.0.2.2:8080/boot.ipxe", "-device", "virtio-net-pci,netdev=net0,bootindex=1"),
	}}...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.Firmware == "efi" || tc.cfg.Arch == "arm64" && tc.cfg.Medium != nil {
				fw := EFIFirmware[tc.cfg.Arch]
				testenv.NeedFile(t, fw.Code, fw.Package)
			}
			got, err := Args(inDir(tc.cfg, dir))
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				tc.want[i] = strings.ReplaceAll(tc.want[i], "D/", dir+"/")
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Args:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// flat joins strings and string slices into one list.
func flat(parts ...any) []string {
	var out []string
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			out = append(out, p)
		case []string:
			out = append(out, p...)
		}
	}
	return out
}

// inDir puts dir in front of the config's file names that start with "D/".
func inDir(c Config, dir string) Config {
	fix := func(s string) string { return strings.ReplaceAll(s, "D/", dir+"/") }
	c.Kernel, c.Initrd, c.QMP = fix(c.Kernel), fix(c.Initrd), fix(c.QMP)
	c.Disks = append([]Disk(nil), c.Disks...)
	for i := range c.Disks {
		c.Disks[i].Path = fix(c.Disks[i].Path)
	}
	if c.Medium != nil {
		m := *c.Medium
		m.Path = fix(m.Path)
		c.Medium = &m
	}
	return c
}

func TestArgsErrors(t *testing.T) {
	dir := writeKernels(t)
	foreign := "arm64"
	if runtime.GOARCH == "arm64" {
		foreign = "amd64"
	}
	cases := []struct {
		name string
		cfg  Config
		want string // part of the error message
	}{
		{"no kernel", Config{}, "no kernel file given"},
		{"firmware for a kernel", Config{Kernel: "D/bzImage", Firmware: "efi"}, "a kernel boots directly"},
		{"medium and kernel", Config{Kernel: "D/bzImage", Medium: &Medium{Path: "D/disk.img", Kind: "disk"}}, "carries its own kernel"},
		{"medium missing", Config{Medium: &Medium{Path: "D/nope.iso", Kind: "cdrom"}}, "boot medium:"},
		{"medium kind", Config{Medium: &Medium{Path: "D/disk.img", Kind: "floppy"}}, `kind "floppy"`},
		{"medium format", Config{Medium: &Medium{Path: "D/disk.img", Kind: "disk", Format: "vdi"}}, `format "vdi"`},
		{"arm64 BIOS", Config{Arch: "arm64", Firmware: "bios", Medium: &Medium{Path: "D/disk.img", Kind: "disk"}}, "arm64 has no BIOS"},
		{"s390x EFI", Config{Arch: "s390x", Firmware: "efi", Medium: &Medium{Path: "D/disk.img", Kind: "cdrom"}}, "s390x has no EFI"},
		{"UKI with BIOS", Config{Arch: "amd64", Firmware: "bios", Medium: &Medium{Path: "D/disk.img", Kind: "efi"}}, "boots with firmware efi"},
		{"missing kernel", Config{Kernel: "D/nope"}, "no such file"},
		{"netboot and kernel", Config{Kernel: "D/bzImage", Netboot: "http://h/boot.ipxe"}, "gets its kernel and command line from the server"},
		{"netboot file with a comma", Config{Netboot: "http://h/a,b"}, "without commas or spaces"},
		{"netboot arm64 BIOS", Config{Arch: "arm64", Firmware: "bios", Netboot: "boot.efi"}, "arm64 has no BIOS"},
		{"wrong arch", Config{Arch: "arm64", Kernel: "D/bzImage"}, "is an amd64 kernel (bzimage) but architecture arm64 was asked for"},
		{"ELF without PVH", Config{Kernel: "D/vmlinux-nopvh"}, "without a PVH entry note"},
		{"unsupported arch", Config{Arch: "riscv64", Kernel: "D/random"}, `architecture "riscv64" is not supported`},
		{"missing initrd", Config{Kernel: "D/bzImage", Initrd: "D/nope"}, "initrd:"},
		{"bad memory", Config{Kernel: "D/bzImage", Memory: "1 GB"}, `memory size "1 GB"`},
		{"negative CPUs", Config{Kernel: "D/bzImage", CPUs: -1}, "-1 CPUs"},
		{"bad disk format", Config{Kernel: "D/bzImage", Disks: []Disk{{Path: "D/disk.img", Format: "vmdk"}}}, `format "vmdk"`},
		{"missing disk", Config{Kernel: "D/bzImage", Disks: []Disk{{Path: "D/nope.img"}}}, "disk:"},
		{"bad port", Config{Kernel: "D/bzImage", PortForwards: []Forward{{Host: 0, Guest: 80}}}, "ports must be from 1 to 65535"},
		{"bad protocol", Config{Kernel: "D/bzImage", PortForwards: []Forward{{Proto: "sctp", Host: 1, Guest: 80}}}, `protocol "sctp"`},
		{"KVM for another arch", Config{Arch: foreign, Kernel: "D/random", Accel: "kvm"}, "KVM runs only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Args(inDir(tc.cfg, dir))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Args error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestArgsUnknownKernelUsesHostArch: a kernel Inspect cannot read boots as the host's
// architecture, or the one asked for.
func TestArgsUnknownKernelUsesHostArch(t *testing.T) {
	dir := writeKernels(t)
	for _, arch := range []string{"", "s390x"} {
		got, err := Args(Config{Arch: arch, Kernel: filepath.Join(dir, "random")})
		want := arch
		if want == "" {
			want = runtime.GOARCH
		}
		if _, ok := arches[want]; !ok {
			if err == nil {
				t.Errorf("Args on unsupported host %s: no error", want)
			}
			continue
		}
		if err != nil || got[0] != arches[want].qemu {
			t.Errorf("Args(arch %q) = %q, %v; want %s", arch, got, err, arches[want].qemu)
		}
	}
}

func TestCommand(t *testing.T) {
	dir := writeKernels(t)
	stdin := strings.NewReader("")
	var out, errOut strings.Builder
	cmd, err := Command(context.Background(), Config{Kernel: filepath.Join(dir, "bzImage"), Stdin: stdin, Console: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Args[0] != "qemu-system-x86_64" || cmd.Stdin != stdin || cmd.Stdout != &out || cmd.Stderr != &errOut || cmd.Cancel == nil {
		t.Errorf("Command = %q with stdin %v, stdout %v, stderr %v", cmd.Args, cmd.Stdin, cmd.Stdout, cmd.Stderr)
	}
}

// TestStartMissingBinary: a QEMU that is not installed is reported with what to install.
func TestStartMissingBinary(t *testing.T) {
	dir := writeKernels(t)
	_, err := Start(context.Background(), Config{Kernel: filepath.Join(dir, "bzImage"), QEMU: filepath.Join(dir, "no-qemu")})
	if err == nil || !strings.Contains(err.Error(), "qemu-system-x86") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Start with a missing binary: %v", err)
	}
}
