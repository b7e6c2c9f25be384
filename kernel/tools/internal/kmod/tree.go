package kmod

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Module is one .ko file of a tree.
type Module struct {
	// Path is the file's path relative to lib/modules/VERSION, slash separated, as the index
	// files name it: "kernel/fs/overlayfs/overlay.ko".
	Path string
	// Name is the module's name as the kernel and modprobe know it: the file name without
	// ".ko", with "-" turned into "_".
	Name string
	// Depends names the modules this one needs loaded first: its depends= field (which the
	// kernel's build writes), with "-" turned into "_" as in Name, in the order of the first
	// symbol the module takes from each (the order depmod works with).
	Depends []string
	// Aliases and SoftDeps are the module's alias= and softdep= fields, in file order.
	Aliases  []string
	SoftDeps []string
}

// Tree is a set of modules in depmod's order: the order of modules.order, then any module
// modules.order does not name, sorted by path (depmod itself puts those in the order it read
// the directories, which is not reproducible).
type Tree struct {
	Modules []*Module
	// Builtin holds the names of the modules built into the kernel image (from
	// modules.builtin and modules.builtin.modinfo); asking for one of them needs no file.
	Builtin map[string]bool
	// order is modules.order as read: module paths, including any the tree lacks.
	order  []string
	byName map[string]*Module
}

// ModuleName is the name of the module stored at path p: its file name without ".ko", with
// "-" turned into "_" (the kernel's KBUILD_MODNAME rule).
func ModuleName(p string) string {
	return strings.ReplaceAll(strings.TrimSuffix(path.Base(p), ".ko"), "-", "_")
}

// Load reads the module tree in dir (a lib/modules/VERSION folder): every .ko file below it,
// and modules.order, modules.builtin and modules.builtin.modinfo when present. A module named
// twice, a compressed module, a .ko file that is not a module, or a dependency the tree lacks
// is an error.
func Load(dir string) (*Tree, error) {
	order, err := readLines(filepath.Join(dir, "modules.order"))
	if err != nil {
		return nil, err
	}
	builtinPaths, err := readLines(filepath.Join(dir, "modules.builtin"))
	if err != nil {
		return nil, err
	}
	t := &Tree{Builtin: map[string]bool{}, order: order, byName: map[string]*Module{}}
	for _, p := range builtinPaths {
		t.Builtin[ModuleName(p)] = true
	}
	// modules.builtin lists only tristate options built in; modules.builtin.modinfo has every
	// built-in module's fields as "NAME.key=value" (virtio_ccw on s390x is only there).
	info, err := os.ReadFile(filepath.Join(dir, "modules.builtin.modinfo"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, f := range ParseModinfo(info) {
		if name, _, ok := strings.Cut(f.Key, "."); ok {
			t.Builtin[strings.ReplaceAll(name, "-", "_")] = true
		}
	}
	var found []*Module
	objects := map[*Module]object{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		switch {
		case d.IsDir():
			return nil
		case strings.HasSuffix(name, ".ko"):
		case strings.Contains(name, ".ko."):
			return fmt.Errorf("%s: compressed modules are not supported; unpack the kernel with uncompressed modules (CONFIG_MODULE_COMPRESS_NONE)", p)
		default:
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: a module must be a regular file, not %s", p, d.Type())
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		o, err := readObject(p)
		if err != nil {
			return err
		}
		m := &Module{
			Path:     filepath.ToSlash(rel),
			Name:     ModuleName(rel),
			Aliases:  values(o.fields, "alias"),
			SoftDeps: values(o.fields, "softdep"),
		}
		for _, v := range values(o.fields, "depends") {
			for _, dep := range strings.Split(v, ",") {
				if dep != "" {
					m.Depends = append(m.Depends, strings.ReplaceAll(dep, "-", "_"))
				}
			}
		}
		found = append(found, m)
		objects[m] = o
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the modules in %s: %w", dir, err)
	}
	for _, m := range found {
		if prev, ok := t.byName[m.Name]; ok {
			return nil, fmt.Errorf("module %s is in the tree twice: %s and %s", m.Name, prev.Path, m.Path)
		}
		t.byName[m.Name] = m
	}
	t.Modules = sortModules(found, order)
	orderDepends(t.Modules, objects)
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return t, nil
}

// sortModules puts modules in depmod's order: those modules.order names in its order, then
// the rest by path.
func sortModules(mods []*Module, order []string) []*Module {
	rank := make(map[string]int, len(order))
	for i, p := range order {
		if _, dup := rank[p]; !dup {
			rank[p] = i
		}
	}
	out := append([]*Module(nil), mods...)
	sort.SliceStable(out, func(i, j int) bool {
		ri, iok := rank[out[i].Path]
		rj, jok := rank[out[j].Path]
		switch {
		case iok && jok:
			return ri < rj
		case iok != jok:
			return iok
		}
		return out[i].Path < out[j].Path
	})
	return out
}

// orderDepends puts each module's dependencies in the order depmod finds them: by the first
// symbol in the module's symbol table that each of them exports. A symbol exported twice
// belongs to the module that comes first in tree order, as in depmod. A dependency none of
// whose symbols appear keeps its depends= place after the others.
func orderDepends(mods []*Module, objects map[*Module]object) {
	owner := map[string]string{}
	for _, m := range mods {
		for _, s := range objects[m].exports {
			if _, dup := owner[s]; !dup {
				owner[s] = m.Name
			}
		}
	}
	for _, m := range mods {
		if len(m.Depends) < 2 {
			continue
		}
		wanted := map[string]bool{}
		for _, d := range m.Depends {
			wanted[d] = true
		}
		var sorted []string
		for _, s := range objects[m].undefined {
			if d := owner[s]; wanted[d] {
				wanted[d] = false
				sorted = append(sorted, d)
			}
		}
		for _, d := range m.Depends {
			if wanted[d] {
				wanted[d] = false
				sorted = append(sorted, d)
			}
		}
		m.Depends = sorted
	}
}

// check reports a dependency the tree cannot satisfy.
func (t *Tree) check() error {
	var errs []error
	for _, m := range t.Modules {
		for _, d := range m.Depends {
			if t.byName[d] == nil {
				errs = append(errs, fmt.Errorf("module %s (%s) depends on %s, which is not in the tree", m.Name, m.Path, d))
			}
		}
	}
	return errors.Join(errs...)
}

// Module returns the module named name ("-" and "_" are the same), or nil.
func (t *Tree) Module(name string) *Module {
	return t.byName[strings.ReplaceAll(name, "-", "_")]
}

// Select returns the tree narrowed to the modules named and everything they depend on,
// directly or not, in the same order. Dependencies include soft ones (softdep= pre: and
// post: names, which modprobe would load too, such as ext4's crypto-crc32c), found by module
// name or alias; one that nothing in the tree provides is skipped, as modprobe skips it. A
// name may also be a module built into the kernel (nothing to keep). A name ending in "?" is
// optional: it may be absent, which lets one list serve several architectures. Any other
// unknown name is an error. No names keeps every module.
func (t *Tree) Select(names []string) (*Tree, error) {
	if len(names) == 0 {
		return t, nil
	}
	keep := map[string]bool{}
	var missing []string
	var visit func(m *Module)
	visit = func(m *Module) {
		if keep[m.Name] {
			return
		}
		keep[m.Name] = true
		for _, d := range m.Depends {
			visit(t.byName[d]) // Load checked every dependency is present
		}
		for _, sd := range m.SoftDeps {
			for _, name := range strings.Fields(sd) {
				if !strings.HasSuffix(name, ":") { // not "pre:" or "post:"
					for _, p := range t.provide(name) {
						visit(p)
					}
				}
			}
		}
	}
	for _, n := range names {
		n, optional := strings.CutSuffix(strings.TrimSpace(n), "?")
		if n == "" {
			continue
		}
		if m := t.Module(n); m != nil {
			visit(m)
			continue
		}
		if optional || t.Builtin[strings.ReplaceAll(n, "-", "_")] {
			continue
		}
		missing = append(missing, n)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no module named %s in this kernel, neither as a .ko file nor built in (modules.builtin); check the names, or end a name with ? when an architecture may lack it",
			strings.Join(missing, ", "))
	}
	s := &Tree{Builtin: t.Builtin, order: t.order, byName: map[string]*Module{}}
	for _, m := range t.Modules {
		if keep[m.Name] {
			s.Modules = append(s.Modules, m)
			s.byName[m.Name] = m
		}
	}
	return s, nil
}

// provide returns the modules that a modprobe of name would load: the module of that name,
// else every module with an alias matching it (alias patterns are shell globs).
func (t *Tree) provide(name string) []*Module {
	if m := t.Module(name); m != nil {
		return []*Module{m}
	}
	var out []*Module
	for _, m := range t.Modules {
		for _, a := range m.Aliases {
			if ok, _ := path.Match(a, name); ok || a == name {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// readLines returns the non-empty lines of a file, or nothing when it does not exist.
func readLines(name string) ([]string, error) {
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines, sc.Err()
}
