package boot

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-os/kiln/init/console"
	"github.com/kiln-os/kiln/init/guard"
	"github.com/kiln-os/kiln/init/power"
	"github.com/kiln-os/kiln/init/reaper"
	"github.com/kiln-os/kiln/init/rootfs"
)

// Path is the PATH kiln-init and everything it starts use (the kernel gives PID 1 none).
const Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Main is PID 1: it boots the system, waits for a power request and shuts down. It never
// returns; at the end the machine powers off or reboots.
func Main() {
	fixed, cerr := rootfs.EnsureConsole()
	con := console.New(os.Stdout)
	con.Printf("starting")
	if fixed {
		con.Printf("the kernel gave no console; opened /dev/console (error: %v)", cerr)
	}
	_ = os.Setenv("PATH", Path)
	s := &State{
		Console:  con,
		Reaper:   reaper.New(),
		Paths:    DefaultPaths(),
		Cmdline:  DefaultCmdline(),
		Requests: make(chan power.Action, 8),
	}
	guard.Go("reaper", con.Panic, func() { s.Reaper.Run(context.Background()) })

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, power.Signals...)
	guard.Go("signals", con.Panic, func() {
		for sig := range sigs {
			a := power.FromSignal(sig)
			name := sig.String()
			if n, ok := sig.(syscall.Signal); ok {
				name = unix.SignalName(n)
			}
			con.Printf("received %s: %s requested", name, a)
			request(s, a)
		}
	})
	if err := power.CtrlAltDelToSignal(); err != nil {
		con.Printf("%v", err)
	}

	// A power request during the boot interrupts it: the running step sees its context end.
	bootCtx, cancelBoot := context.WithCancel(context.Background())
	var mu sync.Mutex
	pending := power.None
	booted := make(chan struct{})
	guard.Go("requests during boot", con.Panic, func() {
		select {
		case a := <-s.Requests:
			mu.Lock()
			pending = a
			mu.Unlock()
			cancelBoot()
		case <-booted:
		}
	})

	runner := &Runner{Console: con}
	err := runner.Run(bootCtx, s, System())
	close(booted)
	cancelBoot()
	mu.Lock()
	a := pending
	mu.Unlock()
	if a != power.None {
		Shutdown(s, a)
	}
	if err != nil {
		con.Printf("boot failed: %v", err)
		switch s.Cmdline.OnFail {
		case OnFailReboot:
			Shutdown(s, power.Reboot)
		case OnFailWait, OnFailContinue:
			con.Printf("staying up as the boot left it (kiln.onfail=%s); poweroff or ctrl-alt-del to stop", s.Cmdline.OnFail)
		default:
			Shutdown(s, power.Poweroff)
		}
	}
	// Requests that came between the end of the boot and now are still in the channel.
	Shutdown(s, <-s.Requests)
}

// Grace is how long services and containerd get between SIGTERM and SIGKILL at shutdown.
const Grace = 10 * time.Second

// onshutdownTimeout bounds each onshutdown container.
const onshutdownTimeout = time.Minute

// Shutdown stops everything and powers off or reboots. It never returns.
func Shutdown(s *State, a power.Action) {
	if a == power.None {
		a = power.Poweroff
	}
	con := s.Console
	err := guard.Safe("shutdown", func() error {
		con.Printf("shutting down (%s)", a)
		if s.Services != nil {
			if err := s.Services.StopAll(Grace); err != nil {
				con.Printf("%v", err)
			}
		}
		if s.Mounted && !empty(s.Paths.Onshutdown) {
			if err := s.runner(onshutdownTimeout).RunAll(context.Background(), s.Paths.Onshutdown, "onshutdown", true); err != nil {
				con.Printf("%v", err)
			}
		}
		if s.Client != nil {
			_ = s.Client.Close()
		}
		if s.Containerd != nil {
			if err := s.Containerd.Stop(Grace); err != nil {
				con.Printf("%v", err)
			}
		}
		if s.Mounted {
			stopEverything(s)
		}
		unix.Sync()
		if s.Mounted {
			if mounts, err := rootfs.ReadMountInfo(); err != nil {
				con.Printf("%v", err)
			} else if err := rootfs.UnmountAll(mounts); err != nil {
				con.Printf("unmount: %v", err)
			}
		}
		return nil
	})
	if err != nil {
		con.Printf("%v", err)
	}
	unix.Sync()
	if a == power.Reboot {
		con.Printf("rebooting")
	} else {
		con.Printf("powering off")
	}
	if err := power.Final(a); err != nil {
		con.Printf("%v; halting here", err)
	}
	guard.Forever()
}

// stopEverything sends SIGTERM to every process left (containerd shims, strays), waits up to
// 3 seconds for them to go, then sends SIGKILL.
func stopEverything(s *State) {
	if others() == 0 {
		return
	}
	_ = unix.Kill(-1, unix.SIGTERM)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		s.Reaper.Reap()
		if others() == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.Console.Printf("%d processes did not stop on SIGTERM; killing them", others())
	_ = unix.Kill(-1, unix.SIGKILL)
	time.Sleep(200 * time.Millisecond)
	s.Reaper.Reap()
}

// others counts live user processes other than PID 1 (kernel threads and zombies left out).
func others() int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 || pid == 2 {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
		i := strings.LastIndexByte(string(data), ')')
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 2 || f[0] == "Z" || f[1] == "2" {
			continue
		}
		n++
	}
	return n
}
