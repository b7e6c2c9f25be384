package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-os/kiln/builder"
	"github.com/kiln-os/kiln/internal/atomicfile"
)

type builderCommand struct {
	name, usage, summary string
	run                  func(ctx context.Context, d *builder.Daemon, args []string) error
}

func builderCommands() []builderCommand {
	return []builderCommand{
		{"start", "kiln builder start [-tcp HOST:PORT] [-debug]", "start the local buildkitd (a plain process; state in ~/.kiln/builder)", builderStart},
		{"stop", "kiln builder stop", "stop the local buildkitd", builderStop},
		{"status", "kiln builder status", "show whether the local buildkitd runs, its addresses, version and platforms", builderStatus},
		{"certs", "kiln builder certs [-hosts NAME,...] [-force | -reissue] [-node-config DIR]", "make a CA and server/client certificates for builders reached over TCP (mutual TLS)", builderCerts},
	}
}

func builderRootDir(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	return builder.DefaultRoot()
}

func localDaemon(root string) (*builder.Daemon, error) {
	return &builder.Daemon{Root: root}, nil
}

func runBuilder(ctx context.Context, args []string) error {
	root := ""
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := strings.TrimLeft(args[0], "-")
		switch {
		case a == "root" && len(args) > 1:
			root, args = args[1], args[2:]
		case strings.HasPrefix(a, "root="):
			root, args = strings.TrimPrefix(a, "root="), args[1:]
		case a == "h" || a == "help":
			printBuilderUsage(os.Stderr)
			return nil
		default:
			return usageError{"unknown flag " + args[0]}
		}
	}
	if len(args) == 0 {
		printBuilderUsage(os.Stderr)
		return usageError{"no builder command given"}
	}
	r, err := builderRootDir(root)
	if err != nil {
		return err
	}
	d, _ := localDaemon(r)
	for _, bc := range builderCommands() {
		if bc.name == args[0] {
			return bc.run(ctx, d, args[1:])
		}
	}
	printBuilderUsage(os.Stderr)
	return usageError{fmt.Sprintf("unknown builder command %q", args[0])}
}

func printBuilderUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: kiln builder [-root DIR] COMMAND ...\n\n"+
		"The local builder is a buildkitd run as a plain process, with state in -root\n"+
		"(default $KILN_BUILDER_ROOT or ~/.kiln/builder). kiln pkg build starts it when needed.\n\nCommands:")
	for _, bc := range builderCommands() {
		fmt.Fprintf(w, "  %-7s %s\n", bc.name, bc.summary)
	}
}

func lookupBuilder(name string) builderCommand {
	for _, bc := range builderCommands() {
		if bc.name == name {
			return bc
		}
	}
	return builderCommand{}
}

func builderStart(ctx context.Context, d *builder.Daemon, args []string) error {
	bc := lookupBuilder("start")
	fs := newFlags("builder start", bc.usage, bc.summary+".\n\nWith -tcp the builder also serves remote kiln clients over mutual TLS, with the\n"+
		"certificates in ROOT/certs (see kiln builder certs): this is how a machine becomes a\nnative builder node for `kiln pkg build --builders`.")
	tcp := fs.String("tcp", "", "also listen on HOST:PORT with mutual TLS")
	debug := fs.Bool("debug", false, "buildkitd debug logging")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected arguments: " + strings.Join(fs.Args(), " ")}
	}
	d.TCP, d.Debug = *tcp, *debug
	if err := d.Start(ctx); err != nil {
		return err
	}
	return printStatus(ctx, d)
}

func builderStop(ctx context.Context, d *builder.Daemon, args []string) error {
	bc := lookupBuilder("stop")
	fs := newFlags("builder stop", bc.usage, bc.summary+".")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := d.Stop(ctx); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "builder stopped")
	return nil
}

func builderStatus(ctx context.Context, d *builder.Daemon, args []string) error {
	bc := lookupBuilder("status")
	fs := newFlags("builder status", bc.usage, bc.summary+".")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return printStatus(ctx, d)
}

func printStatus(ctx context.Context, d *builder.Daemon) error {
	st, err := d.Status(ctx)
	fmt.Print(st.String())
	return err
}

func builderCerts(_ context.Context, d *builder.Daemon, args []string) error {
	bc := lookupBuilder("certs")
	fs := newFlags("builder certs", bc.usage, bc.summary+".\n\n"+
		"Files go to ROOT/certs. A builder node needs ca.pem, server.pem and server-key.pem:\n"+
		"-node-config DIR writes them as DIR/user-data, the node configuration the appliance's\n"+
		"metadata service reads (kiln run qemu -data DIR, a cidata drive, or an HTTP seed; see\n"+
		"docs/appliance.md). A plain kiln builder start -tcp reads them from ROOT/certs. Keep\n"+
		"ca-key.pem private. With certificates in place, -node-config alone writes the node\n"+
		"configuration again; -reissue issues new server and client certificates from the same CA\n"+
		"(-hosts to name the nodes anew, else the old names; before they expire); -force replaces\n"+
		"everything, the CA too.")
	hosts := fs.String("hosts", "", "comma-separated names and addresses the builder is reached by (localhost and loopback are always included)")
	force := fs.Bool("force", false, "replace existing certificates, the CA too")
	reissue := fs.Bool("reissue", false, "issue new server and client certificates from the existing CA")
	nodeConfig := fs.String("node-config", "", "also write DIR/user-data: the node configuration holding the node's TLS files")
	trust := fs.String("trust", "", "with -node-config: PEM root certificates the node's builds trust for their downloads besides\n"+
		"the image's Debian roots (a TLS-inspecting proxy's CA; this machine's own bundle, /etc/ssl/certs/ca-certificates.crt)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected arguments: " + strings.Join(fs.Args(), " ")}
	}
	if *trust != "" && *nodeConfig == "" {
		return usageError{"-trust goes into the node configuration: give -node-config DIR too"}
	}
	var trusted []byte
	if *trust != "" {
		var err error
		if trusted, err = os.ReadFile(*trust); err != nil {
			return fmt.Errorf("-trust: %w", err)
		}
		if err := builder.CheckRoots(trusted); err != nil {
			return fmt.Errorf("-trust %s: %w", *trust, err)
		}
	}
	if *force && *reissue {
		return usageError{"-force and -reissue exclude each other: -force makes a new CA, -reissue keeps it"}
	}
	var hs []string
	if *hosts != "" {
		hs = strings.Split(*hosts, ",")
	}
	var opts []builder.CertOption
	if *force {
		opts = append(opts, builder.ReplaceExisting())
	}
	if *reissue {
		opts = append(opts, builder.KeepCA())
	}
	files, err := builder.GenerateCerts(d.CertDir(), hs, opts...)
	switch {
	case err == nil:
		fmt.Printf("CA:     %s\nserver: %s %s\nclient: %s %s\n", files.CA, files.ServerCert, files.ServerKey, files.ClientCert, files.ClientKey)
	case errors.Is(err, builder.ErrCertsExist) && *nodeConfig != "" && *hosts == "":
		// Only the node configuration was asked for: write it from the files there are.
		if files, err = builder.CertFilesIn(d.CertDir()); err != nil {
			return err
		}
	default:
		return err
	}
	if *nodeConfig == "" {
		return nil
	}
	data, err := builder.NodeUserData(files, trusted)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*nodeConfig, 0o700); err != nil {
		return fmt.Errorf("-node-config: %w", err)
	}
	out := filepath.Join(*nodeConfig, "user-data")
	if err := atomicfile.Write(out, data, 0o600); err != nil {
		return fmt.Errorf("-node-config: %w", err)
	}
	fmt.Printf("node:   %s (holds the server's key: hand it to the node only)\n", out)
	return nil
}
