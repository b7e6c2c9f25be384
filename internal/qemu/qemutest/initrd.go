package qemutest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-os/kiln/internal/archive"
)

// markerInit is the whole of the init MarkerInitrd boots: print the marker on the console,
// then power the machine off. If power-off fails it says so and waits, so the caller's timeout
// reports the message instead of a kernel panic about init exiting.
const markerInit = `package main

import (
	"fmt"
	"os"
	"syscall"
)

func main() {
	fmt.Fprintln(os.Stdout, %q)
	syscall.Sync()
	err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	fmt.Fprintln(os.Stdout, "qemutest init: power off failed:", err)
	select {}
}
`

// idleInit is the init IdleInitrd boots: it turns Ctrl-Alt-Del into SIGINT for itself, prints
// the marker and waits for SIGINT, SIGTERM or SIGPWR, then powers off.
const idleInit = `package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPWR)
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		fmt.Fprintln(os.Stdout, "qemutest init: turning Ctrl-Alt-Del into SIGINT failed:", err)
	}
	fmt.Fprintln(os.Stdout, %q)
	s := <-sigs
	fmt.Fprintf(os.Stdout, "qemutest init: got signal %%d, powering off\n", s.(syscall.Signal))
	syscall.Sync()
	err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	fmt.Fprintln(os.Stdout, "qemutest init: power off failed:", err)
	select {}
}
`

// SignalLine is the start of the line IdleInitrd's init prints when a signal arrives.
const SignalLine = "qemutest init: got signal"

// MarkerInitrd builds a gzip-compressed newc initrd for arch holding one static Go program as
// /init (plus /dev/console) that prints marker on a line of its own and powers the machine
// off. Booting it measures the kernel's own cost and proves the power-off path. The go
// command on PATH (go test puts its own first) cross-compiles it with CGO_ENABLED=0. The
// initrd is written into t.TempDir.
func MarkerInitrd(t testing.TB, arch, marker string) string {
	t.Helper()
	return buildInitrd(t, arch, fmt.Sprintf(markerInit, marker))
}

// IdleInitrd is MarkerInitrd with an init that, after printing marker, waits for SIGINT,
// SIGTERM or SIGPWR (Ctrl-Alt-Del, which s390x's signal-quiesce triggers, arrives as SIGINT),
// prints a line starting with SignalLine and powers off.
func IdleInitrd(t testing.TB, arch, marker string) string {
	t.Helper()
	return buildInitrd(t, arch, fmt.Sprintf(idleInit, marker))
}

// buildInitrd compiles the Go program main for arch and packs it as /init.
func buildInitrd(t testing.TB, arch, main string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod":  "module qemutestinit\n\ngo 1.22\n",
		"main.go": main,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "init")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch,
		"GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemutest: building the test init for %s: %v\n%s", arch, err, out)
	}
	initrd := filepath.Join(dir, "initrd.img")
	if err := writeInitrd(initrd, bin); err != nil {
		t.Fatalf("qemutest: %v", err)
	}
	return initrd
}

// writeInitrd writes initrd: dev/, dev/console (character device 5:1) and init (bin).
func writeInitrd(initrd, bin string) error {
	body, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	f, err := os.Create(initrd)
	if err != nil {
		return err
	}
	defer f.Close()
	z, err := archive.NewGzipWriter(f, archive.DefaultGzipLevel)
	if err != nil {
		return err
	}
	cw := archive.NewCpioWriter(z, archive.WithModTime(time.Unix(0, 0)))
	entries := []struct {
		h    tar.Header
		body []byte
	}{
		{tar.Header{Name: "dev", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "dev/console", Typeflag: tar.TypeChar, Mode: 0o600, Devmajor: 5, Devminor: 1}, nil},
		{tar.Header{Name: "init", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(body))}, body},
	}
	for _, e := range entries {
		h := e.h
		if err := cw.WriteEntry(archive.Entry{Header: &h}, bytes.NewReader(e.body)); err != nil {
			return fmt.Errorf("writing %s into the initrd: %w", h.Name, err)
		}
	}
	if err := cw.Close(); err != nil {
		return err
	}
	if err := z.Close(); err != nil {
		return err
	}
	return f.Close()
}
