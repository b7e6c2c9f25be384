// Command network brings a node's network up, with static IPv4 addresses where the kernel
// command line or the node's user data give them and DHCPv4 elsewhere, and keeps its leases.
// It runs twice in a system: as an onboot container (-onboot), which configures the interfaces
// and waits for the leases before the services start, and as a service (-renew), which renews
// them.
//
//	network -onboot [-timeout 30s] [-if-cmdline PARAM]
//	network -renew
//
// -onboot sets lo up, then picks the interfaces: those named by kiln.net=eth0,eth1 on the
// kernel command line (-cmdline, /proc/cmdline), or every link that is not loopback and has
// an ethernet address, by name; kiln.net=none configures none. It sets each up. An interface
// with static settings (below) gets them at once: its address, never expiring, and a default
// route through gw-ip when given. The others ask for a DHCP lease, all at once, for at most
// -timeout. A lease puts its address in the kernel (with the lease's lifetime), its classless
// static routes (option 121) or else a default route through its router, and asks for the
// host name, NTP servers and search domains. An interface without a lease is said on the
// console and left unconfigured: the node boots without network, and the command still
// exits 0.
//
// Static settings come from two sources; for each interface the first one that has a setting
// for it wins, and a second setting for it is said on the console and ignored:
//
//  1. ip= on the kernel command line, Linux's nfsroot syntax, repeated for several interfaces;
//  2. the file network/static in the metadata service's folder (-config-dir,
//     /run/config/network/static; from user data {"network": {"entries": {"static":
//     {"content": "..."}}}}): one interface a line, the same syntax without "ip=", text after
//     # a comment.
//
// The syntax (trailing fields may be left out):
//
//	<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>
//	ip=10.1.0.11::10.1.0.1:24:node-1:eth0:off:10.1.0.1
//	ip=:::::eth1:dhcp
//
// autoconf off, none or static, or left empty with a client-ip, is a static setting; dhcp, on
// or any (or ip=dhcp alone), or no client-ip, is DHCP for that device, as without a setting
// (the file cannot give it a static one then). netmask is dotted (255.255.255.0) or a prefix
// length (24); without it the address's class mask is used, as the kernel does. An empty
// device is the first interface picked; a device that is not picked is said and ignored.
// hostname is the whole host name (the kernel would keep what comes before the first dot).
// server-ip (the NFS server) is not used. IPv4 only. A setting that is wrong is said on the
// console, naming its file and line or the ip= parameter, and its interface gets DHCP.
//
// -if-cmdline PARAM makes -onboot do nothing unless the kernel command line has PARAM= (or
// PARAM alone): a system that netboots with kiln.metadata.url= runs it before the metadata
// service, which then reaches its HTTP seed, and runs the usual -onboot after it. That later
// run keeps the DHCP leases the early one got (their files in -run-dir) instead of asking
// again, and applies the static settings again, the metadata's file included.
//
// -renew renews every lease that -onboot wrote: at T1 it asks the lease's server (RENEWING), at
// T2 any server (REBINDING, a new request), and when the lease runs out it removes the address
// and keeps asking. Each renewal is one console line. Static settings are left as they are
// (one line each says so); they keep their name servers and NTP servers in the files. With no
// lease to renew it says so and waits for SIGTERM, as a service that exited would be
// restarted; SIGTERM ends it with status 0 and releases nothing.
//
// Files written (the paths are flags, for tests):
//
//	/run/network/IFACE.json       the lease: address, mask, router, routes, dns, ntp, search,
//	                              host name, server, lease/T1/T2 seconds, when it came (wall
//	                              clock and time since boot) and the raw ACK (base64), from
//	                              which -renew rebuilds the lease (-run-dir); for static
//	                              settings "static": true, "source" (where they came from),
//	                              no ACK, and -renew leaves the interface alone
//	/run/network/ntp              the NTP servers of all leases and static settings, one a
//	                              line, for a time service
//	/run/resolvconf/resolv.conf   name servers and search domains of all leases and static
//	                              settings; a comment when there is neither, but always there,
//	                              for containers to bind (-resolv; LinuxKit's path)
//	-hostname-file                the host name, when the flag names a file (none by default)
//
// The host name is /run/config/hostname when the metadata service wrote it (-config-dir), else
// the hostname field of the first static setting that has one, else the host name option of
// the first lease that has one; it is set in the UTS namespace (the container needs uts:
// host). Without any it is left as it is.
//
// Console lines, on stderr; kiln-init shows them with the container's name before each (here
// "network: ") and keeps them in /var/log:
//
//	network: eth0: 10.0.2.15/24 via 10.0.2.2, dns 10.0.2.3, lease 24h0m0s (1.2s)
//	network: eth0: no DHCP lease within 30s; booting without network on eth0
//	network: no network interfaces besides lo; booting without network
//	network: eth1: 10.1.0.11/24 via 10.1.0.1, dns 10.1.0.1 (static, from the kernel command line)
//	network: /run/config/network/static:2: "10.1.0.300:::24::eth2": client-ip "10.1.0.300" is not an IPv4 address; DHCP on eth2
//	network: /run/config/network/static:3: "10.1.0.13:::24::eth1": eth1 already has its setting from the kernel command line; ignored
//	network: eth0: renewed 10.0.2.15/24, lease 24h0m0s
//	network: eth1: 10.1.0.11/24 is static (from the kernel command line); nothing to renew
//
// Exit status: 0, whatever the network did; 1 when the files under /run cannot be written; 2
// for a usage mistake.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Env is where the command reads and writes, and where it reports.
type Env struct {
	Cmdline      string        // the kernel command line
	RunDir       string        // the lease files and the NTP list: /run/network
	ConfigDir    string        // the metadata service's folder: /run/config
	Resolv       string        // /run/resolvconf/resolv.conf
	HostnameFile string        // written with the host name when not ""
	Timeout      time.Duration // how long -onboot waits for leases
	IfCmdline    string        // -onboot does nothing unless the command line has this parameter
	Log          func(format string, args ...any)
}

func main() {
	os.Exit(runMain(os.Args[1:], os.Stderr))
}

// runMain runs the command with its arguments and returns its exit status.
func runMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("network", flag.ContinueOnError)
	fs.SetOutput(stderr)
	onboot := fs.Bool("onboot", false, "configure the interfaces with DHCP and exit (an onboot container)")
	renew := fs.Bool("renew", false, "renew the leases -onboot got, until SIGTERM (a service)")
	env := Env{}
	fs.DurationVar(&env.Timeout, "timeout", 30*time.Second, "how long -onboot waits for the leases")
	fs.StringVar(&env.Cmdline, "cmdline", "/proc/cmdline", "the kernel command line (kiln.net=)")
	fs.StringVar(&env.RunDir, "run-dir", "/run/network", "the folder of the lease files and the NTP list")
	fs.StringVar(&env.ConfigDir, "config-dir", "/run/config", "the metadata service's folder (its hostname file)")
	fs.StringVar(&env.Resolv, "resolv", "/run/resolvconf/resolv.conf", "the resolv.conf to write")
	fs.StringVar(&env.HostnameFile, "hostname-file", "", "a file to write the host name to (/etc/hostname); none when empty")
	fs.StringVar(&env.IfCmdline, "if-cmdline", "", "with -onboot: do nothing unless the kernel command line has this parameter\n"+
		"(an early step before the metadata service: -if-cmdline kiln.metadata.url)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: network -onboot [-timeout 30s] | network -renew   (see the flags below)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	env.Log = func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	switch {
	case fs.NArg() > 0:
		env.Log("unexpected arguments %q", fs.Args())
	case *onboot == *renew:
		env.Log("give one of -onboot and -renew")
	case env.Timeout <= 0:
		env.Log("-timeout %s: want a positive duration", env.Timeout)
	default:
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		run := Onboot
		if *renew {
			run = Renew
		}
		if err := run(ctx, env); err != nil {
			env.Log("%v", err)
			return 1
		}
		return 0
	}
	fs.Usage()
	return 2
}
