// Package rootfs prepares the file system tree kiln-init runs in and takes it down again:
// leaving the initramfs root for a bind of itself (BindRoot, SwitchRoot), the pseudo file systems, base
// directories and links written as data (Base, with Mount, Dir and Symlink values), cgroup v2
// controllers (EnableControllers), reading the mount table (ParseMountInfo) and unmounting at
// shutdown (UnmountAll).
//
// It knows nothing about containers; the bundle package prepares their mounts.
package rootfs
