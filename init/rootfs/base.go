package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Action is one piece of the base file system: it is created by Create, which does nothing
// when it already exists, and named by String for messages.
type Action interface {
	Create(root string) error
	String() string
}

// Mount mounts a file system at Target (under the root passed to Create), making the
// directory first. An existing mount point at Target is left alone. An Optional mount that
// fails is reported but does not fail the set (the kernel may lack that file system).
type Mount struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
	Optional               bool
}

// Create implements Action.
func (m Mount) Create(root string) error {
	target := filepath.Join(root, m.Target)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("mount %s: make the mount point: %w", m.Target, err)
	}
	if mp, err := IsMountPoint(target); err == nil && mp {
		return nil
	}
	if err := unix.Mount(m.Source, target, m.FSType, m.Flags, m.Data); err != nil {
		return fmt.Errorf("mount %s (%s, %q): %w", m.Target, m.FSType, m.Data, err)
	}
	return nil
}

func (m Mount) String() string { return "mount " + m.FSType + " on " + m.Target }

// Dir makes a directory with its parents.
type Dir struct {
	Path string
	Mode os.FileMode
}

// Create implements Action.
func (d Dir) Create(root string) error {
	if err := os.MkdirAll(filepath.Join(root, d.Path), d.Mode); err != nil {
		return fmt.Errorf("make directory %s: %w", d.Path, err)
	}
	return nil
}

func (d Dir) String() string { return "directory " + d.Path }

// Symlink makes the link Link pointing at Target, unless Link already exists.
type Symlink struct {
	Target, Link string
}

// Create implements Action.
func (s Symlink) Create(root string) error {
	link := filepath.Join(root, s.Link)
	if _, err := os.Lstat(link); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return fmt.Errorf("make link %s: %w", s.Link, err)
	}
	if err := os.Symlink(s.Target, link); err != nil {
		return fmt.Errorf("make link %s -> %s: %w", s.Link, s.Target, err)
	}
	return nil
}

func (s Symlink) String() string { return "link " + s.Link + " -> " + s.Target }

const (
	noSUIDDevExec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	noSUIDDev     = unix.MS_NOSUID | unix.MS_NODEV
)

// Base is the file system every kiln system runs on, in the order it is made: the pseudo
// file systems, cgroup v2, the directories containerd and the logs need, and the /dev links
// programs expect.
func Base() []Action {
	return []Action{
		Mount{Source: "proc", Target: "/proc", FSType: "proc", Flags: noSUIDDevExec},
		Mount{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: noSUIDDevExec},
		Mount{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Data: "mode=0755"},
		Mount{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "gid=5,mode=0620,ptmxmode=0666"},
		Mount{Source: "shm", Target: "/dev/shm", FSType: "tmpfs", Flags: noSUIDDev, Data: "mode=1777"},
		Mount{Source: "mqueue", Target: "/dev/mqueue", FSType: "mqueue", Flags: noSUIDDevExec, Optional: true},
		Mount{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: noSUIDDev, Data: "mode=0755"},
		Mount{Source: "tmpfs", Target: "/tmp", FSType: "tmpfs", Flags: noSUIDDev, Data: "mode=1777"},
		Mount{Source: "cgroup2", Target: "/sys/fs/cgroup", FSType: "cgroup2", Flags: noSUIDDevExec, Data: "nsdelegate"},
		Mount{Source: "securityfs", Target: "/sys/kernel/security", FSType: "securityfs", Flags: noSUIDDevExec, Optional: true},
		Mount{Source: "bpf", Target: "/sys/fs/bpf", FSType: "bpf", Flags: noSUIDDevExec, Data: "mode=0700", Optional: true},
		Symlink{Target: "/proc/self/fd", Link: "/dev/fd"},
		Symlink{Target: "/proc/self/fd/0", Link: "/dev/stdin"},
		Symlink{Target: "/proc/self/fd/1", Link: "/dev/stdout"},
		Symlink{Target: "/proc/self/fd/2", Link: "/dev/stderr"},
		Dir{Path: "/var/log", Mode: 0o755},
		Dir{Path: "/var/lib/containerd", Mode: 0o711},
		Dir{Path: "/etc", Mode: 0o755},
	}
}

// CreateAll creates each action under root, in order. It stops at the first failure of a
// required action; failures of optional mounts go to warn and the rest continues.
func CreateAll(root string, actions []Action, warn func(error)) error {
	for _, a := range actions {
		err := a.Create(root)
		if err == nil {
			continue
		}
		if m, ok := a.(Mount); ok && m.Optional {
			warn(fmt.Errorf("optional %w", err))
			continue
		}
		return err
	}
	return nil
}

// IsMountPoint reports whether path is the root of a mount: its device differs from its
// parent's, or it is "/". Bind mounts of a directory onto the same file system are not seen.
func IsMountPoint(path string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	if err := unix.Lstat(filepath.Join(path, ".."), &parent); err != nil {
		return false, fmt.Errorf("stat the parent of %s: %w", path, err)
	}
	return st.Dev != parent.Dev || st.Ino == parent.Ino, nil
}

// EnableControllers turns on, for the children of the cgroup at dir, every controller the
// cgroup offers (cgroup.controllers into cgroup.subtree_control), one at a time so that one
// refusal does not hide the others. It returns the controllers enabled.
func EnableControllers(dir string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("list the cgroup controllers: %w (is cgroup2 mounted on %s?)", err, dir)
	}
	f, err := os.OpenFile(filepath.Join(dir, "cgroup.subtree_control"), os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("enable cgroup controllers: %w", err)
	}
	defer f.Close()
	var on []string
	var errs []error
	for _, c := range strings.Fields(string(data)) {
		if _, err := f.WriteString("+" + c); err != nil {
			errs = append(errs, fmt.Errorf("enable the %s cgroup controller: %w", c, err))
			continue
		}
		on = append(on, c)
	}
	return on, errors.Join(errs...)
}
