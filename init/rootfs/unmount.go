package rootfs

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// virtual lists file system types that hold no data worth unmounting at shutdown.
var virtual = []string{
	"autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
	"devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore",
	"ramfs", "rootfs", "securityfs", "sysfs", "tmpfs", "tracefs",
}

// UnmountOrder returns the mounts that hold data (not the virtual and in-memory ones, not
// "/"), the most recent first, which is the order to unmount them in.
func UnmountOrder(mounts []MountInfo) []MountInfo {
	var out []MountInfo
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		if m.Point == "/" || slices.Contains(virtual, m.FSType) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// UnmountAll unmounts the mounts UnmountOrder picks. A busy one is remounted read-only and
// then detached, so its data is safe even though it stays visible. Call sync before.
func UnmountAll(mounts []MountInfo) error {
	var errs []error
	for _, m := range UnmountOrder(mounts) {
		if err := unix.Unmount(m.Point, 0); err == nil {
			continue
		} else if !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("unmount %s (%s): %w", m.Point, m.FSType, err))
			continue
		}
		if err := unix.Mount("", m.Point, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s) is busy and could not be made read-only: %w", m.Point, m.FSType, err))
		}
		_ = unix.Unmount(m.Point, unix.MNT_DETACH)
	}
	return errors.Join(errs...)
}
