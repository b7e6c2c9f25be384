// Package spec turns one container entry of a system description into the two files of its
// bundle: the OCI runtime spec (config.json) and kiln's runtime actions (runtime.json). It
// follows LinuxKit's rules, so existing LinuxKit images and YAML produce the same containers:
// the YAML entry wins over the image's org.mobyproject.config label, which wins over the
// image's own config. See README.md for the precedence of every field.
//
// It does not read images or files: the caller passes the parsed label, the image config and a
// lookup for user and group names, and writes the bundle.
package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/kiln-os/kiln/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Input is everything that decides one container's spec, from highest precedence to lowest.
type Input struct {
	// Name names the container in errors.
	Name string
	// YAML is the entry from the system description. Nil is an empty entry.
	YAML *config.Image
	// Label is the image's parsed org.mobyproject.config label, or nil. It may not set name or
	// image.
	Label *config.Image
	// Image is the image's own config; only Entrypoint, Cmd, Env, WorkingDir and User are used.
	Image v1.ConfigFile
	// IDs resolves user and group names. Nil resolves none: only numbers and "root" work.
	IDs IDLookup
}

// FieldError reports a setting that cannot be turned into a spec.
type FieldError struct {
	Container string
	Field     string
	Err       error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("container %q: %s: %v", e.Container, e.Field, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// indent is how kiln (and LinuxKit) indents config.json and runtime.json.
const indent = "    "

// Marshal encodes a spec as config.json. Map keys come out sorted, so the bytes depend only on
// the spec.
func Marshal(s *specs.Spec) ([]byte, error) {
	b, err := json.MarshalIndent(s, "", indent)
	if err != nil {
		return nil, fmt.Errorf("encode config.json: %w", err)
	}
	return b, nil
}

// pick returns the YAML value if set, else the label's, else def.
func pick[T any](yaml, label *T, def T) T {
	if yaml != nil {
		return *yaml
	}
	if label != nil {
		return *label
	}
	return def
}

// pickString is pick for plain strings, where "" means not set.
func pickString(yaml, label, def string) string {
	if yaml != "" {
		return yaml
	}
	if label != "" {
		return label
	}
	return def
}

func cloneMounts(ms []specs.Mount) []specs.Mount {
	out := slices.Clone(ms)
	for i := range out {
		out[i].Options = slices.Clone(out[i].Options)
	}
	return out
}

// Generate builds the container's config.json and runtime.json contents. The runtime's mounts
// are only the entry's own; the bundle writer adds the mounts of the root file system.
func Generate(in Input) (*specs.Spec, *config.Runtime, error) {
	y, l := in.YAML, in.Label
	if y == nil {
		y = &config.Image{}
	}
	if l == nil {
		l = &config.Image{}
	}
	fail := func(field string, err error) (*specs.Spec, *config.Runtime, error) {
		return nil, nil, &FieldError{Container: in.Name, Field: field, Err: err}
	}
	if l.Name != "" || l.Image != "" {
		return fail("org.mobyproject.config label", errors.New("may not set name or image"))
	}
	img := in.Image.Config

	// Command, environment and working directory may come from the image itself.
	args := slices.Clone(pick(y.Command, l.Command, append(slices.Clone(img.Entrypoint), img.Cmd...)))
	if len(args) == 0 {
		return fail("command", errors.New("empty: set command, or an entrypoint or cmd in the image"))
	}
	env := slices.Clone(pick(y.Env, l.Env, img.Env))
	cwd := pickString(y.Cwd, l.Cwd, pickString(img.WorkingDir, "", "/"))

	// Capabilities: the YAML list replaces; otherwise the label's list plus capabilities.add.
	capList := union(pick(l.Capabilities, nil, nil), pick(l.CapabilitiesAdd, nil, nil))
	if y.Capabilities != nil {
		capList = *y.Capabilities
	} else {
		capList = union(capList, pick(y.CapabilitiesAdd, nil, nil))
	}
	effective, err := expandCapabilities(capList)
	if err != nil {
		return fail("capabilities", err)
	}
	ambient, err := expandCapabilities(pick(y.Ambient, l.Ambient, nil))
	if err != nil {
		return fail("ambient", err)
	}

	// Mounts: defaults, then tmpfs, then binds, then full mounts; a later one at the same
	// destination replaces an earlier one.
	readonly := pick(y.Readonly, l.Readonly, false)
	table := mountTable{}
	for _, m := range defaultMounts(readonly) {
		table.add(m)
	}
	for _, t := range pick(y.Tmpfs, l.Tmpfs, nil) {
		m, err := parseTmpfs(t)
		if err != nil {
			return fail("tmpfs", err)
		}
		table.add(m)
	}
	binds := union(pick(l.Binds, nil, nil), pick(l.BindsAdd, nil, nil))
	if y.Binds != nil {
		binds = *y.Binds
	} else {
		binds = union(binds, pick(y.BindsAdd, nil, nil))
	}
	for _, b := range binds {
		m, err := parseBind(b)
		if err != nil {
			return fail("binds", err)
		}
		table.add(m)
	}
	for _, m := range pick(y.Mounts, l.Mounts, nil) {
		m, err := completeMount(m)
		if err != nil {
			return fail("mounts", err)
		}
		table.add(m)
	}

	// Namespaces: host net, ipc, uts and user by default; new pid, mount and cgroup.
	var namespaces []specs.LinuxNamespace
	for _, ns := range []struct {
		field, value string
		typ          specs.LinuxNamespaceType
	}{
		{"net", pickString(y.Net, l.Net, "host"), specs.NetworkNamespace},
		{"ipc", pickString(y.Ipc, l.Ipc, "host"), specs.IPCNamespace},
		{"uts", pickString(y.Uts, l.Uts, "host"), specs.UTSNamespace},
		{"pid", pickString(y.Pid, l.Pid, "new"), specs.PIDNamespace},
		{"userns", pickString(y.Userns, l.Userns, "host"), specs.UserNamespace},
	} {
		n, err := namespace(ns.typ, ns.value)
		if err != nil {
			return fail(ns.field, err)
		}
		if n != nil {
			namespaces = append(namespaces, *n)
		}
	}
	namespaces = append(namespaces,
		specs.LinuxNamespace{Type: specs.MountNamespace},
		specs.LinuxNamespace{Type: specs.CgroupNamespace})

	var rlimits []specs.POSIXRlimit
	for _, s := range pick(y.Rlimits, l.Rlimits, nil) {
		r, err := parseRlimit(s)
		if err != nil {
			return fail("rlimits", err)
		}
		rlimits = append(rlimits, r)
	}

	user, err := processUser(in.IDs, y, l, img.User)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Container = in.Name
		}
		return nil, nil, err
	}

	resources, err := cloneResources(pick(y.Resources, l.Resources, specs.LinuxResources{}))
	if err != nil {
		return fail("resources", err)
	}
	nodes, rules, err := devices(pick(y.Devices, l.Devices, nil))
	if err != nil {
		return fail("devices", err)
	}
	resources.Devices = append(resources.Devices, rules...)

	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			User:            user,
			Args:            args,
			Env:             env,
			Cwd:             cwd,
			Capabilities:    capabilities(effective, ambient),
			Rlimits:         rlimits,
			NoNewPrivileges: pick(y.NoNewPrivileges, l.NoNewPrivileges, false),
			OOMScoreAdj:     clonePtr(firstPtr(y.OOMScoreAdj, l.OOMScoreAdj)),
		},
		Root:        &specs.Root{Path: "rootfs", Readonly: readonly},
		Hostname:    pickString(y.Hostname, l.Hostname, ""),
		Mounts:      table.sorted(),
		Annotations: maps.Clone(pick(y.Annotations, l.Annotations, nil)),
		Linux: &specs.Linux{
			UIDMappings:       slices.Clone(pick(y.UIDMappings, l.UIDMappings, nil)),
			GIDMappings:       slices.Clone(pick(y.GIDMappings, l.GIDMappings, nil)),
			Sysctl:            maps.Clone(pick(y.Sysctl, l.Sysctl, nil)),
			Resources:         resources,
			CgroupsPath:       pick(y.CgroupsPath, l.CgroupsPath, ""),
			Namespaces:        namespaces,
			Devices:           nodes,
			RootfsPropagation: pick(y.RootfsPropagation, l.RootfsPropagation, ""),
			MaskedPaths:       slices.Clone(pick(y.MaskedPaths, l.MaskedPaths, nil)),
			ReadonlyPaths:     slices.Clone(pick(y.ReadonlyPaths, l.ReadonlyPaths, nil)),
		},
	}
	if err := checkAnnotations(s.Annotations); err != nil {
		return fail("annotations", err)
	}
	return s, mergeRuntime(y.Runtime, l.Runtime), nil
}

// processUser resolves uid, gid and additionalGids. The YAML wins over the label field by
// field; the image's User applies only when neither sets uid nor gid.
func processUser(ids IDLookup, y, l *config.Image, imageUser string) (specs.User, error) {
	var u specs.User
	var err error
	uidV, gidV := firstPtr(y.UID, l.UID), firstPtr(y.GID, l.GID)
	if uidV == nil && gidV == nil {
		u.UID, u.GID, err = resolveImageUser(imageUser, ids)
		if err != nil {
			return u, &FieldError{Field: fmt.Sprintf("image config User %q", imageUser), Err: err}
		}
	} else {
		if u.UID, err = resolveUser(uidV, ids); err != nil {
			return u, &FieldError{Field: "uid", Err: err}
		}
		if u.GID, err = resolveGroup(gidV, ids); err != nil {
			return u, &FieldError{Field: "gid", Err: err}
		}
	}
	for _, g := range pick(y.AdditionalGids, l.AdditionalGids, nil) {
		gid, err := resolveGroup(&g, ids)
		if err != nil {
			return u, &FieldError{Field: "additionalGids", Err: err}
		}
		u.AdditionalGids = append(u.AdditionalGids, gid)
	}
	return u, nil
}

// cloneResources deep-copies the resources (they hold pointers) so the spec shares nothing with
// its input.
func cloneResources(r specs.LinuxResources) (*specs.LinuxResources, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var out specs.LinuxResources
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// firstPtr returns the YAML pointer if set, else the label's.
func firstPtr[T any](yaml, label *T) *T {
	if yaml != nil {
		return yaml
	}
	return label
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
