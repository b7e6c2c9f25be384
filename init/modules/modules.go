// Package modules loads Linux kernel modules with their dependencies, the way modprobe does
// for the simple case: it reads the modules.dep that the kernel package ships (depmod's
// format), orders the modules so that every dependency comes before its users, and loads each
// file with finit_module(2). A module that is already loaded is fine; a module built into the
// kernel (listed in modules.builtin) is skipped; a name found in neither is an error naming the
// modules.dep it looked in, unless it ends in "?" (optional: a module some architectures or
// kernels lack, such as qemu_fw_cfg on s390x), which is then left out.
//
// Not handled: aliases (modules.alias), soft dependencies, blacklists, modprobe.d options.
// Parameters come only from the caller (for kiln-init: the kernel command line).
package modules

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Module is one entry of modules.dep.
type Module struct {
	Name string   // canonical name: file name without extension, '-' written '_'
	Path string   // as written in modules.dep, relative to the modules directory
	Deps []string // canonical names of the modules it needs, as modules.dep lists them
}

// Name turns a module name or file name into the canonical form the kernel uses:
// "virtio-net", "virtio_net.ko" and "kernel/x/virtio_net.ko.xz" all give "virtio_net".
func Name(s string) string {
	s = filepath.Base(s)
	for _, ext := range []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"} {
		if strings.HasSuffix(s, ext) {
			s = strings.TrimSuffix(s, ext)
			break
		}
	}
	return strings.ReplaceAll(s, "-", "_")
}

// ParseDep reads depmod's modules.dep format: one line per module, "path: dep dep ...",
// blank lines and lines starting with '#' ignored.
func ParseDep(r io.Reader) (map[string]Module, error) {
	mods := map[string]Module{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		path, deps, ok := strings.Cut(text, ":")
		path = strings.TrimSpace(path)
		if !ok || path == "" {
			return nil, fmt.Errorf("line %d: %q: expected \"path/module.ko: dependency.ko ...\"", line, text)
		}
		m := Module{Name: Name(path), Path: path}
		for _, d := range strings.Fields(deps) {
			m.Deps = append(m.Deps, Name(d))
		}
		if prev, dup := mods[m.Name]; dup {
			return nil, fmt.Errorf("line %d: module %s listed twice (%s and %s)", line, m.Name, prev.Path, path)
		}
		mods[m.Name] = m
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	return mods, nil
}

// Index is a parsed modules directory (/lib/modules/VERSION).
type Index struct {
	Dir       string
	Modules   map[string]Module
	Builtin   map[string]bool
	SysModule string // where loaded modules show up; "" means /sys/module
}

// DefaultDir returns /lib/modules/RELEASE for the running kernel.
func DefaultDir() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("read the kernel release: %w", err)
	}
	return filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:])), nil
}

// Open reads dir/modules.dep and, when present, dir/modules.builtin.
func Open(dir string) (*Index, error) {
	depPath := filepath.Join(dir, "modules.dep")
	f, err := os.Open(depPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no %s: the kernel package must ship its modules with a modules.dep for this kernel release: %w", depPath, err)
		}
		return nil, fmt.Errorf("open %s: %w", depPath, err)
	}
	defer f.Close()
	mods, err := ParseDep(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", depPath, err)
	}
	ix := &Index{Dir: dir, Modules: mods, Builtin: map[string]bool{}}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			ix.Builtin[Name(l)] = true
		}
	}
	return ix, nil
}

// UnknownError says that a module is neither in modules.dep nor built in.
type UnknownError struct {
	Name, DepPath string
	By            string // the module that needs it, or "" when asked for directly
}

func (e *UnknownError) Error() string {
	if e.By != "" {
		return fmt.Sprintf("module %q (needed by %s) is not in %s", e.Name, e.By, e.DepPath)
	}
	return fmt.Sprintf("unknown module %q: not in %s and not built into the kernel; check the name (in /etc/kiln/modules or kiln.modules=) and that the kernel package ships it", e.Name, e.DepPath)
}

// Order returns the modules to load for names, each dependency before the modules that need
// it and every module once. Built-in names are left out, and so are unknown names that end in
// "?". Other unknown names give an *UnknownError (all of them, joined); the known ones are
// still ordered and returned. A dependency missing from modules.dep is an error even for an
// optional module: the kernel package is broken.
func (ix *Index) Order(names ...string) ([]Module, error) {
	var out []Module
	state := map[string]int{} // 1: in progress, 2: done
	var errs []error
	var visit func(name, by string) error
	visit = func(name, by string) error {
		switch state[name] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("modules %s and %s depend on each other in %s", name, by, filepath.Join(ix.Dir, "modules.dep"))
		}
		m, ok := ix.Modules[name]
		if !ok {
			if ix.Builtin[name] {
				state[name] = 2
				return nil
			}
			return &UnknownError{Name: name, DepPath: filepath.Join(ix.Dir, "modules.dep"), By: by}
		}
		state[name] = 1
		for _, d := range m.Deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		out = append(out, m)
		return nil
	}
	for _, n := range names {
		optional := strings.HasSuffix(n, "?")
		n = Name(strings.TrimSuffix(n, "?"))
		if n == "" {
			continue
		}
		if _, ok := ix.Modules[n]; optional && !ok && !ix.Builtin[n] {
			continue
		}
		if err := visit(n, ""); err != nil {
			// Forget the half-visited chain so that later names can still use its modules.
			for k, v := range state {
				if v == 1 {
					delete(state, k)
				}
			}
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}
