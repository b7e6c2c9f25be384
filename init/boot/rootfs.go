package boot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-os/kiln/init/bundle"
	"github.com/kiln-os/kiln/init/modules"
)

// sharedBundle is a container whose root file system is made from a shared image copy.
type sharedBundle struct {
	section string // onboot, onshutdown or services
	b       *bundle.Bundle
}

func (c sharedBundle) String() string { return c.section + " " + c.b.Name }

// mountSharedRootfs makes the root file system of every container (onboot, onshutdown and
// services alike) that runtime.json's "kiln.rootfs" says is made from a shared copy of its
// image: an overlay with the copy as its lower layer and a private upper layer on a tmpfs.
// It runs once, before any container, so a service keeps what it wrote across its restarts,
// as a container with its own rootfs/ does. A bundle that cannot be read is left to the step
// that runs it, which reports it.
func mountSharedRootfs(_ context.Context, s *State) error {
	var todo []sharedBundle
	for _, sec := range []struct{ name, dir string }{
		{"onboot", s.Paths.Onboot}, {"onshutdown", s.Paths.Onshutdown}, {"services", s.Paths.Services},
	} {
		ents, err := os.ReadDir(sec.dir)
		if err != nil {
			continue // no such section
		}
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			b, err := bundle.Load(filepath.Join(sec.dir, e.Name()))
			if err != nil {
				s.Console.Debugf("rootfs: %v (left to the %s step)", err, sec.name)
				continue
			}
			if b.Runtime.Rootfs != nil {
				todo = append(todo, sharedBundle{sec.name, b})
			}
		}
	}
	if len(todo) == 0 {
		return nil
	}
	if err := ensureOverlay(s); err != nil {
		return fmt.Errorf("%w; %s cannot get their root file systems", err, names(todo))
	}
	if err := os.MkdirAll(s.Paths.SharedScratch, 0o700); err != nil {
		return err
	}
	// Its own tmpfs: /run is nosuid,nodev, and the upper layers must not be.
	if err := unix.Mount("tmpfs", s.Paths.SharedScratch, "tmpfs", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount a tmpfs on %s for the containers' upper layers: %w", s.Paths.SharedScratch, err)
	}
	var errs []error
	for _, c := range todo {
		scratch := filepath.Join(s.Paths.SharedScratch, c.section+"."+c.b.ID)
		steps, err := bundle.RootfsPlan(c.b, scratch)
		if err == nil {
			err = bundle.Apply(steps)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: root file system from %s: %w", c, c.b.Runtime.Rootfs.Lower, err))
			continue
		}
		s.Console.Debugf("rootfs: %s: overlay of %s", c, c.b.Runtime.Rootfs.Lower)
	}
	return errors.Join(errs...)
}

func names(cs []sharedBundle) string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return strings.Join(out, ", ")
}

// ensureOverlay makes sure the kernel has the overlay file system, loading its module (with
// its dependencies, and parameters from the command line) when it is not built in or
// loaded yet. The modules step may have loaded it already.
func ensureOverlay(s *State) error {
	if ok, err := hasFilesystem(s.Paths.Filesystems, "overlay"); err != nil || ok {
		return err
	}
	dir, err := modules.DefaultDir()
	if err == nil {
		var ix *modules.Index
		ix, err = modules.Open(dir)
		if err == nil {
			err = ix.LoadAll([]string{"overlay"}, s.Cmdline.Params, modules.Load, func(name string) {
				s.Console.Debugf("module %s loaded", name)
			})
		}
	}
	if err != nil {
		return fmt.Errorf("the overlay file system is not available (add the overlay module to the kernel image): %w", err)
	}
	ok, err := hasFilesystem(s.Paths.Filesystems, "overlay")
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("the overlay file system is not available: %s does not list it after its module was loaded", s.Paths.Filesystems)
	}
	return nil
}

// hasFilesystem reports whether the kernel's list of file systems (/proc/filesystems) names fs.
func hasFilesystem(list, fs string) (bool, error) {
	f, err := os.Open(list)
	if err != nil {
		return false, fmt.Errorf("read the kernel's file systems: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[len(fields)-1] == fs {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read %s: %w", list, err)
	}
	return false, nil
}
