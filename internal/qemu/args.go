package qemu

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Args checks c (the kernel's architecture against c.Arch, that the files exist), fills in
// the defaults and returns QEMU's full argument list, the emulator binary first.
func Args(c Config) ([]string, error) {
	c, _, err := resolve(c)
	if err != nil {
		return nil, err
	}
	return buildArgs(c), nil
}

// Command returns the QEMU command for c, not started, with its standard input, output and
// error connected to c.Stdin, c.Console and c.Stderr. When ctx ends QEMU gets SIGTERM (it
// then stops the guest at once) and, 5 seconds later, SIGKILL.
func Command(ctx context.Context, c Config) (*exec.Cmd, error) {
	argv, err := Args(c)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = c.Stdin, c.Console, c.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	return cmd, nil
}

// buildArgs writes the argument list for a resolved Config.
func buildArgs(c Config) []string {
	a := arches[c.Arch]
	bin := c.QEMU
	if bin == "" {
		bin = a.qemu
	}
	args := []string{bin,
		// Only the devices asked for: no default NIC, VGA, monitor or serial port.
		"-nodefaults", "-no-user-config", "-display", "none",
		// A guest reboot (or a kernel panic with panic=-1) ends QEMU instead of booting again.
		"-no-reboot",
		"-accel", c.Accel,
	}
	machine := a.machine
	if c.Accel == "kvm" && c.Arch == "arm64" {
		machine = []string{"-M", "virt", "-cpu", "host"}
	}
	args = append(args, machine...)
	args = append(args, "-m", c.Memory, "-smp", strconv.Itoa(c.CPUs))
	switch {
	case c.Medium != nil:
		args = append(args, firmwareArgs(c)...)
		args = append(args, mediumArgs(c)...)
	case c.Netboot != "":
		args = append(args, firmwareArgs(c)...)
	default:
		args = append(args, "-kernel", c.Kernel)
		if c.Initrd != "" {
			args = append(args, "-initrd", c.Initrd)
		}
		args = append(args, "-append", c.Cmdline)
	}
	if c.Stdin != nil {
		// One stdio character device shared by the serial port and the monitor; signal=off
		// hands Ctrl-C to the guest.
		args = append(args,
			"-chardev", "stdio,id=console,mux=on,signal=off",
			"-serial", "chardev:console",
			"-mon", "chardev=console,mode=readline")
	} else {
		args = append(args, "-serial", "stdio")
	}
	if c.QMP != "" {
		args = append(args, "-qmp", "unix:"+escape(c.QMP)+",server=on,wait=off")
	}
	// A virtio RNG fed from the host: a guest's kernel otherwise waits a minute or two under
	// emulation before its random number generator is ready, and every getrandom(2) (Go's
	// crypto/rand: DHCP transaction IDs, TLS) blocks until then. The guest needs the
	// virtio_rng module (built in, or loaded: kiln.modules=virtio_rng).
	args = append(args,
		"-object", "rng-random,id=kiln-rng,filename=/dev/urandom",
		"-device", "virtio-rng-"+a.bus+",rng=kiln-rng")
	for i, d := range c.Disks {
		id := "disk" + strconv.Itoa(i)
		opt := "if=none,id=" + id + ",format=" + d.Format
		if d.ReadOnly {
			opt += ",readonly=on"
		}
		args = append(args,
			"-drive", opt+",file="+escape(d.Path),
			"-device", "virtio-blk-"+a.bus+",drive="+id)
	}
	if c.Network {
		netdev := "user,id=net0"
		for _, f := range c.PortForwards {
			netdev += ",hostfwd=" + f.Proto + ":" + f.HostAddr + ":" + strconv.Itoa(f.Host) + "-:" + strconv.Itoa(f.Guest)
		}
		nic := "virtio-net-" + a.bus + ",netdev=net0"
		if c.Netboot != "" {
			// QEMU's DHCP puts the boot file into its answers; the firmware boots the NIC first.
			netdev += ",bootfile=" + c.Netboot
			nic += ",bootindex=1"
		}
		args = append(args, "-netdev", netdev, "-device", nic)
	}
	return append(args, c.ExtraArgs...)
}

// mediumArgs attaches c.Medium for the firmware to boot. The medium is attached with
// snapshot=on: the guest's writes go to a temporary file and the image stays as kiln build
// wrote it.
func mediumArgs(c Config) []string {
	a := arches[c.Arch]
	var args []string
	m := c.Medium
	switch m.Kind {
	case "efi":
		// The firmware loads the program QEMU hands it as its kernel and starts it.
		args = append(args, "-kernel", m.Path)
	case "disk":
		args = append(args,
			"-drive", "if=none,id=boot,snapshot=on,format="+m.Format+",file="+escape(m.Path),
			"-device", "virtio-blk-"+a.bus+",drive=boot,bootindex=1")
	case "cdrom":
		args = append(args,
			"-drive", "if=none,id=boot,media=cdrom,readonly=on,format=raw,file="+escape(m.Path),
			"-device", "virtio-scsi-"+a.bus+",id=scsi0",
			"-device", "scsi-cd,bus=scsi0.0,drive=boot,bootindex=1")
	}
	return args
}

// firmwareArgs loads EFI firmware when c asks for it (BIOS is QEMU's default). Its variable
// store is attached with snapshot=on: writes go to a temporary copy of the template.
func firmwareArgs(c Config) []string {
	if c.Firmware != "efi" {
		return nil
	}
	fw := EFIFirmware[c.Arch]
	return []string{
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + escape(fw.Code),
		"-drive", "if=pflash,format=raw,unit=1,snapshot=on,file=" + escape(fw.Vars),
	}
}

// escape doubles commas, which QEMU's option syntax reads as separators.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
