// Command init is kiln-init, the PID 1 of a kiln system (see init/README.md). Started under
// another name (the /sbin/poweroff and /sbin/reboot links) it asks PID 1 to power off or
// reboot.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"

	"github.com/kiln-os/kiln/init/boot"
	"github.com/kiln-os/kiln/init/guard"
	"github.com/kiln-os/kiln/init/power"
)

func main() {
	if os.Getpid() != 1 {
		if a := power.FromArgv0(os.Args[0]); a != power.None {
			os.Exit(power.Command(a, os.Args[1:], unix.Kill, func(s string) { fmt.Fprint(os.Stderr, s) }))
		}
		fmt.Fprintf(os.Stderr, "kiln-init: must run as PID 1 (this is process %d); as poweroff or reboot it asks PID 1 to stop the system\n", os.Getpid())
		os.Exit(2)
	}
	// PID 1 must never exit: the kernel panics when it does.
	defer func() {
		if v := recover(); v != nil {
			fmt.Fprintf(os.Stdout, "kiln-init: BUG: panic: %v; powering off\n%s", v, debug.Stack())
			unix.Sync()
			_ = power.Final(power.Poweroff)
			guard.Forever()
		}
	}()
	boot.Main()
	guard.Forever()
}
