package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kiln-os/kiln/init/guard"
	"github.com/kiln-os/kiln/init/host"
	"github.com/kiln-os/kiln/init/modules"
	"github.com/kiln-os/kiln/init/power"
	"github.com/kiln-os/kiln/init/rootfs"
	"github.com/kiln-os/kiln/init/runc"
	"github.com/kiln-os/kiln/init/supervise"
)

// System is the boot of a kiln system, in order.
func System() []Step {
	return []Step{
		{Name: "initramfs", Policy: Fatal, Run: checkInitramfs},
		{Name: "switch-root", Policy: Fatal, Run: switchRoot},
		{Name: "mount", Policy: Fatal, Run: mountBase},
		{Name: "cmdline", Policy: Continue, Run: readCmdline},
		{Name: "cgroups", Policy: Continue, Run: enableCgroups},
		{Name: "modules", Policy: Continue, Run: loadModules},
		{Name: "power-button", Policy: Continue, Run: watchPowerButton},
		{Name: "loopback", Policy: Continue, Run: func(context.Context, *State) error { return host.LoopbackUp() }},
		{Name: "hostname", Policy: Continue, Run: setHostname},
		{Name: "rootfs", Policy: Fatal, Run: mountSharedRootfs},
		{Name: "onboot", Policy: Fatal, Run: runOnboot},
		{Name: "containerd", Policy: Fatal, Run: startContainerd},
		{Name: "services", Policy: Continue, Run: startServices},
	}
}

// switchRoot makes the initramfs root a bind of itself so that runc's pivot_root works.
func switchRoot(_ context.Context, s *State) error {
	proc := rootfs.Mount{Source: "proc", Target: "/proc", FSType: "proc"}
	if err := proc.Create("/"); err != nil {
		return err
	}
	mounts, err := rootfs.ReadMountInfo()
	if err != nil {
		return err
	}
	if !rootfs.RootIsInitramfs(mounts) {
		s.Console.Debugf("the root is not the initramfs; staying on it")
		return nil
	}
	return rootfs.BindRoot(mounts)
}

func mountBase(_ context.Context, s *State) error {
	err := rootfs.CreateAll("/", rootfs.Base(), func(err error) { s.Console.Debugf("%v", err) })
	if err != nil {
		return err
	}
	s.Mounted = true
	return nil
}

func readCmdline(_ context.Context, s *State) error {
	data, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read the kernel command line: %w", err)
	}
	c, warns := ParseCmdline(string(data))
	s.Cmdline = c
	s.Console.SetDebug(c.Debug)
	for _, w := range warns {
		s.Console.Printf("kernel command line: %s", w)
	}
	return nil
}

func enableCgroups(_ context.Context, s *State) error {
	on, err := rootfs.EnableControllers(s.Paths.CgroupRoot)
	s.Console.Debugf("cgroup controllers enabled: %s", strings.Join(on, " "))
	return err
}

func loadModules(_ context.Context, s *State) error {
	names, err := modules.ReadList(s.Paths.ModuleList)
	if err != nil {
		return err
	}
	names = append(names, s.Cmdline.Modules...)
	if len(names) == 0 {
		s.Console.Debugf("no modules asked for (%s, kiln.modules=)", s.Paths.ModuleList)
		return nil
	}
	dir, err := modules.DefaultDir()
	if err != nil {
		return err
	}
	ix, err := modules.Open(dir)
	if err != nil {
		return err
	}
	return ix.LoadAll(names, s.Cmdline.Params, modules.Load, func(name string) {
		s.Console.Debugf("module %s loaded", name)
	})
}

// watchPowerButton reads every input event device present now for presses of the power key
// (the ACPI power button, when the kernel has its button driver).
func watchPowerButton(_ context.Context, s *State) error {
	devs, err := power.EventDevices(s.Paths.InputDir)
	if err != nil {
		return err
	}
	for _, d := range devs {
		f, err := os.Open(d)
		if err != nil {
			s.Console.Debugf("power button: %v", err)
			continue
		}
		guard.Go("power button "+d, s.Console.Panic, func() {
			defer f.Close()
			err := power.WatchPowerKey(f, func() {
				s.Console.Printf("power button pressed")
				request(s, power.Poweroff)
			})
			s.Console.Debugf("power button: stopped reading %s: %v", d, err)
		})
	}
	s.Console.Debugf("power button: watching %d input devices", len(devs))
	return nil
}

// request passes a power request on without ever blocking.
func request(s *State, a power.Action) {
	select {
	case s.Requests <- a:
	default:
	}
}

func setHostname(_ context.Context, s *State) error {
	name, err := host.ReadHostname(s.Paths.Hostname)
	if err != nil {
		return err
	}
	return host.SetHostname(name)
}

func (s *State) runner(timeout time.Duration) *runc.Runner {
	return &runc.Runner{
		Runc: s.Paths.Runc, LogDir: s.Paths.LogDir, CgroupRoot: s.Paths.CgroupRoot,
		Console: s.Console, Reaper: s.Reaper, Live: true, Timeout: timeout,
	}
}

func runOnboot(ctx context.Context, s *State) error {
	if empty(s.Paths.Onboot) {
		return nil
	}
	r := s.runner(s.Cmdline.OnbootTimeout)
	r.TimeoutAnnotation = runc.AnnotationOnbootTimeout
	return r.RunAll(ctx, s.Paths.Onboot, "onboot", false)
}

// empty reports whether a bundle folder is missing or has no entries.
func empty(dir string) bool {
	ents, err := os.ReadDir(dir)
	return err != nil || len(ents) == 0
}

func startContainerd(ctx context.Context, s *State) error {
	if _, err := os.Stat(s.Paths.Containerd); err != nil {
		if empty(s.Paths.Services) {
			s.Console.Debugf("no services and no %s: containerd not started", s.Paths.Containerd)
			return nil
		}
		return fmt.Errorf("the services need %s: %w (add the containerd package to init:)", s.Paths.Containerd, err)
	}
	var log *os.File
	if f, err := os.OpenFile(s.Paths.LogDir+"/containerd.log", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640); err == nil {
		log = f // kept open for containerd's whole life
	} else {
		s.Console.Printf("containerd: no log file: %v", err)
	}
	out := s.Console.Lines("containerd", nil, !s.Cmdline.Debug)
	if log != nil {
		out = s.Console.Lines("containerd", log, !s.Cmdline.Debug)
	}
	p := &supervise.Process{
		Name: "containerd",
		Path: s.Paths.Containerd,
		Args: []string{
			"--root", s.Paths.ContainerdRoot,
			"--state", s.Paths.ContainerdState,
			"--address", s.Paths.ContainerdAddress,
		},
		Output:  out,
		Policy:  supervise.DefaultPolicy(),
		Reaper:  s.Reaper,
		Console: s.Console,
	}
	if err := p.Start(); err != nil {
		return err
	}
	s.Containerd = p
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := supervise.Connect(cctx, s.Paths.ContainerdAddress)
	if err != nil {
		return err
	}
	s.Client = c
	return nil
}

func startServices(ctx context.Context, s *State) error {
	if s.Client == nil {
		if !empty(s.Paths.Services) {
			return errors.New("containerd is not running")
		}
		s.Console.Printf("all services up")
		return nil
	}
	s.Services = &supervise.Services{
		Client: s.Client, Console: s.Console, LogDir: s.Paths.LogDir,
		CgroupRoot: s.Paths.CgroupRoot, Policy: supervise.DefaultPolicy(),
	}
	up, failed, err := s.Services.StartAll(ctx, s.Paths.Services)
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d services up; not started: %s (each keeps to its restart policy; see the lines above)",
			len(up), len(up)+len(failed), strings.Join(failed, ", "))
	}
	s.Console.Printf("all services up")
	return nil
}
