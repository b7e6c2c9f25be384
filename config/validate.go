package config

import (
	"errors"
	"fmt"
	"math"
	"path"
	"regexp"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// loc locates an entry for messages: its path, its recorded positions and its own position.
type loc struct {
	base string
	o    *origin
	pos  Position
}

// locOf prefers the path the entry had in its own file (services[2] of b.yml) over its index
// in the merged description.
func locOf(o *origin, pos Position, fallback string) loc {
	base := fallback
	if o != nil && o.path != "" {
		base = o.path
	}
	return loc{base: base, o: o, pos: pos}
}

func joinRel(base, rel string) string {
	switch {
	case rel == "":
		return base
	case base == "":
		return rel
	case rel[0] == '[':
		return base + rel
	default:
		return base + "." + rel
	}
}

func (l loc) at(rel string) (Position, string) {
	return l.o.lookup(rel, l.pos), joinRel(l.base, rel)
}

type validator struct {
	errs  []*Error
	warns []*Error
	// containers maps container names to the ids a files entry's uid or gid may name them by.
	containers map[string]uint32
}

func (v *validator) errf(l loc, rel, format string, args ...any) {
	p, path := l.at(rel)
	v.errs = append(v.errs, newError(p, path, format, args...))
}

func (v *validator) warnf(l loc, rel, format string, args ...any) {
	p, path := l.at(rel)
	v.warns = append(v.warns, newError(p, path, format, args...))
}

// FieldPos returns where the value at rel (a path relative to the entry, such as "image" or
// "binds[1]") was written, or the closest enclosing value that was; Pos when unknown.
func (i *Image) FieldPos(rel string) Position { return i.src.lookup(rel, i.Pos) }

// FieldPos returns where the value at rel was written; see Image.FieldPos.
func (f *File) FieldPos(rel string) Position { return f.src.lookup(rel, f.Pos) }

// FieldPos returns where the value at rel was written; see Image.FieldPos.
func (v *Volume) FieldPos(rel string) Position { return v.src.lookup(rel, v.Pos) }

// FieldPos returns where the value at rel was written; see Image.FieldPos. After a merge each
// kernel field keeps the position of the file it came from.
func (k *Kernel) FieldPos(rel string) Position { return k.src.lookup(rel, k.Pos) }

// Path returns the entry's path in the file it was written in (e.g. "services[2]"), or "".
func (i *Image) Path() string {
	if i.src == nil {
		return ""
	}
	return i.src.path
}

// InitPos returns where init entry i was written (zero if unknown).
func (s *System) InitPos(i int) Position {
	if i >= 0 && i < len(s.initPos) {
		return s.initPos[i]
	}
	return Position{}
}

// Validate checks what can be checked without images: required fields, unique service and
// volume names, capability names, bind/tmpfs/rlimit syntax, namespaces, device types, octal
// modes, the content source of each file. It returns every problem at once (an errors.Join of
// *Error sorted by position), or nil.
func (s *System) Validate() error {
	v := &validator{}
	s.check(v)
	return joinErrors(v.errs, s.files)
}

// Warnings returns what is accepted but probably not intended: a trust section (ignored), and
// a container name used more than once outside services (LinuxKit only requires service names
// to be unique; onboot and onshutdown containers run one at a time).
func (s *System) Warnings() []*Error {
	v := &validator{}
	s.check(v)
	w := append(append([]*Error(nil), s.warnings...), v.warns...)
	sortErrors(w, s.files)
	return w
}

type namedEntry struct {
	img *Image
	l   loc
}

func (s *System) check(v *validator) {
	v.containers = s.ContainerIDs()
	if k := s.Kernel; k != nil {
		l := locOf(k.src, k.Pos, "kernel")
		if k.Image == "" {
			v.errf(l, "image", "required")
		}
	}
	for i, ref := range s.Init {
		if strings.TrimSpace(ref) == "" {
			p := s.InitPos(i)
			v.errs = append(v.errs, newError(p, indexPath("init", i), "empty image reference"))
		}
	}

	volumes := map[string]bool{}
	volSeen := map[string]loc{}
	for i, vol := range s.Volumes {
		if vol == nil {
			continue
		}
		l := locOf(vol.src, vol.Pos, indexPath("volumes", i))
		v.volume(vol, l)
		if vol.Name == "" {
			continue
		}
		if first, dup := volSeen[vol.Name]; dup {
			fp, fpath := first.at("name")
			v.errf(l, "name", "duplicate volume name %q; first used by %s at %s", vol.Name, fpath, fp)
			continue
		}
		volSeen[vol.Name] = l
		volumes[vol.Name] = true
	}

	services := map[string]namedEntry{}
	others := map[string]namedEntry{}
	for _, sec := range []struct {
		name string
		list []*Image
	}{{"onboot", s.Onboot}, {"onshutdown", s.Onshutdown}, {"services", s.Services}} {
		for i, img := range sec.list {
			if img == nil {
				continue
			}
			l := locOf(img.src, img.Pos, indexPath(sec.name, i))
			v.image(img, l, volumes, false)
			if img.Name == "" {
				continue
			}
			if sec.name == "services" {
				if first, dup := services[img.Name]; dup {
					fp, fpath := first.l.at("name")
					v.errf(l, "name", "duplicate service name %q; first used by %s at %s", img.Name, fpath, fp)
					continue
				}
				services[img.Name] = namedEntry{img, l}
			}
			if first, dup := others[img.Name]; dup {
				fp, fpath := first.l.at("name")
				v.warnf(l, "name", "container name %q is also used by %s at %s", img.Name, fpath, fp)
			} else {
				others[img.Name] = namedEntry{img, l}
			}
		}
	}

	for i, f := range s.Files {
		if f == nil {
			continue
		}
		v.file(f, locOf(f.src, f.Pos, indexPath("files", i)))
	}
}

var volumeNameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)

func (v *validator) volume(vol *Volume, l loc) {
	switch {
	case vol.Name == "":
		v.errf(l, "name", "required")
	case !volumeNameRE.MatchString(vol.Name):
		v.errf(l, "name", "invalid volume name %q; use lower-case letters, digits, '-' and '_'", vol.Name)
	}
	switch vol.Format {
	case "", "oci", "filesystem":
	default:
		v.errf(l, "format", "unknown format %q; expected \"oci\" or \"filesystem\"", vol.Format)
	}
	for i, p := range vol.Platforms {
		if !validPlatform(p) {
			v.errf(l, indexPath("platforms", i), "invalid platform %q; expected os/arch[/variant], e.g. linux/arm64", p)
		}
	}
}

func validPlatform(p string) bool {
	parts := strings.Split(p, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return false
	}
	for _, s := range parts {
		if s == "" || strings.ContainsAny(s, " \t") {
			return false
		}
	}
	return true
}

func (v *validator) file(f *File, l loc) {
	switch {
	case f.Path == "":
		v.errf(l, "path", "required")
	case f.Path == "/" || path.Clean("/"+f.Path) == "/":
		v.errf(l, "path", "invalid path %q: must name something below /", f.Path)
	case strings.HasPrefix(path.Clean(f.Path), "../") || path.Clean(f.Path) == "..":
		v.errf(l, "path", "invalid path %q: must not leave the root filesystem", f.Path)
	}
	var set []string
	if f.Directory {
		set = append(set, "directory")
	}
	if f.Symlink != "" {
		set = append(set, "symlink")
	}
	if f.Contents != nil {
		set = append(set, "contents")
	}
	if f.Source != "" {
		set = append(set, "source")
	}
	if f.Metadata != "" {
		set = append(set, "metadata")
	}
	switch len(set) {
	case 0:
		v.errf(l, "", "one of directory, symlink, contents, source or metadata is required")
	case 1:
	default:
		v.errf(l, set[1], "only one of directory, symlink, contents, source or metadata may be set; got %s", strings.Join(set, " and "))
	}
	switch f.Metadata {
	case "", "json", "yaml":
	default:
		v.errf(l, "metadata", "unknown metadata format %q; expected \"json\" or \"yaml\"", f.Metadata)
	}
	if f.Optional && f.Source == "" {
		v.errf(l, "optional", "only valid with source")
	}
	if f.Mode != "" {
		if _, err := ParseMode(f.Mode); err != nil {
			v.errf(l, "mode", "%v", err)
		}
	}
	for _, id := range []struct {
		field string
		v     *IDValue
	}{{"uid", f.UID}, {"gid", f.GID}} {
		if _, err := FileID(id.v, v.containers); err != nil {
			v.errf(l, id.field, "%v", err)
		}
	}
}

// idNames checks the user and group names of a container (numbers need no check; whether a
// name exists is known only at build time, from the image's /etc/passwd and /etc/group).
func (v *validator) idNames(img *Image, l loc) {
	check := func(id *IDValue, rel string) {
		if id != nil && id.ID == nil {
			if err := ValidateIDName(id.Name); err != nil {
				v.errf(l, rel, "%v", err)
			}
		}
	}
	check(img.UID, "uid")
	check(img.GID, "gid")
	if img.AdditionalGids != nil {
		for i := range *img.AdditionalGids {
			check(&(*img.AdditionalGids)[i], indexPath("additionalGids", i))
		}
	}
}

func (v *validator) image(img *Image, l loc, volumes map[string]bool, label bool) {
	if !label {
		if img.Name == "" {
			v.errf(l, "name", "required")
		} else if err := ValidateContainerName(img.Name); err != nil {
			v.errf(l, "name", "%v", err)
		}
		if img.Image == "" {
			v.errf(l, "image", "required")
		}
	} else {
		if img.Name != "" {
			v.errf(l, "name", "cannot be set in the org.mobyproject.config label")
		}
		if img.Image != "" {
			v.errf(l, "image", "cannot be set in the org.mobyproject.config label")
		}
	}
	v.idNames(img, l)
	v.caps(img.Capabilities, l, "capabilities")
	v.caps(img.CapabilitiesAdd, l, "capabilities.add")
	v.caps(img.Ambient, l, "ambient")
	if img.Mounts != nil {
		for i, m := range *img.Mounts {
			v.mount(m.Destination, m.Type, m.Source, l, indexPath("mounts", i), volumes, false)
		}
	}
	v.binds(img.Binds, l, "binds", volumes)
	v.binds(img.BindsAdd, l, "binds.add", volumes)
	if img.Tmpfs != nil {
		for i, t := range *img.Tmpfs {
			dst, _, err := ParseTmpfs(t)
			if err != nil {
				v.errf(l, indexPath("tmpfs", i), "%v", err)
				continue
			}
			v.relativeDestination(dst, l, indexPath("tmpfs", i))
		}
	}
	if img.Devices != nil {
		for i, d := range *img.Devices {
			v.device(d, l, indexPath("devices", i))
		}
	}
	if img.Env != nil {
		for i, e := range *img.Env {
			if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
				v.errf(l, indexPath("env", i), "invalid environment entry %q; expected NAME=value", e)
			}
		}
	}
	v.absPath(img.Cwd, l, "cwd")
	v.namespace(img.Net, l, "net", true)
	v.namespace(img.Pid, l, "pid", false)
	v.namespace(img.Ipc, l, "ipc", false)
	v.namespace(img.Uts, l, "uts", false)
	v.namespace(img.Userns, l, "userns", false)
	v.absPaths(img.MaskedPaths, l, "maskedPaths")
	v.absPaths(img.ReadonlyPaths, l, "readonlyPaths")
	if img.OOMScoreAdj != nil && (*img.OOMScoreAdj < -1000 || *img.OOMScoreAdj > 1000) {
		v.errf(l, "oomScoreAdj", "%d out of range (-1000 to 1000)", *img.OOMScoreAdj)
	}
	if p := img.RootfsPropagation; p != nil {
		switch *p {
		case "", "shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable":
		default:
			v.errf(l, "rootfsPropagation", "unknown propagation %q; expected shared, slave, private, unbindable or their r- forms", *p)
		}
	}
	if img.Sysctl != nil {
		for k := range *img.Sysctl {
			if strings.TrimSpace(k) == "" {
				v.errf(l, keyPath("sysctl", k), "empty sysctl name")
			}
		}
	}
	if img.Annotations != nil {
		for k := range *img.Annotations {
			if k == "" {
				v.errf(l, keyPath("annotations", k), "empty annotation name")
			}
		}
	}
	if img.Rlimits != nil {
		for i, r := range *img.Rlimits {
			if _, _, _, err := ParseRlimit(r); err != nil {
				v.errf(l, indexPath("rlimits", i), "%v", err)
			}
		}
	}
	for _, m := range []struct {
		name string
		list *[]specs.LinuxIDMapping
	}{{"uidMappings", img.UIDMappings}, {"gidMappings", img.GIDMappings}} {
		if m.list == nil {
			continue
		}
		for i, idm := range *m.list {
			if idm.Size == 0 {
				v.errf(l, indexPath(m.name, i)+".size", "must be at least 1")
			}
		}
	}
	if rt := img.Runtime; rt != nil {
		if rt.Cgroups != nil {
			for i, c := range *rt.Cgroups {
				if strings.TrimSpace(c) == "" {
					v.errf(l, indexPath("runtime.cgroups", i), "empty cgroup name")
				}
			}
		}
		if rt.Mounts != nil {
			for i, m := range *rt.Mounts {
				v.mount(m.Destination, m.Type, m.Source, l, indexPath("runtime.mounts", i), nil, true)
			}
		}
		if rt.Mkdir != nil {
			// Relative directories are made inside the container's root file system, absolute
			// ones on the host (LinuxKit's rule, which kiln's init follows).
			for i, p := range *rt.Mkdir {
				if p == "" {
					v.errf(l, indexPath("runtime.mkdir", i), "empty path")
				}
			}
		}
		if rt.Interfaces != nil {
			for i, ifc := range *rt.Interfaces {
				if ifc.Name == "" {
					v.errf(l, indexPath("runtime.interfaces", i)+".name", "required")
				}
				if ifc.Peer != "" && ifc.Add == "" {
					v.errf(l, indexPath("runtime.interfaces", i)+".peer", "only valid with add")
				}
			}
		}
		for _, ns := range []struct {
			name string
			p    *string
		}{
			{"cgroup", rt.BindNS.Cgroup}, {"ipc", rt.BindNS.Ipc}, {"mnt", rt.BindNS.Mnt},
			{"net", rt.BindNS.Net}, {"pid", rt.BindNS.Pid}, {"user", rt.BindNS.User}, {"uts", rt.BindNS.Uts},
		} {
			if ns.p != nil {
				v.absPath(*ns.p, l, "runtime.bindNS."+ns.name)
			}
		}
		if rt.Namespace != nil && strings.TrimSpace(*rt.Namespace) == "" {
			v.errf(l, "runtime.namespace", "empty namespace name")
		}
	}
}

// MaxContainerNameLen is the longest container name containerd accepts.
const MaxContainerNameLen = 76

// containerNameRE is containerd's rule for identifiers (its pkg/identifiers), which it applies
// to the id of every container it creates: runs of ASCII letters and digits joined by single
// '.', '_' or '-'. runc's own rule for onboot and onshutdown containers is looser; one rule
// for every section keeps names portable between them.
var containerNameRE = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`)

// ValidateContainerName checks a container name (onboot, onshutdown, services) against what
// containerd and runc accept at boot: at most 76 characters, ASCII letters and digits, with
// single '.', '_' or '-' between them, starting and ending with a letter or digit.
func ValidateContainerName(name string) error {
	switch {
	case name == "":
		return errors.New("empty container name")
	case len(name) > MaxContainerNameLen:
		return fmt.Errorf("container name %.20q... is %d characters long; containerd accepts at most %d", name, len(name), MaxContainerNameLen)
	case !containerNameRE.MatchString(name):
		return fmt.Errorf("invalid container name %q: containerd would refuse it at boot; use ASCII letters and digits, joined by single '.', '_' or '-', starting and ending with a letter or digit", name)
	}
	return nil
}

func (v *validator) caps(list *[]string, l loc, field string) {
	if list == nil {
		return
	}
	for i, c := range *list {
		rel := indexPath(field, i)
		switch {
		case strings.EqualFold(c, "all") || strings.EqualFold(c, "none"):
			if len(*list) != 1 {
				v.errf(l, rel, "%q must be the only entry of the list", c)
			}
		case isCapability(c):
		default:
			if h := capabilityHint(c); h != "" {
				v.errf(l, rel, "unknown capability %q; did you mean %q?", c, h)
			} else {
				v.errf(l, rel, "unknown capability %q; expected one of %s, or \"all\" or \"none\" alone",
					c, strings.Join(capabilities[:], ", "))
			}
		}
	}
}

func (v *validator) absPath(p string, l loc, rel string) {
	if p != "" && !path.IsAbs(p) {
		v.errf(l, rel, "%q is not an absolute path", p)
	}
}

func (v *validator) absPaths(list *[]string, l loc, field string) {
	if list == nil {
		return
	}
	for i, p := range *list {
		if p == "" {
			v.errf(l, indexPath(field, i), "empty path")
			continue
		}
		v.absPath(p, l, indexPath(field, i))
	}
}

// namespace checks a net/pid/ipc/uts/userns value: empty (the default), "host" or "root"
// (share the host's), "new" (a new one; "none" too for net), or the absolute path of a
// namespace to join.
func (v *validator) namespace(ns string, l loc, field string, isNet bool) {
	switch ns {
	case "", "host", "root", "new":
		return
	case "none":
		if isNet {
			return
		}
	}
	if !path.IsAbs(ns) {
		want := `"host", "new" or an absolute path`
		if isNet {
			want = `"host", "new", "none" or an absolute path`
		}
		v.errf(l, field, "invalid namespace %q; expected %s", ns, want)
	}
}

// ContainerPath is where a destination of mounts, binds or tmpfs ends up inside the container:
// an absolute path as written, a relative one resolved against the container's root, as runc
// does ("etc-rw" is "/etc-rw"). LinuxKit accepts relative destinations and passes them on;
// kiln writes the resolved path into config.json.
func ContainerPath(dst string) string {
	if path.IsAbs(dst) {
		return dst
	}
	return path.Clean("/" + dst)
}

// relativeDestination warns about a relative destination of mounts, binds or tmpfs: accepted,
// as LinuxKit does, but resolved against the container's root.
func (v *validator) relativeDestination(dst string, l loc, rel string) {
	if dst != "" && !path.IsAbs(dst) {
		v.warnf(l, rel, "destination %q is relative; it is resolved against the container's root, as %q", dst, ContainerPath(dst))
	}
}

// mount checks one entry of mounts (runtime false) or runtime.mounts (runtime true). A relative
// destination is accepted in both: in mounts it is resolved against the container's root (with a
// warning); in runtime.mounts it means a place inside the container's root file system, while an
// absolute one is a place on the host (LinuxKit's rule, which kiln's init follows).
func (v *validator) mount(dst, typ, src string, l loc, rel string, volumes map[string]bool, runtime bool) {
	if !runtime {
		v.relativeDestination(dst, l, rel+".destination")
	}
	if typ == "" && dst != "/dev" {
		switch src {
		case "mqueue", "devpts", "proc", "sysfs", "cgroup":
		default:
			v.errf(l, rel+".type", "required (it can only be left out for proc, sysfs, devpts, mqueue, cgroup or /dev)")
		}
	}
	if dst == "" {
		t := typ
		if t == "" {
			t = src
		}
		switch t {
		case "proc", "devpts", "sysfs", "cgroup", "mqueue":
		default:
			v.errf(l, rel+".destination", "required")
		}
	}
	if typ == "bind" && volumes != nil && src != "" && !path.IsAbs(src) && !volumes[src] {
		v.errf(l, rel+".source", "unknown volume %q; declare it under volumes or use an absolute path", src)
	}
}

func (v *validator) binds(list *[]string, l loc, field string, volumes map[string]bool) {
	if list == nil {
		return
	}
	for i, b := range *list {
		rel := indexPath(field, i)
		src, dst, _, err := ParseBind(b)
		if err != nil {
			v.errf(l, rel, "%v", err)
			continue
		}
		v.relativeDestination(dst, l, rel)
		if volumes != nil && !path.IsAbs(src) && !volumes[src] {
			v.errf(l, rel, "unknown volume %q; declare it under volumes or use an absolute source path", src)
		}
	}
}

func (v *validator) device(d Device, l loc, rel string) {
	// LinuxKit's path "all" allows every device of the type in the device cgroup instead of
	// creating a node.
	all := d.Path == "all"
	switch {
	case d.Path == "":
		v.errf(l, rel+".path", "required")
	case !all:
		v.absPath(d.Path, l, rel+".path")
	}
	switch d.Type {
	case "b", "c", "u", "p":
	case "a":
		if !all {
			v.errf(l, rel+".type", "type \"a\" (all devices) is only valid with path \"all\"")
		}
	case "":
		v.errf(l, rel+".type", "required")
	default:
		v.errf(l, rel+".type", "unknown device type %q; expected b, c, u, p or a", d.Type)
	}
	switch {
	case d.Mode != "":
		if _, err := ParseMode(d.Mode); err != nil {
			v.errf(l, rel+".mode", "%v", err)
		}
	case !all && d.Path != "":
		v.errf(l, rel+".mode", "required (an octal mode such as \"0666\")")
	}
}

// ParseBind splits a binds entry "src:dst[:opt,opt]". src is an absolute host path or a
// volume name; dst is a path in the container (a relative one is taken from the container's
// root, see ContainerPath); opts is nil when not given.
func ParseBind(s string) (src, dst string, opts []string, err error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return "", "", nil, fmt.Errorf("invalid bind %q; expected src:dst[:opt,opt]", s)
	}
	src, dst = parts[0], parts[1]
	if src == "" {
		return "", "", nil, fmt.Errorf("invalid bind %q: empty source", s)
	}
	if dst == "" {
		return "", "", nil, fmt.Errorf("invalid bind %q: empty destination", s)
	}
	if len(parts) == 3 {
		if opts, err = splitOptions(parts[2]); err != nil {
			return "", "", nil, fmt.Errorf("invalid bind %q: %w", s, err)
		}
	}
	return src, dst, opts, nil
}

// ParseTmpfs splits a tmpfs entry "dst[:opt,opt]"; dst is a path in the container (see
// ContainerPath).
func ParseTmpfs(s string) (dst string, opts []string, err error) {
	parts := strings.Split(s, ":")
	if len(parts) > 2 {
		return "", nil, fmt.Errorf("invalid tmpfs %q; expected dst[:opt,opt]", s)
	}
	if parts[0] == "" {
		return "", nil, fmt.Errorf("invalid tmpfs %q: empty destination", s)
	}
	if len(parts) == 2 {
		if opts, err = splitOptions(parts[1]); err != nil {
			return "", nil, fmt.Errorf("invalid tmpfs %q: %w", s, err)
		}
	}
	return parts[0], opts, nil
}

func splitOptions(s string) ([]string, error) {
	opts := strings.Split(s, ",")
	for _, o := range opts {
		if o == "" {
			return nil, errors.New("empty mount option")
		}
	}
	return opts, nil
}

// Unlimited is the rlimit value written "unlimited" or "infinity".
const Unlimited = math.MaxUint64

// ParseRlimit parses an rlimits entry "name,soft,hard": name is RLIMIT_NOFILE or nofile (any
// case), soft and hard are numbers or "unlimited"/"infinity", and soft may not exceed hard.
func ParseRlimit(s string) (name string, soft, hard uint64, err error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return "", 0, 0, fmt.Errorf("invalid rlimit %q; expected name,soft,hard", s)
	}
	name, ok := RlimitName(parts[0])
	if !ok {
		return "", 0, 0, fmt.Errorf("invalid rlimit %q: unknown limit %q; expected one of %s (with or without RLIMIT_)",
			s, strings.TrimSpace(parts[0]), strings.Join(rlimits[:], ", "))
	}
	limit := func(v string) (uint64, error) {
		v = strings.TrimSpace(v)
		if strings.EqualFold(v, "unlimited") || strings.EqualFold(v, "infinity") {
			return Unlimited, nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid rlimit %q: %q is not a number, \"unlimited\" or \"infinity\"", s, v)
		}
		return n, nil
	}
	if soft, err = limit(parts[1]); err != nil {
		return "", 0, 0, err
	}
	if hard, err = limit(parts[2]); err != nil {
		return "", 0, 0, err
	}
	if soft > hard {
		return "", 0, 0, fmt.Errorf("invalid rlimit %q: soft limit exceeds hard limit", s)
	}
	return name, soft, hard, nil
}
