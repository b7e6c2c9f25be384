package netboot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// System is one system kiln build wrote into the served folder.
type System struct {
	Name string
	// Kernel, Initrd and Cmdline are the paths of NAME-kernel, NAME-initrd.img and
	// NAME-cmdline; UKI is NAME.efi's when it exists.
	Kernel, Initrd, Cmdline, UKI string
}

// Systems finds the systems in dir: every NAME-kernel with a NAME-initrd.img and a
// NAME-cmdline beside it (kiln build -format kernel+initrd), by name.
func Systems(dir string) ([]System, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []System
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), "-kernel")
		if !ok || name == "" || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, name)
		s := System{Name: name, Kernel: p + "-kernel", Initrd: p + "-initrd.img", Cmdline: p + "-cmdline"}
		if !regular(s.Initrd) || !regular(s.Cmdline) {
			continue
		}
		if regular(p + ".efi") {
			s.UKI = p + ".efi"
		}
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Kernel, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func regular(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// checkName refuses system names that do not fit a URL path segment and a script line as they
// are.
func checkName(name string) error {
	if strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+") != "" || strings.HasPrefix(name, ".") {
		return fmt.Errorf("system name %q: want letters, digits and - _ . + only", name)
	}
	return nil
}

// ParseMAC reads a MAC address written with hyphens or colons (52-54-00-12-34-56,
// 52:54:00:12:34:56) and returns it in the tree's form: lower case with hyphens.
func ParseMAC(s string) (string, error) {
	hw, err := net.ParseMAC(strings.ReplaceAll(s, "-", ":"))
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("%q is not a MAC address (want six hex bytes, such as 52-54-00-12-34-56)", s)
	}
	return strings.ReplaceAll(hw.String(), ":", "-"), nil
}

// Tree is the served file tree (see the package doc). It is safe for concurrent use: every
// lookup reads the folders again.
type Tree struct {
	// Dir holds the systems (kiln build's outputs).
	Dir string
	// Default is the system a machine without its own choice boots; empty means the only
	// system in Dir (with several, such a machine is refused).
	Default string
	// Machines, when set, is a folder of per-machine folders named by MAC address (either
	// form), each with optional files: meta-data and user-data (NoCloud, handed to the
	// machine's metadata service), system (the name of the system it boots) and cmdline
	// (parameters appended to the system's command line). A folder named "default" serves
	// machines that have none. Without Machines no metadata URL is put on command lines.
	Machines string
	// Files are extra files at the tree's root by name (the iPXE binaries).
	Files map[string][]byte
}

// File is an open file of the tree.
type File struct {
	io.ReadSeeker
	Size int64
	// Machine is the MAC address the path named, if any; System the system served.
	Machine, System string
	// ModTime is a system file's modification time (zero for generated files): HTTP's
	// Last-Modified, so that a rebuilt system is not taken for the cached one.
	ModTime time.Time
	close   func() error
}

// Close closes the file.
func (f *File) Close() error {
	if f.close == nil {
		return nil
	}
	return f.close()
}

// ErrNotFound is returned for a path that is not in the tree.
var ErrNotFound = errors.New("not found")

// Open opens name (a slash-separated path without a leading slash); base is the HTTP URL the
// client reaches this server at (http://HOST:PORT), written into scripts and command lines.
func (t *Tree) Open(name, base string) (*File, error) {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	dir, file := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	switch {
	case name == "boot.ipxe":
		return text(bootScript(base)), nil
	case dir == "ipxe":
		mac, err := ParseMAC(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %w", name, ErrNotFound, err)
		}
		return t.machineFile(mac, func(s System, extra string) ([]byte, error) { return t.ipxeScript(s, mac, extra, base) })
	case name == "pxelinux.cfg/default":
		return t.machineFile("", func(s System, extra string) ([]byte, error) { return t.pxelinux(s, "", extra, base) })
	case dir == "pxelinux.cfg" && strings.HasPrefix(file, "01-"):
		mac, err := ParseMAC(file[3:])
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %w", name, ErrNotFound, err)
		}
		return t.machineFile(mac, func(s System, extra string) ([]byte, error) { return t.pxelinux(s, mac, extra, base) })
	case strings.HasPrefix(dir, "systems/") && strings.Count(dir, "/") == 1:
		return t.systemFile(strings.TrimPrefix(dir, "systems/"), file)
	case strings.HasPrefix(dir, "machines/") && strings.Count(dir, "/") == 1 && t.Machines != "":
		mac, err := ParseMAC(strings.TrimPrefix(dir, "machines/"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %w", name, ErrNotFound, err)
		}
		return t.metadata(mac, file)
	case dir == "":
		if b, ok := t.Files[file]; ok {
			return &File{ReadSeeker: bytes.NewReader(b), Size: int64(len(b))}, nil
		}
	}
	return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
}

func text(s string) *File {
	return &File{ReadSeeker: strings.NewReader(s), Size: int64(len(s))}
}

// systemFile opens one of a system's files.
func (t *Tree) systemFile(name, file string) (*File, error) {
	s, err := t.system(name)
	if err != nil {
		return nil, err
	}
	var p string
	switch file {
	case "kernel":
		p = s.Kernel
	case "initrd.img":
		p = s.Initrd
	case "cmdline":
		p = s.Cmdline
	case "kiln.efi":
		p = s.UKI
	}
	if p == "" {
		return nil, fmt.Errorf("systems/%s/%s: %w", name, file, ErrNotFound)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) { // removed since the folder was read (a rebuild)
		return nil, fmt.Errorf("systems/%s/%s: %w: %w", name, file, ErrNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &File{ReadSeeker: f, Size: fi.Size(), System: name, ModTime: fi.ModTime(), close: f.Close}, nil
}

// system finds a system by name ("" is the default one).
func (t *Tree) system(name string) (System, error) {
	all, err := Systems(t.Dir)
	if err != nil {
		return System{}, err
	}
	if name == "" {
		name = t.Default
	}
	if name == "" {
		switch len(all) {
		case 1:
			return all[0], nil
		case 0:
			return System{}, fmt.Errorf("no system in %s (kiln build -format kernel+initrd -dir %s writes one): %w", t.Dir, t.Dir, ErrNotFound)
		}
		return System{}, fmt.Errorf("%d systems in %s and no default one (kiln serve -system NAME): %w", len(all), t.Dir, ErrNotFound)
	}
	i := slices.IndexFunc(all, func(s System) bool { return s.Name == name })
	if i < 0 {
		return System{}, fmt.Errorf("system %q: no %s-kernel, -initrd.img and -cmdline in %s: %w", name, name, t.Dir, ErrNotFound)
	}
	return all[i], nil
}

// machineDir is the folder of a machine's files: its own, else "default", else "" (none).
func (t *Tree) machineDir(mac string) (string, error) {
	if t.Machines == "" {
		return "", nil
	}
	ents, err := os.ReadDir(t.Machines)
	if err != nil {
		return "", err
	}
	var def string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if e.Name() == "default" {
			def = filepath.Join(t.Machines, e.Name())
			continue
		}
		if m, err := ParseMAC(e.Name()); err == nil && m == mac && mac != "" {
			return filepath.Join(t.Machines, e.Name()), nil
		}
	}
	return def, nil
}

// readMachine reads one of a machine's files; a missing file (or folder) is nil.
func readMachine(dir, file string) ([]byte, error) {
	if dir == "" {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// machineFile makes a boot configuration for a machine (mac "" is any machine): its system
// and the parameters its folder adds.
func (t *Tree) machineFile(mac string, make func(System, string) ([]byte, error)) (*File, error) {
	dir, err := t.machineDir(mac)
	if err != nil {
		return nil, err
	}
	sysName, err := readMachine(dir, "system")
	if err != nil {
		return nil, err
	}
	extra, err := readMachine(dir, "cmdline")
	if err != nil {
		return nil, err
	}
	s, err := t.system(strings.TrimSpace(string(sysName)))
	if err != nil {
		if dir != "" && len(sysName) > 0 {
			err = fmt.Errorf("%s: %w", filepath.Join(dir, "system"), err)
		}
		return nil, err
	}
	b, err := make(s, strings.Join(strings.Fields(string(extra)), " "))
	if err != nil {
		return nil, err
	}
	return &File{ReadSeeker: bytes.NewReader(b), Size: int64(len(b)), Machine: mac, System: s.Name}, nil
}

// metadata serves a machine's NoCloud files. meta-data always exists: a machine without one
// gets an instance-id made from its MAC address, so that its metadata service finds a seed.
func (t *Tree) metadata(mac, file string) (*File, error) {
	if file != "meta-data" && file != "user-data" && file != "vendor-data" {
		return nil, fmt.Errorf("machines/%s/%s: %w", mac, file, ErrNotFound)
	}
	dir, err := t.machineDir(mac)
	if err != nil {
		return nil, err
	}
	b, err := readMachine(dir, file)
	if err != nil {
		return nil, err
	}
	if b == nil && file == "meta-data" {
		b = []byte("instance-id: kiln-" + strings.ReplaceAll(mac, "-", "") + "\n")
	}
	if b == nil {
		return nil, fmt.Errorf("machines/%s/%s: %w", mac, file, ErrNotFound)
	}
	return &File{ReadSeeker: bytes.NewReader(b), Size: int64(len(b)), Machine: mac}, nil
}
