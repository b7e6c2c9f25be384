// Command hello is the program inside the demo's images (see examples/seed and
// scripts/demo.sh). It is a stand-in, not kiln's real init: it starts no containers.
//
// Run as PID 1 (the /init of a booted initrd) it mounts /proc, /sys and /dev, prints the marker
// line "kiln-demo: init up" on the console, lists the containers under /containers with the
// command each config.json would run (which proves the initrd's layout), prints
// "kiln-demo: done", then syncs and powers the machine off.
//
// Run as any other process (the demo's onboot and service containers) it prints a greeting
// and exits.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	if os.Getpid() != 1 {
		fmt.Printf("hello from kiln-demo (args %q)\n", os.Args[1:])
		return
	}
	runInit()
}

// mount is one pseudo filesystem PID 1 sets up.
type mount struct {
	source, target, fstype string
	flags                  uintptr
}

// runInit is the PID 1 path. It never returns normally: it powers the machine off, and if
// that fails the kernel panics when PID 1 exits, which QEMU's -no-reboot turns into an exit.
func runInit() {
	var errs []string
	for _, m := range []mount{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID},
	} {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Sprintf("mount %s: %v", m.target, err))
		}
	}
	var out io.Writer = os.Stdout
	if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		out = c
		defer c.Close()
	}
	fmt.Fprintln(out, "kiln-demo: init up")
	for _, e := range errs {
		fmt.Fprintln(out, "kiln-demo: warning:", e)
	}
	listContainers(out, "/containers")
	fmt.Fprintln(out, "kiln-demo: done")
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintln(out, "kiln-demo: power off:", err)
	}
}

// listContainers prints every container of every section with the command its config.json
// would run.
func listContainers(out io.Writer, root string) {
	for _, section := range []string{"onboot", "services", "onshutdown"} {
		dir := filepath.Join(root, section)
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			fmt.Fprintf(out, "kiln-demo: %s: %v\n", section, err)
			continue
		}
		for _, e := range entries { // ReadDir sorts by name
			args, err := processArgs(filepath.Join(dir, e.Name(), "config.json"))
			if err != nil {
				fmt.Fprintf(out, "kiln-demo: %s/%s: %v\n", section, e.Name(), err)
				continue
			}
			fmt.Fprintf(out, "kiln-demo: %s/%s: %s\n", section, e.Name(), strings.Join(args, " "))
		}
	}
}

// processArgs reads process.args from an OCI runtime config.
func processArgs(file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var spec struct {
		Process *struct {
			Args []string `json:"args"`
		} `json:"process"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("%s: no process", file)
	}
	return spec.Process.Args, nil
}
