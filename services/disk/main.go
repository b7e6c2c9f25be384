// Command disk gives a node its state disk: it finds the disk, makes an ext4 file system on it
// when it is blank, checks it and mounts it on /var/lib, so that containerd's and BuildKit's
// state (and the SSH host key) survive a reboot. It runs as an onboot container, before
// containerd and the services start (images/builder.yml).
//
// Which disk, from the block devices in /sys/block (loop, RAM, optical, device-mapper and
// read-only devices are never candidates):
//
//  1. the first disk or partition with an ext2/3/4 file system labelled kiln-state (-label);
//  2. else, once the list of disks has stayed the same for -settle (disks behind slow drivers
//     appear late), the first whole disk with no partitions whose first and last MiB are all
//     zeros: it is formatted as ext4 with that label. A disk that holds anything else (a
//     partition table, a config drive, another file system, RAID metadata at its end) is
//     never touched.
//
// kiln.state=off on the kernel command line (-cmdline) skips the search.
//
// A labelled disk gets e2fsck -p before it is mounted, and e2fsck -y when that leaves errors;
// one that e2fsck cannot repair is not mounted.
//
// Without a state disk /var/lib stays in memory: the command says so loudly on every boot and
// still exits 0, as it does when the disk cannot be formatted, checked or mounted: the node
// boots either way, and what it lacks is said on the console. Exit status 1 is for a kernel
// command line that cannot be read, 2 for a usage mistake.
//
// Console lines, on stderr; kiln-init shows them with the container's name before each:
//
//	disk: formatting /dev/vdb (8.0 GiB, blank) as ext4, label kiln-state
//	disk: /dev/vdb (label kiln-state) mounted on /var/lib: 7.8 GiB free of 7.8 GiB
//	disk: WARNING: no state disk (no disk labelled kiln-state, and no blank disk): /var/lib is in memory; ...
//
// The mount is made in the node's mount namespace (-mount-ns, /proc/1/ns/mnt: the container
// shares the node's PID namespace), so that the node and every container started after it see
// the disk; formatting and checking happen in the container, through its /dev.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	var c Config
	flag.StringVar(&c.Sys, "sys", "/sys", "sysfs, where the block devices are listed")
	flag.StringVar(&c.Dev, "dev", "/dev", "the device nodes")
	flag.StringVar(&c.Target, "target", "/var/lib", "where the state disk is mounted")
	flag.StringVar(&c.Label, "label", "kiln-state", "the file system label of the state disk")
	flag.StringVar(&c.Mkfs, "mkfs", "/usr/sbin/mke2fs", "mke2fs, to format a blank disk")
	flag.StringVar(&c.Fsck, "fsck", "/usr/sbin/e2fsck", "e2fsck, to check the file system before mounting it")
	flag.StringVar(&c.MountNS, "mount-ns", "/proc/1/ns/mnt", "the mount namespace to mount the disk in (the node's; \"\" for this process's own)")
	flag.DurationVar(&c.Settle, "settle", time.Second, "with no labelled disk, how long the list of disks must stay the same before a blank one is formatted")
	flag.StringVar(&c.Cmdline, "cmdline", "/proc/cmdline", "the kernel command line (kiln.state=off)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: disk [flags] [DEVICE...]\n\nFind, format and mount the node's state disk (DEVICE...: only these, instead of /sys/block's disks).\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	c.Devices = flag.Args()
	c.Log = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	if err := Run(c); err != nil {
		c.Log("%v", err)
		os.Exit(1)
	}
}
