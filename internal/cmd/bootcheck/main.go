// Command bootcheck boots a kiln system built from images/minimal.yml in QEMU and checks it from
// the console, as a person at the console would: the onboot container ran, the services came
// up, `ctr tasks ls` in the console shell lists them RUNNING, `kill -TERM 1` runs the
// onshutdown container and powers the machine off with QEMU exiting 0, and no line of the whole
// console reports a failure (kiln-init's "step NAME failed", "boot failed", a failed onboot or
// onshutdown container, a recovered panic). It prints the console as it goes and, at the end,
// how long each milestone took and the boot's budget part by part (QEMU, firmware and the kernel's self-decompression, the
// kernel before, during and after unpacking the initramfs, each kiln-init step, read from the
// console). `make demo` and `make bench` run it.
//
// With -bare it instead boots the kernel with a tiny init that prints a marker and powers off,
// which measures the kernel's own boot cost on the same emulator.
//
// With -pairs N it boots N interleaved pairs (the bare kernel, then the system, each checked
// as above, consoles not printed) and prints one markdown table of medians: every part of the
// budget, "all services up", the bare kernel's marker, and their ratio. That is the table
// docs/performance.md records per architecture.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kiln-os/kiln/internal/archive"
	"github.com/kiln-os/kiln/internal/qemu"
)

func main() {
	prefix := flag.String("prefix", "", "kiln build output prefix (PREFIX-kernel, PREFIX-initrd.img, PREFIX-cmdline)")
	arch := flag.String("arch", "", "guest architecture (default: the kernel's)")
	mem := flag.String("mem", "2048M", "guest memory")
	timeout := flag.Duration("timeout", 5*time.Minute, "the longest any one milestone may take")
	quiet := flag.Bool("quiet", false, "do not print the console")
	bare := flag.Bool("bare", false, "boot PREFIX's kernel with a marker-and-poweroff init instead of its initrd (the kernel's own cost)")
	cpus := flag.Int("cpus", 1, "guest CPUs (QEMU -smp)")
	pairs := flag.Int("pairs", 0, "boot N interleaved pairs (bare kernel, then the system) and print a table of medians")
	flag.Parse()
	guestCPUs = *cpus
	if *prefix == "" {
		fmt.Fprintln(os.Stderr, "bootcheck: -prefix is required")
		os.Exit(2)
	}
	console := io.Writer(os.Stdout)
	if *quiet {
		console = io.Discard
	}
	var err error
	switch {
	case *pairs > 0:
		err = runPairs(*prefix, *arch, *mem, *timeout, *pairs)
	case *bare:
		err = runBare(*prefix, *arch, *mem, *timeout, console)
	default:
		err = run(*prefix, *arch, *mem, *timeout, console)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bootcheck:", err)
		os.Exit(1)
	}
}

// guestCPUs is -cpus, for every boot.
var guestCPUs = 1

// kernelFirstLine matches the first line every Linux kernel prints, or, when the kernel is
// quiet, the first line of kiln-init or of the bare init.
var kernelFirstLine = regexp.MustCompile(`Linux version \d|kiln-init: |KILN-BARE-MARKER`)

type milestone struct {
	what  string
	match *regexp.Regexp
	then  string // typed into the console after the match
}

// systemSteps are the milestones of a minimal.yml boot.
func systemSteps() []milestone {
	return []milestone{
		{what: "onboot ran", match: regexp.MustCompile(`kiln-init: onboot \S+ exited 0`)},
		{what: "all services up", match: regexp.MustCompile(`kiln-init: all services up`),
			then: "ctr -n services.linuxkit tasks ls\n"},
		{what: "services RUNNING under containerd", match: regexp.MustCompile(`^hello\s+\d+\s+RUNNING`),
			then: "kill -TERM 1\n"},
		{what: "onshutdown ran", match: regexp.MustCompile(`kiln-init: onshutdown \S+ exited 0`)},
		{what: "powering off", match: regexp.MustCompile(`kiln-init: powering off`)},
	}
}

var bareSteps = []milestone{{what: "marker", match: regexp.MustCompile(`KILN-BARE-MARKER`)}}

func run(prefix, arch, mem string, timeout time.Duration, console io.Writer) error {
	r, err := boot(prefix, "", arch, mem, timeout, console, systemSteps())
	if err != nil {
		return err
	}
	r.print(prefix)
	return nil
}

func runBare(prefix, arch, mem string, timeout time.Duration, console io.Writer) error {
	initrd, arch, cleanup, err := bareSetup(prefix, arch)
	if err != nil {
		return err
	}
	defer cleanup()
	r, err := boot(prefix, initrd, arch, mem, timeout, console, bareSteps)
	if err != nil {
		return err
	}
	r.print(prefix)
	return nil
}

// bareSetup builds the marker-and-poweroff initramfs for PREFIX's kernel, and returns the
// architecture (arch, or the kernel's when arch is "").
func bareSetup(prefix, arch string) (initrd, archOut string, cleanup func(), err error) {
	if arch == "" {
		info, err := qemu.Inspect(prefix + "-kernel")
		if err != nil {
			return "", "", nil, err
		}
		arch = info.Arch
	}
	initBin, err := buildBareInit(arch)
	if err != nil {
		return "", "", nil, err
	}
	defer os.RemoveAll(filepath.Dir(initBin))
	initrd, err = bareInitrd(initBin)
	if err != nil {
		return "", "", nil, err
	}
	return initrd, arch, func() { os.Remove(initrd) }, nil
}

// runPairs boots n interleaved pairs, bare kernel then system, and prints the medians.
func runPairs(prefix, arch, mem string, timeout time.Duration, n int) error {
	initrd, arch, cleanup, err := bareSetup(prefix, arch)
	if err != nil {
		return err
	}
	defer cleanup()
	var bare, full []bootResult
	for i := range n {
		fmt.Fprintf(os.Stderr, "bootcheck: pair %d of %d: bare kernel\n", i+1, n)
		b, err := boot(prefix, initrd, arch, mem, timeout, io.Discard, bareSteps)
		if err != nil {
			return fmt.Errorf("pair %d, bare kernel: %w", i+1, err)
		}
		fmt.Fprintf(os.Stderr, "bootcheck: pair %d of %d: system\n", i+1, n)
		f, err := boot(prefix, "", arch, mem, timeout, io.Discard, systemSteps())
		if err != nil {
			return fmt.Errorf("pair %d, system: %w", i+1, err)
		}
		bare, full = append(bare, b), append(full, f)
	}
	fmt.Print(pairsTable(filepath.Base(prefix), arch, mem, bare, full))
	return nil
}

// bootResult is what one boot measured: when each milestone was seen (host time from QEMU's
// start) and the budget read from its console.
type bootResult struct {
	marks  []budgetRow
	budget budget
}

// at returns when milestone what was seen, or 0.
func (r bootResult) at(what string) time.Duration {
	for _, m := range r.marks {
		if m.part == what {
			return m.d
		}
	}
	return 0
}

func (r bootResult) print(prefix string) {
	fmt.Printf("\nbootcheck %s:\n", filepath.Base(prefix))
	for _, m := range r.marks {
		fmt.Printf("  %-36s %6.1f s\n", m.part, m.d.Seconds())
	}
	if len(r.budget.rows) > 0 {
		fmt.Printf("\nboot budget (the kernel's own timestamps, then kiln-init's step times; running total):\n%s", r.budget)
	}
}

func boot(prefix, initrd, arch, mem string, timeout time.Duration, console io.Writer, steps []milestone) (bootResult, error) {
	var r bootResult
	cmdline, err := os.ReadFile(prefix + "-cmdline")
	if err != nil {
		return r, err
	}
	if initrd == "" {
		initrd = prefix + "-initrd.img"
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdin, typer := io.Pipe()
	defer typer.Close()
	start := time.Now()
	vm, err := qemu.Start(ctx, qemu.Config{
		Arch: arch, Kernel: prefix + "-kernel", Initrd: initrd,
		Cmdline: strings.TrimSpace(string(cmdline)), Memory: mem, CPUs: guestCPUs,
		Console: console, Stdin: stdin,
	})
	if err != nil {
		return r, err
	}
	defer vm.Kill()
	// The kernel's first line, for the part of the budget the guest's clock cannot see. With
	// "quiet" on the command line the kernel prints nothing and init's first line comes
	// first: that part of the budget is then unknown.
	first, err := vm.WaitForMatch(ctx, kernelFirstLine, timeout)
	if err != nil {
		return r, fmt.Errorf("waiting for the kernel's or init's first line: %w", err)
	}
	var firstLine time.Duration
	if strings.Contains(first, "Linux version") {
		firstLine = time.Since(start)
	}
	for i, s := range steps {
		if i == 0 && firstLine == 0 && s.match.MatchString(first) {
			// A quiet kernel: the first line seen was already this milestone's.
		} else if _, err := vm.WaitForMatch(ctx, s.match, timeout); err != nil {
			return r, fmt.Errorf("waiting for %s: %w", s.what, err)
		}
		r.marks = append(r.marks, budgetRow{part: s.what, d: time.Since(start)})
		if s.then != "" {
			if _, err := io.WriteString(typer, s.then); err != nil {
				return r, err
			}
		}
	}
	done := make(chan error, 1)
	go func() { done <- vm.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return r, fmt.Errorf("QEMU: %w", err)
		}
	case <-time.After(timeout):
		return r, errors.New("QEMU did not exit after the guest powered off")
	}
	r.marks = append(r.marks, budgetRow{part: "QEMU exited 0", d: time.Since(start)})
	// The milestones were found in order; now the whole console: no failure line anywhere
	// (a boot step, an onboot or onshutdown container, a recovered panic).
	if err := vm.Check(); err != nil {
		return r, err
	}
	lines, _ := vm.Transcript()
	r.budget = parseBudget(lines, firstLine)
	return r, nil
}

// bareInitSource is PID 1 for -bare: print the marker, power off.
const bareInitSource = `package main

import (
	"fmt"
	"syscall"
)

func main() {
	fmt.Println("KILN-BARE-MARKER")
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}
`

// buildBareInit compiles bareInitSource for arch with the go command.
func buildBareInit(arch string) (string, error) {
	dir, err := os.MkdirTemp("", "bootcheck-bare-")
	if err != nil {
		return "", err
	}
	for name, text := range map[string]string{"go.mod": "module bare\n\ngo 1.26\n", "main.go": bareInitSource} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return "", err
		}
	}
	bin := filepath.Join(dir, "init")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the bare init: %w\n%s", err, out)
	}
	return bin, nil
}

// bareInitrd packs the static program initBin as /init in a gzip newc initramfs.
func bareInitrd(initBin string) (string, error) {
	data, err := os.ReadFile(initBin)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp("", "bootcheck-initrd-")
	if err != nil {
		return "", err
	}
	gz, err := archive.NewGzipWriter(f, archive.DefaultGzipLevel)
	if err != nil {
		f.Close()
		return "", err
	}
	cw := archive.NewCpioWriter(gz)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: "init", Mode: 0o755, Size: int64(len(data))}
	err = cw.WriteEntry(archive.Entry{Header: hdr}, bytes.NewReader(data))
	for _, c := range []io.Closer{cw, gz, f} {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
