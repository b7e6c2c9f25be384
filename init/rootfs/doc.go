// Package rootfs prepares the file system tree kiln-init runs in and takes it down again:
// moving the initramfs root to a tmpfs (CopyTree, SwitchRoot), the pseudo file systems, base
// directories and links written as data (Base, with Mount, Dir and Symlink values), cgroup v2
// controllers (EnableControllers), reading the mount table (ParseMountInfo) and unmounting at
// shutdown (UnmountAll).
//
// It knows nothing about containers; the bundle package prepares their mounts.
package rootfs
