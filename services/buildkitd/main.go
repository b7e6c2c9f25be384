// Command kiln-buildkitd starts BuildKit's daemon on a builder node and says when it is ready.
// It is the buildkitd service of images/builder.yml: a long-running container under kiln's
// init, which restarts it if it exits.
//
// Before it starts buildkitd it:
//
//   - checks the node's TLS files in -certs (default /run/config/buildkit, written there by the
//     metadata service from the node's user data; `kiln builder certs -node-config DIR` makes
//     them): ca.pem, server.pem and server-key.pem must all be there, parse, belong together,
//     be signed by the CA and be valid now. Only then does buildkitd listen on -tcp, with mutual
//     TLS: a client must present a certificate the CA signed. When any check fails it says so on
//     the console and serves only the unix socket inside the node: a builder never listens on
//     the network in the clear (buildkitd itself would, when given a CA without a certificate);
//   - sizes garbage collection to the file system holding -root: buildkitd keeps at most
//     -max-used of it and leaves -min-free free, and the console line gives both in bytes;
//   - warns when that file system is a tmpfs (no state disk): the cache is lost at power off;
//   - writes buildkitd's configuration to -config;
//   - when -certs has trusted-ca.pem (kiln builder certs -trust: a proxy's CA, say), gives
//     buildkitd the image's root certificates and those (SSL_CERT_FILE), for what its builds
//     fetch over HTTPS; a file without a valid certificate is a console warning.
//
// Then it runs buildkitd, asks it over the unix socket (gRPC health) until it answers, and
// prints "ready on ..." with the seconds since the kernel started (kiln-init puts the
// service's name before each line of its output: "buildkitd: ready on ..."). SIGTERM and SIGINT
// are passed on to buildkitd; kiln-buildkitd exits with buildkitd's status.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.Certs, "certs", "/run/config/buildkit", "folder with ca.pem, server.pem and server-key.pem")
	flag.StringVar(&o.TCP, "tcp", "0.0.0.0:1234", `address to serve with mutual TLS ("" for the unix socket only)`)
	flag.StringVar(&o.Socket, "socket", "/run/buildkit/buildkitd.sock", "unix socket for clients inside the node")
	flag.StringVar(&o.Root, "root", "/var/lib/buildkit", "buildkitd's state")
	flag.StringVar(&o.Config, "config", "/run/buildkit/buildkitd.toml", "where to write buildkitd's configuration")
	flag.StringVar(&o.Buildkitd, "buildkitd", "/usr/bin/buildkitd", "the buildkitd program")
	flag.StringVar(&o.SystemRoots, "system-roots", "/etc/ssl/certs/ca-certificates.crt", "the image's root certificates, which -certs' trusted-ca.pem adds to")
	flag.IntVar(&o.MaxUsed, "max-used", 80, "percent of the state file system the build cache may use")
	flag.IntVar(&o.MinFree, "min-free", 10, "percent of the state file system garbage collection keeps free")
	flag.IntVar(&o.Reserved, "reserved", 10, "percent of the state file system the cache always keeps")
	flag.DurationVar(&o.ReadyTimeout, "ready-timeout", 10*time.Minute, "how long buildkitd may take to answer")
	flag.BoolVar(&o.Debug, "debug", false, "buildkitd's debug log")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "kiln-buildkitd: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(os.Stderr, "kiln-buildkitd: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	code, err := run(ctx, o, logf)
	if err != nil {
		logf("%v", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
