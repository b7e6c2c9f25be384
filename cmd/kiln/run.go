package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-os/kiln/assemble"
	"github.com/kiln-os/kiln/internal/qemu"
	"golang.org/x/term"
)

const runUsage = "kiln run qemu [flags] PREFIX | MEDIUM | KERNEL [INITRD] | -netboot URL"

func runRun(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{"no machine given: the only one is qemu"}
	}
	switch args[0] {
	case "qemu":
		return runQemu(ctx, args[1:], os.Stdin, os.Stdout, os.Stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintf(os.Stderr, "usage: %s\n\nBoot a system locally. Machines: qemu.\n", runUsage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown machine %q: the only one is qemu", args[0])}
}

// listFlag collects a repeatable flag's values.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runQemu(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("run qemu", runUsage, "Boot a kernel and initrd in QEMU (no KVM needed) with the console on this terminal.\n"+
		"PREFIX is what `kiln build` was given as output name: out/NAME boots "+assemble.KernelFile("out/NAME")+",\n"+
		assemble.InitrdFile("out/NAME")+" and the command line in "+assemble.CmdlineFile("out/NAME")+".\n"+
		"MEDIUM is a medium `kiln build -format` wrote ("+assemble.UKIFile("NAME")+", "+assemble.RawEFIFile("NAME")+", ...), booted through\n"+
		"firmware (OVMF or AAVMF for EFI, SeaBIOS for BIOS); the file is not changed (its writes go to a temporary copy).\n"+
		"A terminal console is interactive: Ctrl-A X quits QEMU, Ctrl-A C toggles its monitor.\n"+
		"The exit code is QEMU's: 0 when the guest powers off (or reboots), 1 when its kernel panics.")
	arch := fs.String("arch", "", "guest architecture: amd64, arm64 or s390x (default: the kernel's, else the host's)")
	mem := fs.String("mem", "1024M", "guest memory, such as 512M or 2G")
	cpus := fs.Int("cpus", 1, "number of virtual CPUs (more does not boot faster under emulation)")
	var disks, publish listFlag
	fs.Var(&disks, "disk", "attach a virtio disk: FILE[,format=raw|qcow2][,readonly] (repeatable)")
	fs.Var(&publish, "publish", "forward a host port to the guest: [ADDR:]HOST:GUEST[/udp] (repeatable; implies -net)")
	network := fs.Bool("net", false, "add a virtio NIC on QEMU's user-mode network (guest 10.0.2.15 by DHCP)")
	data := fs.String("data", "", "hand the guest a config drive (cloud-init NoCloud, label cidata, read by services/metadata):\n"+
		"FILE becomes its user-data; DIR's files are its files (a meta-data with an instance-id is added when DIR has none)")
	appendCmdline := fs.String("cmdline-append", "", "text appended to the kernel command line")
	bin := fs.String("qemu", "", "QEMU binary to run (default qemu-system-ARCH from PATH)")
	accel := fs.String("accel", "tcg", "QEMU accelerator")
	firmware := fs.String("firmware", "", "firmware for a boot medium: bios or efi (default: from its name, NAME-efi.img is efi; else bios on amd64, efi on arm64)")
	netboot := fs.String("netboot", "", "boot from the network instead: QEMU's DHCP hands the NIC this boot file; under BIOS its iPXE\n"+
		"ROM fetches an HTTP URL, such as kiln serve's http://10.0.2.2:PORT/boot.ipxe (10.0.2.2 is this machine)")
	verbose := fs.Bool("v", false, "print the QEMU command line before booting")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cpus < 1 {
		return usageError{fmt.Sprintf("-cpus %d: want 1 or more", *cpus)}
	}
	cfg := qemu.Config{
		Arch: *arch, Memory: *mem, CPUs: *cpus, Network: *network, QEMU: *bin, Accel: *accel,
		Console: stdout, Stderr: stderr,
	}
	for _, d := range disks {
		disk, err := qemu.ParseDisk(d)
		if err != nil {
			return usageError{err.Error()}
		}
		cfg.Disks = append(cfg.Disks, disk)
	}
	for _, p := range publish {
		f, err := qemu.ParseForward(p)
		if err != nil {
			return usageError{err.Error()}
		}
		cfg.PortForwards = append(cfg.PortForwards, f)
	}
	var files boot
	if *netboot != "" {
		if fs.NArg() > 0 {
			return usageError{"-netboot: the kernel comes from the network; give no PREFIX, MEDIUM or KERNEL"}
		}
		if *appendCmdline != "" {
			return usageError{"-cmdline-append: a network boot's command line comes from its server (kiln serve: the machine's cmdline file)"}
		}
		cfg.Netboot = *netboot
		cfg.Firmware = *firmware
	} else {
		var err error
		if files, err = bootFiles(fs.Args()); err != nil {
			return err
		}
	}
	if *data != "" {
		drive, err := configDrive(*data)
		if err != nil {
			return err
		}
		defer os.Remove(drive)
		cfg.Disks = append(cfg.Disks, qemu.Disk{Path: drive, Format: "raw", ReadOnly: true})
	}
	if files.medium != nil {
		if *appendCmdline != "" {
			return usageError{"-cmdline-append: " + files.medium.Path + " holds its own command line; rebuild it with another cmdline in the YAML"}
		}
		cfg.Medium, cfg.Firmware = files.medium, files.firmware
		if *firmware != "" {
			cfg.Firmware = *firmware
		}
		if strings.HasSuffix(files.medium.Path, "-ipl.iso") && cfg.Arch == "" {
			cfg.Arch = "s390x" // iso-ipl: only s390x IPLs it
		}
	} else if *netboot == "" {
		if *firmware != "" {
			return usageError{"-firmware: only a boot medium (a disk image, ISO or UKI) boots through firmware"}
		}
		cfg.Kernel, cfg.Initrd = files.kernel, files.initrd
		cfg.Cmdline = strings.TrimSpace(files.cmdline + " " + *appendCmdline)
	}
	interactive := isTerminal(stdin)
	if interactive || isPipe(stdin) {
		// A pipe is forwarded too, so that scripts can type into the guest's console.
		cfg.Stdin = stdin
	}
	argv, err := qemu.Args(cfg)
	if err != nil {
		return err
	}
	if *verbose {
		fmt.Fprintln(stderr, "kiln run:", shellQuote(argv))
	}
	if interactive {
		fmt.Fprintln(stderr, "kiln run: booting; Ctrl-A X quits, Ctrl-A C toggles the QEMU monitor")
	}
	err = qemu.Run(ctx, cfg)
	var ee *qemu.ExitError
	if errors.As(err, &ee) {
		// QEMU's messages and the console are on the terminal already: only say how it ended.
		msg := fmt.Sprintf("qemu exited with status %d", ee.Code)
		switch {
		case ee.Panic != "":
			msg = "the guest kernel panicked: " + strings.TrimSpace(ee.Panic)
		case ee.Code < 0:
			msg = "qemu was killed by a signal"
		}
		return exitCodeError{code: ee.ExitCode(), err: errors.New(msg)}
	}
	return err
}

// boot names the files to boot: a kernel (and initrd), or a medium.
type boot struct {
	kernel, initrd, cmdline string
	medium                  *qemu.Medium
	firmware                string // the firmware the medium's name asks for, or ""
}

// mediumOf recognises the boot media kiln build writes by their names: NAME.efi (a UKI),
// NAME[-efi|-efi-initrd|-ipl].iso and NAME.iso, NAME-efi.img and NAME-bios.img, NAME-aws.raw,
// .qcow2, .vhd and .vmdk disks. A name ending in "-bios" asks for BIOS firmware, and so does
// a plain NAME.iso (iso-bios); every other medium kiln writes boots through EFI (the cloud
// disks hold raw-efi's disk). Other names get no firmware from their name (-firmware, else
// the architecture's default, decides).
func mediumOf(path string) (*qemu.Medium, string) {
	base := filepath.Base(path)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	fw := "efi"
	switch {
	case strings.HasSuffix(stem, "-bios"):
		fw = "bios"
	case ext == ".iso" && !strings.HasSuffix(stem, "-efi") && !strings.HasSuffix(stem, "-efi-initrd"):
		fw = "bios"
	case ext == ".img" && !strings.HasSuffix(stem, "-efi"), ext == ".raw" && !strings.HasSuffix(stem, "-aws"):
		fw = "" // not a name kiln writes: the firmware is not known from it
	}
	switch ext {
	case ".efi":
		return &qemu.Medium{Path: path, Kind: "efi"}, "efi"
	case ".iso":
		return &qemu.Medium{Path: path, Kind: "cdrom"}, fw
	case ".img", ".raw":
		return &qemu.Medium{Path: path, Kind: "disk", Format: "raw"}, fw
	case ".qcow2":
		return &qemu.Medium{Path: path, Kind: "disk", Format: "qcow2"}, fw
	case ".vhd":
		return &qemu.Medium{Path: path, Kind: "disk", Format: "vpc"}, fw
	case ".vmdk":
		return &qemu.Medium{Path: path, Kind: "disk", Format: "vmdk"}, fw
	}
	return nil, ""
}

// bootFiles reads the positional arguments: PREFIX (kiln build's output name), KERNEL, or
// KERNEL INITRD.
func bootFiles(args []string) (boot, error) {
	switch len(args) {
	case 1:
		prefix := args[0]
		b := boot{kernel: assemble.KernelFile(prefix), initrd: assemble.InitrdFile(prefix)}
		if _, err := os.Stat(b.kernel); err != nil {
			if fi, ferr := os.Stat(prefix); ferr == nil && fi.Mode().IsRegular() {
				if m, fw := mediumOf(prefix); m != nil {
					return boot{medium: m, firmware: fw}, nil
				}
				if strings.HasSuffix(prefix, ".tar.gz") {
					return boot{}, fmt.Errorf("%s is an archive (gcp's format holds disk.raw: unpack it and boot that with -firmware efi)", prefix)
				}
				return boot{kernel: prefix}, nil // a kernel without an initrd
			}
			return boot{}, fmt.Errorf("no %s: give the output name `kiln build` wrote (out/NAME for out/NAME-kernel), a boot medium (NAME.efi, NAME-efi.img, NAME.iso, ...), or KERNEL [INITRD]", b.kernel)
		}
		if _, err := os.Stat(b.initrd); err != nil {
			return boot{}, fmt.Errorf("%s exists but %s does not: build the kernel+initrd format again", b.kernel, b.initrd)
		}
		cmdline, err := os.ReadFile(assemble.CmdlineFile(prefix))
		switch {
		case err == nil:
			b.cmdline = strings.TrimSpace(string(cmdline))
		case !errors.Is(err, os.ErrNotExist):
			return boot{}, fmt.Errorf("reading the kernel command line: %w", err)
		}
		return b, nil
	case 2:
		return boot{kernel: args[0], initrd: args[1]}, nil
	case 0:
		return boot{}, usageError{"nothing to boot: give PREFIX or KERNEL [INITRD]"}
	}
	return boot{}, usageError{fmt.Sprintf("%d arguments: give PREFIX or KERNEL [INITRD]", len(args))}
}

// isTerminal reports whether r is a terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && f != nil && term.IsTerminal(int(f.Fd()))
}

// isPipe reports whether r is a pipe (kiln run qemu ... < <(commands) or cmds | kiln run qemu).
func isPipe(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok || f == nil {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeNamedPipe != 0
}

// shellQuote writes argv so that it can be pasted into a shell.
func shellQuote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=/.,:+@") == "" {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// exitCodeError ends kiln with its code after printing its message (main's run handles it).
type exitCodeError struct {
	code int
	err  error
}

func (e exitCodeError) Error() string { return e.err.Error() }
func (e exitCodeError) Unwrap() error { return e.err }

// ExitCode is the code kiln should exit with.
func (e exitCodeError) ExitCode() int { return e.code }
