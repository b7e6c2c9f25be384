package modules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Load loads the module file at path with finit_module(2) and the given parameters
// ("a=1 b=2"). A module that is already loaded (EEXIST) is not an error. Compressed files
// are handed to the kernel to decompress, which needs a kernel built for it.
func Load(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("load module %s: %w", path, err)
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(path, ".xz") || strings.HasSuffix(path, ".zst") || strings.HasSuffix(path, ".gz") {
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	err = unix.FinitModule(int(f.Fd()), params, flags)
	if err == nil || errors.Is(err, unix.EEXIST) {
		return nil
	}
	return fmt.Errorf("load module %s: %w", path, err)
}

// loaded reports whether the kernel already has the module: a loaded module has an
// initstate file under /sys/module/NAME (built-in ones have the directory only).
func (ix *Index) loaded(name string) bool {
	dir := ix.SysModule
	if dir == "" {
		dir = "/sys/module"
	}
	_, err := os.Stat(filepath.Join(dir, Name(name), "initstate"))
	return err == nil
}

// LoadFunc loads one module file; Load is the real one.
type LoadFunc func(path, params string) error

// LoadAll orders names with their dependencies and loads each module with load, passing the
// parameters params holds for its canonical name. Modules already loaded are skipped. It goes on after a failure and returns
// every error; done receives each module name loaded.
func (ix *Index) LoadAll(names []string, params map[string]string, load LoadFunc, done func(name string)) error {
	order, err := ix.Order(names...)
	errs := []error{err}
	for _, m := range order {
		if ix.loaded(m.Name) {
			continue
		}
		if err := load(filepath.Join(ix.Dir, m.Path), params[m.Name]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
			continue
		}
		if done != nil {
			done(m.Name)
		}
	}
	return errors.Join(errs...)
}

// ReadList reads a module list file: one name per line, '#' starts a comment. A missing file
// is an empty list.
func ReadList(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read module list %s: %w", path, err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		out = append(out, strings.Fields(l)...)
	}
	return out, nil
}
