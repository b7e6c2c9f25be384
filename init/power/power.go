// Package power decides when and how the system goes down: which signals to PID 1 ask for a
// power-off or a reboot, what the poweroff and reboot commands (links to /init, told apart
// by argv[0]) send, the ACPI power button as seen through /dev/input, and the final
// reboot(2) call.
//
// It does not stop anything itself; the boot package runs the shutdown sequence.
package power

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Action is what to do with the machine.
type Action int

// The actions.
const (
	None Action = iota
	Poweroff
	Reboot
)

func (a Action) String() string {
	switch a {
	case Poweroff:
		return "poweroff"
	case Reboot:
		return "reboot"
	}
	return "none"
}

// Signals lists the signals PID 1 listens to for shutdown requests.
var Signals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPWR}

// FromSignal says what a signal to PID 1 asks for:
//
//	SIGTERM, SIGUSR2, SIGPWR  power off (SIGUSR2 is what busybox poweroff sends)
//	SIGUSR1                   power off (busybox halt; a kiln system does not halt)
//	SIGINT                    reboot (the kernel sends it on ctrl-alt-del; kiln's reboot sends it)
func FromSignal(sig os.Signal) Action {
	switch sig {
	case syscall.SIGTERM, syscall.SIGUSR2, syscall.SIGPWR, syscall.SIGUSR1:
		return Poweroff
	case syscall.SIGINT:
		return Reboot
	}
	return None
}

// SignalFor is the signal the poweroff and reboot commands send to PID 1 for a.
func SignalFor(a Action) syscall.Signal {
	if a == Reboot {
		return syscall.SIGINT
	}
	return syscall.SIGTERM
}

// FromArgv0 tells from the name a program was started as whether it is the poweroff, halt or
// reboot command (links to /init).
func FromArgv0(arg0 string) Action {
	switch filepath.Base(arg0) {
	case "poweroff", "halt", "shutdown":
		return Poweroff
	case "reboot":
		return Reboot
	}
	return None
}

// Command runs the poweroff or reboot command from outside PID 1: it asks PID 1 with a signal
// (kill is the sending function: unix.Kill in real use), or with "-f" calls reboot(2) at once
// without stopping anything. It returns the exit code for the command.
func Command(a Action, args []string, kill func(pid int, sig syscall.Signal) error, stderr func(string)) int {
	force := false
	for _, arg := range args {
		switch arg {
		case "-f", "--force":
			force = true
		case "-h", "--help":
			stderr(fmt.Sprintf("usage: %s [-f]\n  asks kiln-init (PID 1) to stop the services, run the onshutdown containers and %s.\n  -f: %s at once, without stopping anything (data may be lost).\n", a, a, a))
			return 0
		default:
			stderr(fmt.Sprintf("%s: unknown argument %q; usage: %s [-f]\n", a, arg, a))
			return 2
		}
	}
	if force {
		unix.Sync()
		if err := Final(a); err != nil {
			stderr(fmt.Sprintf("%s -f: %v\n", a, err))
			return 1
		}
		return 0
	}
	if err := kill(1, SignalFor(a)); err != nil {
		stderr(fmt.Sprintf("%s: ask PID 1 with %v: %v\n", a, SignalFor(a), err))
		return 1
	}
	return 0
}

// Final calls reboot(2) to power off or restart. On success it does not return.
func Final(a Action) error {
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if a == Reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	if err := unix.Reboot(cmd); err != nil {
		return fmt.Errorf("reboot(2) for %s: %w", a, err)
	}
	return nil
}

// CtrlAltDelToSignal makes the kernel send SIGINT to PID 1 on ctrl-alt-del instead of
// restarting at once.
func CtrlAltDelToSignal() error {
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		return fmt.Errorf("route ctrl-alt-del to PID 1: %w", err)
	}
	return nil
}
