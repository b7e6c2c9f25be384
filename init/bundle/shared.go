package bundle

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// SharedRootfs is runtime.json's "kiln.rootfs" key, kiln's own: the container's rootfs/ is an
// empty mount point, and its files are the copy at Lower that every container made from the
// same image shares. kiln-init mounts an overlay there before any container runs: Lower as
// the read-only lower layer, a private upper layer in memory, so that what one container (or
// runc, making mount points) writes is never seen by another. A read-only container stays
// read-only: runc remounts its root read-only inside the container, as for a plain rootfs/.
type SharedRootfs struct {
	Lower string `json:"lower"`
}

// RootfsPlan returns the steps that make b's root file system from its shared copy, using
// scratch (a folder on a tmpfs, this container's own) for the overlay's upper and work
// directories. It returns no steps for a bundle without "kiln.rootfs".
func RootfsPlan(b *Bundle, scratch string) ([]Step, error) {
	from := b.Runtime.Rootfs
	if from == nil {
		return nil, nil
	}
	lower := from.Lower
	upper, work := filepath.Join(scratch, "upper"), filepath.Join(scratch, "work")
	target := b.RootfsPath()
	switch {
	case lower == "":
		return nil, errors.New(`runtime.json: "kiln.rootfs" has no "lower"`)
	case !filepath.IsAbs(lower) || filepath.Clean(lower) != lower:
		return nil, fmt.Errorf(`runtime.json: "kiln.rootfs" lower %q must be a clean absolute path`, lower)
	}
	for _, p := range []string{lower, upper, work} {
		// The overlay's options are one comma-separated string; lowerdir takes colon-separated
		// layers. Paths holding either cannot be passed (kiln never writes such a path).
		if strings.ContainsAny(p, ",:") {
			return nil, fmt.Errorf("overlay path %q holds a comma or colon, which the overlay's options cannot carry", p)
		}
	}
	return []Step{
		{Kind: "mkdir", Path: upper},
		{Kind: "mkdir", Path: work},
		// The overlay's root directory takes its owner and mode from the upper layer's.
		{Kind: "attrs", Path: upper, Source: lower},
		{Kind: "mkdir", Path: target},
		{Kind: "mount", Path: target, Source: "overlay", Type: "overlay",
			Data: "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work},
	}, nil
}

// copyAttrs gives dst the owner and permission bits of src.
func copyAttrs(dst, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("stat %s: no owner information", src)
	}
	if err := os.Lchown(dst, int(sys.Uid), int(sys.Gid)); err != nil {
		return err
	}
	return os.Chmod(dst, st.Mode()&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky))
}
