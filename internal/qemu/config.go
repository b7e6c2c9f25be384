package qemu

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
)

// Config describes one VM: what to boot, the machine's size and devices, and where its
// console goes. The zero value of every optional field picks the default documented on it.
type Config struct {
	// Arch is the guest architecture as a GOARCH name: amd64, arm64 or s390x. Empty means the
	// kernel's own architecture when Inspect recognises the file, else the host's.
	Arch string
	// Kernel is the kernel file (required). On amd64 an ELF vmlinux with a PVH entry note
	// boots in about half the time of a bzImage.
	Kernel string
	// Initrd is the initramfs file (optional).
	Initrd string
	// Cmdline is the kernel command line. A console= argument for the architecture's serial
	// console (see ConsoleDevice) is appended when none is present, and panic=-1 when no
	// panic= is present, so that a kernel panic ends QEMU (with -no-reboot) instead of
	// hanging.
	Cmdline string
	// Memory is the guest's RAM in QEMU's -m syntax (a number with an optional K, M, G or T
	// suffix); default "1024M".
	Memory string
	// CPUs is the number of virtual CPUs; default 1. Under TCG a second CPU does not make the
	// boot faster: run two VMs instead.
	CPUs int
	// Disks are attached, in order, as virtio block devices (PCI, or CCW on s390x); the guest
	// sees them as /dev/vda, /dev/vdb, ...
	Disks []Disk
	// Network adds a virtio NIC on QEMU's user-mode network (the guest gets 10.0.2.15 by
	// DHCP, 10.0.2.2 is the host). PortForwards imply it.
	Network bool
	// PortForwards forward host ports to guest ports over the user-mode network.
	PortForwards []Forward
	// Console receives the guest's serial console output (nil discards it; package users
	// watch it through VM.WaitFor either way).
	Console io.Writer
	// Stderr receives QEMU's own messages (nil: they are kept for error reports only).
	Stderr io.Writer
	// Stdin, when set, is connected to the serial console and makes the console interactive:
	// QEMU multiplexes its monitor on it (Ctrl-A C switches, Ctrl-A X quits) and passes
	// Ctrl-C to the guest. Nil means the console is output only.
	Stdin io.Reader
	// QEMU overrides the emulator binary (default qemu-system-x86_64, qemu-system-aarch64 or
	// qemu-system-s390x, looked up on PATH).
	QEMU string
	// Accel is QEMU's accelerator; default "tcg". KVM ("kvm") needs a guest of the host's
	// architecture.
	Accel string
	// QMP is the path of a unix socket for QEMU's machine protocol. Start picks one when it
	// is empty; Command adds none unless set.
	QMP string
	// ExtraArgs are appended to QEMU's arguments as they are.
	ExtraArgs []string
	// Medium, instead of a kernel, is what the firmware boots: a disk image or an ISO that
	// kiln build wrote (raw-efi, iso-bios, ...), or a UKI. Kernel, Initrd and Cmdline are
	// then empty: the command line is inside the medium.
	Medium *Medium
	// Firmware is "bios" (QEMU's default firmware: SeaBIOS on amd64) or "efi" (OVMF on amd64,
	// AAVMF on arm64, from Debian's ovmf and qemu-efi-aarch64 packages). Only with Medium.
	Firmware string
	// Netboot, instead of a kernel or a medium, boots from the network: QEMU's user-mode DHCP
	// hands the NIC this boot file name. Under BIOS (amd64) the NIC's iPXE ROM fetches it, so
	// an HTTP URL of an iPXE script works (kiln serve's http://10.0.2.2:PORT/boot.ipxe); EFI
	// and s390x's firmware fetch it by TFTP from 10.0.2.2.
	Netboot string
}

// Medium is a boot medium.
type Medium struct {
	Path string
	// Kind is "disk" (a virtio disk), "cdrom" (a SCSI CD-ROM) or "efi" (an EFI program,
	// such as a UKI, which the EFI firmware starts directly).
	Kind string
	// Format of a disk: raw (default), qcow2, vpc (VHD) or vmdk.
	Format string
}

// EFIFirmware is where Debian's packages put the EFI firmware of each architecture: its
// code and its variable store (which a VM writes to a temporary copy).
var EFIFirmware = map[string]struct{ Code, Vars, Package string }{
	"amd64": {"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd", "ovmf"},
	"arm64": {"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd", "qemu-efi-aarch64"},
}

// Disk is a disk image attached as a virtio block device.
type Disk struct {
	Path string
	// Format is the image format: "raw" (default) or "qcow2".
	Format string
	// ReadOnly attaches the disk read-only.
	ReadOnly bool
}

// Forward forwards a host port to a guest port.
type Forward struct {
	// Proto is "tcp" (default) or "udp".
	Proto string
	// HostAddr is the host address to listen on; empty means every address.
	HostAddr string
	Host     int
	Guest    int
}

// String writes the forward as the CLI takes it: [ADDR:]HOST:GUEST[/udp].
func (f Forward) String() string {
	s := strconv.Itoa(f.Host) + ":" + strconv.Itoa(f.Guest)
	if f.HostAddr != "" {
		s = f.HostAddr + ":" + s
	}
	if f.Proto == "udp" {
		s += "/udp"
	}
	return s
}

// ParseForward reads a port forward written as [ADDR:]HOST:GUEST[/tcp|/udp], such as
// "8080:80" or "127.0.0.1:5353:53/udp".
func ParseForward(s string) (Forward, error) {
	var f Forward
	spec, proto, hasProto := strings.Cut(s, "/")
	f.Proto = "tcp"
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return Forward{}, fmt.Errorf("port forward %q: protocol %q, want tcp or udp", s, proto)
		}
		f.Proto = proto
	}
	parts := strings.Split(spec, ":")
	switch len(parts) {
	case 2:
	case 3:
		f.HostAddr, parts = parts[0], parts[1:]
	default:
		return Forward{}, fmt.Errorf("port forward %q: want [ADDR:]HOST:GUEST[/udp], such as 8080:80", s)
	}
	var err error
	if f.Host, err = parsePort(parts[0]); err != nil {
		return Forward{}, fmt.Errorf("port forward %q: host port: %w", s, err)
	}
	if f.Guest, err = parsePort(parts[1]); err != nil {
		return Forward{}, fmt.Errorf("port forward %q: guest port: %w", s, err)
	}
	return f, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number from 1 to 65535", s)
	}
	return n, nil
}

// ParseDisk reads a disk written as PATH[,format=raw|qcow2][,readonly], as the CLI takes it.
func ParseDisk(s string) (Disk, error) {
	parts := strings.Split(s, ",")
	d := Disk{Path: parts[0]}
	if d.Path == "" {
		return Disk{}, fmt.Errorf("disk %q: no file name; want PATH[,format=raw|qcow2][,readonly]", s)
	}
	for _, p := range parts[1:] {
		switch {
		case strings.HasPrefix(p, "format="):
			d.Format = strings.TrimPrefix(p, "format=")
		case p == "readonly" || p == "ro":
			d.ReadOnly = true
		default:
			return Disk{}, fmt.Errorf("disk %q: unknown option %q; want format=raw|qcow2 or readonly", s, p)
		}
	}
	if d.Format != "" && d.Format != "raw" && d.Format != "qcow2" {
		return Disk{}, fmt.Errorf("disk %q: format %q, want raw or qcow2", s, d.Format)
	}
	return d, nil
}

// arch holds what differs between the guest architectures.
type arch struct {
	qemu    string   // emulator binary
	machine []string // -M and -cpu arguments
	console string   // the kernel's name for the serial console
	bus     string   // virtio transport suffix: "pci" or "ccw"
}

var arches = map[string]arch{
	// q35 with -kernel boots an ELF vmlinux through PVH, a bzImage through the Linux boot
	// protocol. Measured here: PVH about 1.8 s to the marker init, bzImage 4-5 s; microvm
	// was no faster and sometimes hung calibrating the TSC.
	"amd64": {qemu: "qemu-system-x86_64", machine: []string{"-M", "q35"}, console: "ttyS0", bus: "pci"},
	// cortex-a57: -cpu max emulates pointer authentication, which triples the boot time.
	"arm64": {qemu: "qemu-system-aarch64", machine: []string{"-M", "virt", "-cpu", "cortex-a57"}, console: "ttyAMA0", bus: "pci"},
	"s390x": {qemu: "qemu-system-s390x", machine: []string{"-M", "s390-ccw-virtio"}, console: "ttysclp0", bus: "ccw"},
}

// Arches lists the supported guest architectures.
func Arches() []string { return []string{"amd64", "arm64", "s390x"} }

// ConsoleDevice returns the kernel's name for arch's serial console (ttyS0, ttyAMA0,
// ttysclp0), or "" for an unknown architecture.
func ConsoleDevice(goarch string) string { return arches[goarch].console }

var memoryRE = regexp.MustCompile(`^[0-9]+[KMGTkmgt]?$`)

// resolve checks c against the files it names, fills in defaults and returns the completed
// Config with what Inspect said about the kernel.
func resolve(c Config) (Config, KernelInfo, error) {
	if c.Medium != nil {
		return resolveMedium(c)
	}
	if c.Netboot != "" {
		return resolveNetboot(c)
	}
	if c.Firmware != "" {
		return c, KernelInfo{}, fmt.Errorf("firmware %s: only a boot medium (a disk image, ISO or UKI) goes through firmware; a kernel boots directly", c.Firmware)
	}
	if c.Kernel == "" {
		return c, KernelInfo{}, errors.New("no kernel file given")
	}
	info, err := Inspect(c.Kernel)
	known := err == nil
	if err != nil && !errors.Is(err, ErrUnknownKernel) {
		return c, KernelInfo{}, err
	}
	switch {
	case c.Arch == "" && known:
		c.Arch = info.Arch
	case c.Arch == "":
		c.Arch = runtime.GOARCH
	case known && info.Arch != c.Arch:
		return c, KernelInfo{}, fmt.Errorf("kernel %s is an %s kernel (%s) but architecture %s was asked for; drop the architecture or give an %s kernel", c.Kernel, info.Arch, info.Format, c.Arch, c.Arch)
	}
	if _, ok := arches[c.Arch]; !ok {
		return c, KernelInfo{}, fmt.Errorf("architecture %q is not supported; want one of %s", c.Arch, strings.Join(Arches(), ", "))
	}
	if known && info.Format == FormatELF && info.Arch == "amd64" && !info.PVH {
		return c, KernelInfo{}, fmt.Errorf("kernel %s is an x86 ELF vmlinux without a PVH entry note, which QEMU cannot boot; boot its bzImage or build the kernel with CONFIG_PVH=y", c.Kernel)
	}
	if c.Initrd != "" {
		if _, err := os.Stat(c.Initrd); err != nil {
			return c, KernelInfo{}, fmt.Errorf("initrd: %w", err)
		}
	}
	c, err = resolveMachine(c)
	if err != nil {
		return c, KernelInfo{}, err
	}
	c.Cmdline = completeCmdline(c.Cmdline, arches[c.Arch].console)
	return c, info, nil
}

// resolveNetboot checks a boot from the network.
func resolveNetboot(c Config) (Config, KernelInfo, error) {
	if c.Kernel != "" || c.Initrd != "" || c.Cmdline != "" {
		return c, KernelInfo{}, errors.New("a network boot gets its kernel and command line from the server: give no kernel, initrd or command line with it")
	}
	if len(c.Netboot) > 127 || strings.ContainsAny(c.Netboot, ", \t\n") {
		return c, KernelInfo{}, fmt.Errorf("boot file %q: want at most 127 characters without commas or spaces (QEMU's DHCP carries it in 128 bytes)", c.Netboot)
	}
	c, err := resolveFirmwareArch(c)
	if err != nil {
		return c, KernelInfo{}, err
	}
	c.Network = true
	c, err = resolveMachine(c)
	return c, KernelInfo{}, err
}

// resolveMedium checks a boot through firmware.
func resolveMedium(c Config) (Config, KernelInfo, error) {
	m := *c.Medium
	c.Medium = &m
	if c.Kernel != "" || c.Initrd != "" || c.Cmdline != "" {
		return c, KernelInfo{}, errors.New("a boot medium carries its own kernel and command line: give no kernel, initrd or command line with it")
	}
	if _, err := os.Stat(m.Path); err != nil {
		return c, KernelInfo{}, fmt.Errorf("boot medium: %w", err)
	}
	switch m.Kind {
	case "disk":
		if m.Format == "" {
			m.Format = "raw"
		}
		switch m.Format {
		case "raw", "qcow2", "vpc", "vmdk":
		default:
			return c, KernelInfo{}, fmt.Errorf("boot disk %s: format %q, want raw, qcow2, vpc or vmdk", m.Path, m.Format)
		}
	case "cdrom":
	case "efi":
		if c.Firmware == "" {
			c.Firmware = "efi"
		}
		if c.Firmware != "efi" {
			return c, KernelInfo{}, fmt.Errorf("%s is an EFI program: it boots with firmware efi, not %s", m.Path, c.Firmware)
		}
	default:
		return c, KernelInfo{}, fmt.Errorf("boot medium %s: kind %q, want disk, cdrom or efi", m.Path, m.Kind)
	}
	c, err := resolveFirmwareArch(c)
	if err != nil {
		return c, KernelInfo{}, err
	}
	c, err = resolveMachine(c)
	return c, KernelInfo{}, err
}

// resolveFirmwareArch checks the architecture and picks or checks the firmware.
func resolveFirmwareArch(c Config) (Config, error) {
	if c.Arch == "" {
		c.Arch = runtime.GOARCH
	}
	if _, ok := arches[c.Arch]; !ok {
		return c, fmt.Errorf("architecture %q is not supported; want one of %s", c.Arch, strings.Join(Arches(), ", "))
	}
	switch c.Firmware {
	case "":
		c.Firmware = "bios"
		if c.Arch != "amd64" {
			c.Firmware = "efi"
		}
		if c.Arch == "s390x" {
			c.Firmware = "bios" // the s390-ccw firmware IPLs the medium
		}
	case "bios", "efi":
	default:
		return c, fmt.Errorf("firmware %q: want bios or efi", c.Firmware)
	}
	switch {
	case c.Firmware == "bios" && c.Arch == "arm64":
		return c, errors.New("arm64 has no BIOS: boot an EFI medium with firmware efi")
	case c.Firmware == "efi" && c.Arch == "s390x":
		return c, errors.New("s390x has no EFI: its firmware IPLs an ISO or a disk")
	case c.Firmware == "efi":
		fw := EFIFirmware[c.Arch]
		for _, f := range []string{fw.Code, fw.Vars} {
			if _, err := os.Stat(f); err != nil {
				return c, fmt.Errorf("EFI firmware for %s: %w (apt-get install %s)", c.Arch, err, fw.Package)
			}
		}
	}
	return c, nil
}

// resolveMachine checks and completes memory, CPUs, accelerator, disks and port forwards.
func resolveMachine(c Config) (Config, error) {
	if c.Memory == "" {
		c.Memory = "1024M"
	}
	if !memoryRE.MatchString(c.Memory) {
		return c, fmt.Errorf("memory size %q: want a number with an optional K, M, G or T suffix, such as 1024M", c.Memory)
	}
	if c.CPUs == 0 {
		c.CPUs = 1
	}
	if c.CPUs < 0 {
		return c, fmt.Errorf("%d CPUs: want 1 or more", c.CPUs)
	}
	if c.Accel == "" {
		c.Accel = "tcg"
	}
	if c.Accel == "kvm" && c.Arch != runtime.GOARCH {
		return c, fmt.Errorf("KVM runs only %s guests on this host, not %s; use accelerator tcg", runtime.GOARCH, c.Arch)
	}
	c.Disks = append([]Disk(nil), c.Disks...)
	for i, d := range c.Disks {
		if d.Format == "" {
			c.Disks[i].Format = "raw"
		}
		if f := c.Disks[i].Format; f != "raw" && f != "qcow2" {
			return c, fmt.Errorf("disk %s: format %q, want raw or qcow2", d.Path, f)
		}
		if _, err := os.Stat(d.Path); err != nil {
			return c, fmt.Errorf("disk: %w", err)
		}
	}
	c.PortForwards = append([]Forward(nil), c.PortForwards...)
	for i, f := range c.PortForwards {
		if f.Proto == "" {
			c.PortForwards[i].Proto = "tcp"
		}
		if p := c.PortForwards[i].Proto; p != "tcp" && p != "udp" {
			return c, fmt.Errorf("port forward %s: protocol %q, want tcp or udp", f, p)
		}
		if f.Host < 1 || f.Host > 65535 || f.Guest < 1 || f.Guest > 65535 {
			return c, fmt.Errorf("port forward %s: ports must be from 1 to 65535", f)
		}
	}
	if len(c.PortForwards) > 0 {
		c.Network = true
	}
	return c, nil
}

// completeCmdline appends console=DEV and panic=-1 to cmdline unless it has a console= or
// panic= argument already.
func completeCmdline(cmdline, console string) string {
	var hasConsole, hasPanic bool
	for _, f := range strings.Fields(cmdline) {
		hasConsole = hasConsole || strings.HasPrefix(f, "console=")
		hasPanic = hasPanic || strings.HasPrefix(f, "panic=")
	}
	add := []string{strings.TrimSpace(cmdline)}
	if !hasConsole {
		add = append(add, "console="+console)
	}
	if !hasPanic {
		add = append(add, "panic=-1")
	}
	return strings.TrimSpace(strings.Join(add, " "))
}
