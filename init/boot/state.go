package boot

import (
	"github.com/containerd/containerd/v2/client"

	"github.com/kiln-os/kiln/init/console"
	"github.com/kiln-os/kiln/init/power"
	"github.com/kiln-os/kiln/init/reaper"
	"github.com/kiln-os/kiln/init/supervise"
)

// Paths are the places kiln-init reads and writes. DefaultPaths is the booted system's layout.
type Paths struct {
	Onboot, Services, Onshutdown string // container bundle folders
	ModuleList                   string // extra modules to load, one per line
	Hostname                     string
	LogDir                       string
	CgroupRoot                   string
	InputDir                     string // event devices, for the power button
	Runc                         string
	Containerd                   string
	ContainerdRoot               string
	ContainerdState              string
	ContainerdAddress            string
	// SharedScratch is where a tmpfs holds the overlays' upper layers of the containers made
	// from a shared image copy; Filesystems lists the file systems the kernel knows.
	SharedScratch string
	Filesystems   string
}

// DefaultPaths is the layout kiln assembles (see docs/formats.md).
func DefaultPaths() Paths {
	return Paths{
		Onboot:            "/containers/onboot",
		Services:          "/containers/services",
		Onshutdown:        "/containers/onshutdown",
		ModuleList:        "/etc/kiln/modules",
		Hostname:          "/etc/hostname",
		LogDir:            "/var/log",
		CgroupRoot:        "/sys/fs/cgroup",
		InputDir:          "/dev/input",
		Runc:              "/usr/bin/runc",
		Containerd:        "/usr/bin/containerd",
		ContainerdRoot:    "/var/lib/containerd",
		ContainerdState:   "/run/containerd",
		ContainerdAddress: "/run/containerd/containerd.sock",
		SharedScratch:     "/run/kiln/rootfs",
		Filesystems:       "/proc/filesystems",
	}
}

// State is what the boot steps share and what Shutdown needs to undo.
type State struct {
	Console *console.Console
	Reaper  *reaper.Reaper
	Paths   Paths
	Cmdline Cmdline
	// Requests receives power requests (signals, the power button).
	Requests chan power.Action

	// Mounted is set once the base file systems are up (onshutdown can run).
	Mounted    bool
	Containerd *supervise.Process
	Client     *client.Client
	Services   *supervise.Services
}
