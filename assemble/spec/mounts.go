package spec

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kiln-os/kiln/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultMounts are the file systems every container gets (Docker's options, as LinuxKit uses
// them). A read-only container also gets read-only /dev and /sys. /dev/shm and /dev/mqueue are
// not among them, as in LinuxKit.
func defaultMounts(readonly bool) []specs.Mount {
	dev := []string{"nosuid", "strictatime", "mode=755", "size=65536k"}
	sys := []string{"nosuid", "noexec", "nodev"}
	if readonly {
		dev = append(dev, "ro")
		sys = append(sys, "ro")
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "nodev", "noexec", "relatime"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: dev},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sys},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// mountTable holds mounts by destination: a later mount at the same destination replaces an
// earlier one.
type mountTable map[string]specs.Mount

func (t mountTable) add(m specs.Mount) { t[m.Destination] = m }

// sorted lists the mounts by destination, so that a parent (a prefix) precedes its children.
func (t mountTable) sorted() []specs.Mount {
	out := make([]specs.Mount, 0, len(t))
	for _, m := range t {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b specs.Mount) int { return strings.Compare(a.Destination, b.Destination) })
	return out
}

// parseTmpfs reads "dest" or "dest:opt1,opt2". A relative dest is resolved against the
// container's root, as in every mount of config.json (config.ContainerPath).
func parseTmpfs(s string) (specs.Mount, error) {
	parts := strings.Split(s, ":")
	if len(parts) > 2 || parts[0] == "" {
		return specs.Mount{}, fmt.Errorf("%q: want /dest or /dest:opt,opt", s)
	}
	m := specs.Mount{Destination: config.ContainerPath(parts[0]), Type: "tmpfs", Source: "tmpfs"}
	if len(parts) == 2 {
		m.Options = strings.Split(parts[1], ",")
	}
	return m, nil
}

// parseBind reads "src:dest" (options rw,rbind,rshared) or "src:dest:opt,opt" (those options
// plus rbind).
func parseBind(s string) (specs.Mount, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return specs.Mount{}, fmt.Errorf("%q: want /src:/dest or /src:/dest:opt,opt", s)
	}
	opts := []string{"rw", "rbind", "rshared"}
	if len(parts) == 3 {
		opts = strings.Split(parts[2], ",")
		if !slices.Contains(opts, "rbind") {
			opts = append(opts, "rbind")
		}
	}
	return specs.Mount{Destination: config.ContainerPath(parts[1]), Type: "bind", Source: parts[0], Options: opts}, nil
}

// completeMount fills what a full-form mount leaves out: the type from a well-known source (or
// tmpfs for /dev), the source from the type, the destination from the type.
func completeMount(m specs.Mount) (specs.Mount, error) {
	m.Options = slices.Clone(m.Options)
	if m.Type == "" {
		switch m.Source {
		case "mqueue", "devpts", "proc", "sysfs", "cgroup":
			m.Type = m.Source
		}
	}
	if m.Type == "" && m.Destination == "/dev" {
		m.Type = "tmpfs"
	}
	if m.Type == "" {
		return m, fmt.Errorf("mount at %q has no type", m.Destination)
	}
	if m.Source == "" {
		m.Source = m.Type
	}
	if m.Destination == "" {
		m.Destination = map[string]string{
			"proc": "/proc", "devpts": "/dev/pts", "sysfs": "/sys", "cgroup": "/sys/fs/cgroup", "mqueue": "/dev/mqueue",
		}[m.Type]
	}
	if m.Destination == "" {
		return m, fmt.Errorf("mount of type %q has no destination", m.Type)
	}
	m.Destination = config.ContainerPath(m.Destination)
	return m, nil
}
