// Command time keeps a node's clock right with NTP, so that TLS certificates validate: a node
// that boots with its clock at the epoch, or hours off, rejects every certificate it is shown.
// It is an SNTP client (github.com/beevik/ntp), not an NTP server and not a full NTP daemon: it
// never serves time, never disciplines the clock's frequency and never writes the RTC.
//
//	time [-interval 15m] [-once] [-dry-run]
//
// The servers, one list taken whole from the first source that names at least one:
//
//  1. kiln.ntp=host[:port],... on the kernel command line (-cmdline, /proc/cmdline; the last
//     kiln.ntp= wins, as with other kernel parameters);
//  2. /run/config/ntp, the metadata service's file (from the node's user data);
//  3. /run/network/ntp, the DHCP service's file (option 42 of the leases).
//
// The files (-servers-file, in order of precedence, separated by commas) have one server a
// line, host or host:port ([v6]:port with a port; a bare IPv6 address without); blank lines
// and text after # are ignored. The port is 123 unless given. A bad line is reported with its
// file and line number and skipped; a source with no good line counts as absent. The sources
// are read again before every query, so a file that appears later (the network service writes
// its file at boot, and rewrites it on renewal) is taken up: while no source names a server
// they are read every -retry. The lines about the sources are said again only when they
// change. A server given by name is looked up through the image's /etc/resolv.conf, a link to
// /run/resolvconf/resolv.conf, which the network service writes.
//
// Each round asks every server at once (at most -timeout each) and keeps, among the valid
// answers (beevik's Response.Validate: not a kiss of death, synchronised, a sane root
// distance), the one with the smallest root distance. An offset over 0.5 s steps the clock
// (adjtimex ADJ_SETOFFSET); a smaller one is slewed, at most 0.5 ms a second (adjtimex
// ADJ_OFFSET_SINGLESHOT, as adjtime(3)). Both need CAP_SYS_TIME; without it the line says so
// and the service goes on. The next round is -interval later; after a round with no valid
// answer, -retry later, doubled after each failed round up to -interval.
//
// Console lines, on stderr; kiln-init shows them with the container's name before each (here
// "time: ") and keeps them in /var/log:
//
//	time: NTP servers from /run/network/ntp: 10.0.2.2:123
//	time: offset +0.012s from 10.0.2.2:123 (stratum 2): slewing
//	time: offset -3600.204s from 10.0.2.2:123 (stratum 2): clock stepped
//	time: no valid NTP answer (10.0.2.2:123: no answer within 5s); trying again in 10s
//	time: no NTP servers (kiln.ntp= on the kernel command line, /run/config/ntp, /run/network/ntp); waiting for one
//	time: /run/config/ntp:2: "a b": want one server a line (host or host:port); server skipped
//	time: offset +0.000s from 10.0.2.2:123 (stratum 2): cannot set the clock: adjtimex(...): operation not permitted (the container needs CAP_SYS_TIME)
//
// -once does one round and exits; -dry-run never sets the clock (the tests use it, as they may
// not change their machine's clock). Exit status: 0, whatever the servers did, also on SIGTERM;
// 2 for a usage mistake.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Env is where the command reads its servers, how it asks them, and where it reports.
type Env struct {
	Cmdline     string        // the kernel command line (kiln.ntp=)
	ServerFiles []string      // files of servers, one a line, in order of precedence
	Interval    time.Duration // between rounds that got an answer
	Retry       time.Duration // after the first failed round, doubled up to Interval; the wait for servers
	Timeout     time.Duration // for each query
	Once        bool          // one round, then return
	// Clock sets the clock; nil is -dry-run: the offset is reported and nothing is set.
	Clock Clock
	// Now is the local clock the queries are timed with; nil is the system's, with the
	// kernel's receive timestamps. Tests skew it to see a large offset.
	Now func() time.Time
	Log func(format string, args ...any)
}

// systemClock is the clock runMain sets without -dry-run (a variable for the tests, which must
// not set their machine's clock).
var systemClock Clock = KernelClock{}

func main() {
	os.Exit(runMain(os.Args[1:], os.Stderr))
}

// runMain runs the command with its arguments and returns its exit status.
func runMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("time", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := Env{}
	files := fs.String("servers-file", "/run/config/ntp,/run/network/ntp", "files of NTP servers, one a line, in order of precedence, separated by commas")
	fs.StringVar(&env.Cmdline, "cmdline", "/proc/cmdline", "the kernel command line (kiln.ntp=host[:port],...; before the files)")
	fs.DurationVar(&env.Interval, "interval", 15*time.Minute, "the time between rounds of queries")
	fs.DurationVar(&env.Retry, "retry", 10*time.Second, "the wait after a failed round (doubled up to -interval) and between looks for servers when none is configured")
	fs.DurationVar(&env.Timeout, "timeout", 5*time.Second, "how long to wait for each server's answer")
	fs.BoolVar(&env.Once, "once", false, "query once, set the clock and exit")
	dryRun := fs.Bool("dry-run", false, "report the offset, never set the clock")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: time [-interval 15m] [-once] [-dry-run]   (see the flags below)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	env.Log = func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	for f := range strings.SplitSeq(*files, ",") {
		if f = strings.TrimSpace(f); f != "" {
			env.ServerFiles = append(env.ServerFiles, f)
		}
	}
	if !*dryRun {
		env.Clock = systemClock
	}
	switch {
	case fs.NArg() > 0:
		env.Log("unexpected arguments %q", fs.Args())
	case env.Interval <= 0, env.Retry <= 0, env.Timeout <= 0:
		env.Log("-interval %s, -retry %s, -timeout %s: want positive durations", env.Interval, env.Retry, env.Timeout)
	default:
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		Run(ctx, env)
		return 0
	}
	fs.Usage()
	return 2
}
