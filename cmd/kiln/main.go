// Command kiln builds lean, immutable, bootable Linux systems from YAML whose every part is
// an OCI image. This file and its siblings only wire flags to the packages that do the work.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
)

// command is one subcommand: its usage line, its summary, and what runs it.
type command struct {
	name    string
	usage   string
	summary string
	run     func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"build", "kiln build [flags] FILE.yml...", "build a system from YAML into output files", runBuild},
		{"validate", "kiln validate FILE.yml...", "check YAML files without resolving images", runValidate},
		{"pkg", "kiln pkg build|show-tag|manifest [flags] DIR...", "build packages (OCI images) with BuildKit", runPkg},
		{"builder", "kiln builder start|stop|status|certs", "manage the local BuildKit daemon and builder certificates", runBuilder},
		{"serve", serveUsage, "serve built systems to machines that boot from the network (iPXE, PXE)", runServe},
		{"run", "kiln run qemu [flags] PREFIX | KERNEL [INITRD]", "boot a built system locally in QEMU", runRun},
		{"cache", "kiln cache ls|rm|clean|repair|import|export|pull|push ...", "manage the local OCI image cache", runCache},
		{"version", "kiln version", "print kiln's version", runVersion},
	}
}

// usageError marks a mistake in how kiln was called (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	// SIGINT and SIGTERM cancel ctx: every long step checks it, removes its temporary files
	// and returns. A second signal, once ctx is cancelled, ends the process at once (the next
	// build removes what that leaves).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	// Most of a build's live heap is its index of paths (a few hundred bytes each); at Go's
	// default GOGC=100 the heap grows to twice that between collections. At 50 a build of
	// 100,000 files peaks about 15% lower in memory for about 2% more CPU (docs/performance.md).
	// GOGC in the environment wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	// KILN_CPUPROFILE=FILE writes a CPU profile of the run (for `go tool pprof`).
	if p := os.Getenv("KILN_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			if err := pprof.StartCPUProfile(f); err == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if os.Getenv("KILN_CPUPROFILE") != "" {
		pprof.StopCPUProfile()
	}
	// KILN_MEMPROFILE=FILE writes a heap profile at the end of the run: what was allocated
	// where (`go tool pprof -sample_index=alloc_space`) and what was still in use.
	if p := os.Getenv("KILN_MEMPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			_ = f.Close()
		}
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			args = []string{args[1], "-h"}
		} else {
			printUsage(stderr)
			if len(args) == 0 {
				return 2
			}
			return 0
		}
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := runCommand(ctx, c, args[1:])
		var ue usageError
		var ec exitCodeError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "kiln %s: %v\nusage: %s\n", c.name, err, c.usage)
			return 2
		case errors.As(err, &ec):
			fmt.Fprintf(stderr, "kiln %s: %v\n", c.name, err)
			return ec.ExitCode()
		case ctx.Err() != nil && errors.Is(err, context.Canceled):
			fmt.Fprintf(stderr, "kiln %s: interrupted: %v\n", c.name, err)
			return 1
		default:
			fmt.Fprintf(stderr, "kiln %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "kiln: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return 2
}

// runCommand runs one command, turning a panic into an error: the last line of defence, so
// that a bug reads as a failure (exit code 1) rather than as Go's crash report (exit code 2,
// which means a usage mistake).
func runCommand(ctx context.Context, c command, args []string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error (a bug in kiln; please report it): %v", r)
		}
	}()
	return c.run(ctx, args)
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "kiln builds bootable, immutable Linux systems from YAML; every part is an OCI image.")
	fmt.Fprintln(w, "\nUsage:\n  kiln COMMAND [flags] [arguments]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'kiln help COMMAND' or 'kiln COMMAND -h' for a command's flags.")
	fmt.Fprintln(w, "Environment: KILN_CACHE (image cache, default ~/.kiln/cache), KILN_BUILDER_ROOT (local builder,\n"+
		"default ~/.kiln/builder), KILN_BUILDERS (remote builder nodes), KILN_INSECURE_REGISTRIES (registries\n"+
		"reached over plain HTTP besides loopback ones), SOURCE_DATE_EPOCH.")
}

// newFlags makes a flag set whose -h prints the usage line, the summary and the flags.
func newFlags(name, usage, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\n%s\n", usage, summary)
		var any bool
		fs.VisitAll(func(*flag.Flag) { any = true })
		if any {
			fmt.Fprintln(fs.Output(), "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses, turning flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(interleave(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

// interleave moves flags that follow positional arguments in front of them, so that
// `kiln build x.yml -format tar` works as users expect.
func interleave(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(flags, pos...)
}

// version is set at link time by the Makefile when it knows better.
var version = "dev"

func runVersion(_ context.Context, args []string) error {
	fs := newFlags("version", "kiln version", "Print kiln's version.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Println("kiln", version)
	return nil
}
