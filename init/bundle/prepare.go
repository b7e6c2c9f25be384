package bundle

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Step is one thing to do on the host before a container runs.
type Step struct {
	Kind   string // "mkdir", "mount" or "attrs" (Path gets Source's owner and mode)
	Path   string // absolute: the directory to make, or the mount point
	Source string // mount and attrs only
	Type   string // mount only
	Flags  uintptr
	Data   string
}

func (s Step) String() string {
	switch s.Kind {
	case "mount":
		return fmt.Sprintf("mount %q on %s (type %q, flags %#x, data %q)", s.Source, s.Path, s.Type, s.Flags, s.Data)
	case "attrs":
		return fmt.Sprintf("give %s the owner and mode of %s", s.Path, s.Source)
	}
	return "mkdir " + s.Path
}

// Plan turns runtime.json into steps, in LinuxKit's order: each mount (its mount point, and
// an overlay's upperdir and workdir, made first), then mkdir, then one directory per cgroup
// under cgroupRoot. Relative paths are relative to the container's root file system.
func Plan(b *Bundle, cgroupRoot string) []Step {
	rootfs := b.RootfsPath()
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return filepath.Clean(p)
		}
		return filepath.Join(rootfs, p)
	}
	var steps []Step
	for _, m := range b.Runtime.Mounts {
		target := abs(m.Destination)
		steps = append(steps, Step{Kind: "mkdir", Path: target})
		for _, o := range m.Options {
			k, v, ok := strings.Cut(o, "=")
			if ok && (k == "upperdir" || k == "workdir") {
				steps = append(steps, Step{Kind: "mkdir", Path: abs(v)})
			}
		}
		steps = append(steps, mountSteps(m.Source, target, m.Type, m.Options)...)
	}
	for _, d := range b.Runtime.Mkdir {
		steps = append(steps, Step{Kind: "mkdir", Path: abs(d)})
	}
	for _, c := range b.Runtime.Cgroups {
		steps = append(steps, Step{Kind: "mkdir", Path: filepath.Join(cgroupRoot, filepath.Clean("/"+c))})
	}
	return steps
}

const propagation = unix.MS_SHARED | unix.MS_PRIVATE | unix.MS_SLAVE | unix.MS_UNBINDABLE

// mountSteps splits one mount into the mount(2) calls it needs: the kernel ignores a
// propagation type given with a new mount or a bind, and a read-only bind needs a remount.
func mountSteps(source, target, typ string, opts []string) []Step {
	flags, data := MountOptions(opts)
	prop := flags & (propagation | unix.MS_REC)
	if flags&propagation == 0 {
		prop = 0
	}
	base := flags &^ propagation
	if flags&unix.MS_BIND == 0 {
		base &^= unix.MS_REC
	}
	steps := []Step{{Kind: "mount", Path: target, Source: source, Type: typ, Flags: base, Data: data}}
	if flags&unix.MS_BIND != 0 && flags&unix.MS_RDONLY != 0 {
		steps = append(steps, Step{Kind: "mount", Path: target, Flags: unix.MS_REMOUNT | unix.MS_BIND | (base &^ unix.MS_REC)})
	}
	if prop != 0 {
		steps = append(steps, Step{Kind: "mount", Path: target, Flags: prop})
	}
	return steps
}

// Apply carries the steps out, stopping at the first failure.
func Apply(steps []Step) error {
	for _, s := range steps {
		var err error
		switch s.Kind {
		case "mkdir":
			err = os.MkdirAll(s.Path, 0o755)
		case "mount":
			err = unix.Mount(s.Source, s.Path, s.Type, s.Flags, s.Data)
		case "attrs":
			err = copyAttrs(s.Path, s.Source)
		default:
			err = errors.New("unknown step kind")
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// mountFlags maps mount(8) options to mount(2) flags; clear means the option removes the flag.
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"async": {true, unix.MS_SYNCHRONOUS}, "atime": {true, unix.MS_NOATIME},
	"bind": {false, unix.MS_BIND}, "defaults": {false, 0},
	"dev": {true, unix.MS_NODEV}, "diratime": {true, unix.MS_NODIRATIME},
	"dirsync": {false, unix.MS_DIRSYNC}, "exec": {true, unix.MS_NOEXEC},
	"noatime": {false, unix.MS_NOATIME}, "nodev": {false, unix.MS_NODEV},
	"nodiratime": {false, unix.MS_NODIRATIME}, "noexec": {false, unix.MS_NOEXEC},
	"norelatime": {true, unix.MS_RELATIME}, "nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid": {false, unix.MS_NOSUID}, "private": {false, unix.MS_PRIVATE},
	"rbind": {false, unix.MS_BIND | unix.MS_REC}, "relatime": {false, unix.MS_RELATIME},
	"remount": {false, unix.MS_REMOUNT}, "ro": {false, unix.MS_RDONLY},
	"rprivate": {false, unix.MS_PRIVATE | unix.MS_REC}, "rshared": {false, unix.MS_SHARED | unix.MS_REC},
	"rslave": {false, unix.MS_SLAVE | unix.MS_REC}, "rw": {true, unix.MS_RDONLY},
	"shared": {false, unix.MS_SHARED}, "slave": {false, unix.MS_SLAVE},
	"strictatime": {false, unix.MS_STRICTATIME}, "suid": {true, unix.MS_NOSUID},
	"sync": {false, unix.MS_SYNCHRONOUS}, "unbindable": {false, unix.MS_UNBINDABLE},
}

// MountOptions splits mount(8)-style options into mount(2) flags and the comma-joined rest,
// which goes to the file system as its data.
func MountOptions(opts []string) (uintptr, string) {
	var flags uintptr
	var data []string
	for _, o := range opts {
		f, ok := mountFlags[o]
		switch {
		case !ok:
			data = append(data, o)
		case f.clear:
			flags &^= f.flag
		default:
			flags |= f.flag
		}
	}
	return flags, strings.Join(data, ",")
}
