package spec

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/kiln-os/kiln/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// mergeRuntime takes each runtime field from the YAML, else from the label, else empty. Every
// field of the result is set, so that runtime.json always has every key (LinuxKit's file does).
func mergeRuntime(yaml, label *config.Runtime) *config.Runtime {
	if yaml == nil {
		yaml = &config.Runtime{}
	}
	if label == nil {
		label = &config.Runtime{}
	}
	str := func(y, l *string) *string {
		s := pick(y, l, "")
		return &s
	}
	cgroups := slices.Clone(pick(yaml.Cgroups, label.Cgroups, []string{}))
	mounts := cloneMounts(pick(yaml.Mounts, label.Mounts, []specs.Mount{}))
	mkdir := slices.Clone(pick(yaml.Mkdir, label.Mkdir, []string{}))
	ifaces := slices.Clone(pick(yaml.Interfaces, label.Interfaces, []config.Interface{}))
	return &config.Runtime{
		Cgroups:    &cgroups,
		Mounts:     &mounts,
		Mkdir:      &mkdir,
		Interfaces: &ifaces,
		BindNS: config.BindNS{
			Cgroup: str(yaml.BindNS.Cgroup, label.BindNS.Cgroup),
			Ipc:    str(yaml.BindNS.Ipc, label.BindNS.Ipc),
			Mnt:    str(yaml.BindNS.Mnt, label.BindNS.Mnt),
			Net:    str(yaml.BindNS.Net, label.BindNS.Net),
			Pid:    str(yaml.BindNS.Pid, label.BindNS.Pid),
			User:   str(yaml.BindNS.User, label.BindNS.User),
			Uts:    str(yaml.BindNS.Uts, label.BindNS.Uts),
		},
		Namespace: str(yaml.Namespace, label.Namespace),
	}
}

// runtimeFile is the JSON form of runtime.json, with LinuxKit's key names.
type runtimeFile struct {
	Cgroups    []string        `json:"cgroups"`
	Mounts     []specs.Mount   `json:"mounts"`
	Mkdir      []string        `json:"mkdir"`
	Interfaces []interfaceFile `json:"interfaces"`
	BindNS     bindNSFile      `json:"bindNS"`
	Namespace  string          `json:"namespace"`
	// Rootfs is kiln's own key, present only for a container whose root file system is made
	// at boot from a copy shared with other containers (see SharedRootfs).
	Rootfs *SharedRootfs `json:"kiln.rootfs,omitempty"`
}

// SharedRootfs says where a container's root file system comes from when several containers
// are made from the same image and the system holds one copy of its files: kiln-init mounts
// an overlay on the bundle's rootfs/ with Lower (an absolute path in the booted system) as its
// read-only lower layer and a private upper layer in memory, so nothing one container writes
// is seen by another.
type SharedRootfs struct {
	Lower string `json:"lower"`
}

type interfaceFile struct {
	Name         string `json:"name,omitempty"`
	Add          string `json:"add,omitempty"`
	Peer         string `json:"peer,omitempty"`
	CreateInRoot bool   `json:"createInRoot"`
}

type bindNSFile struct {
	Cgroup string `json:"cgroup"`
	Ipc    string `json:"ipc"`
	Mnt    string `json:"mnt"`
	Net    string `json:"net"`
	Pid    string `json:"pid"`
	User   string `json:"user"`
	Uts    string `json:"uts"`
}

// MarshalRuntime encodes r as runtime.json: LinuxKit's keys, every key present, lists never
// null, indented as Marshal indents config.json.
func MarshalRuntime(r *config.Runtime) ([]byte, error) {
	return MarshalRuntimeShared(r, nil)
}

// MarshalRuntimeShared is MarshalRuntime plus kiln's "kiln.rootfs" key when shared is not nil.
// LinuxKit's keys keep their meaning; a reader that does not know the extra key ignores it.
func MarshalRuntimeShared(r *config.Runtime, shared *SharedRootfs) ([]byte, error) {
	if r == nil {
		r = &config.Runtime{}
	}
	deref := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	f := runtimeFile{
		Cgroups:    pick(r.Cgroups, nil, []string{}),
		Mounts:     pick(r.Mounts, nil, []specs.Mount{}),
		Mkdir:      pick(r.Mkdir, nil, []string{}),
		Interfaces: []interfaceFile{},
		BindNS: bindNSFile{
			Cgroup: deref(r.BindNS.Cgroup), Ipc: deref(r.BindNS.Ipc), Mnt: deref(r.BindNS.Mnt),
			Net: deref(r.BindNS.Net), Pid: deref(r.BindNS.Pid), User: deref(r.BindNS.User),
			Uts: deref(r.BindNS.Uts),
		},
		Namespace: deref(r.Namespace),
		Rootfs:    shared,
	}
	if f.Cgroups == nil {
		f.Cgroups = []string{}
	}
	if f.Mounts == nil {
		f.Mounts = []specs.Mount{}
	}
	if f.Mkdir == nil {
		f.Mkdir = []string{}
	}
	for _, i := range pick(r.Interfaces, nil, nil) {
		f.Interfaces = append(f.Interfaces, interfaceFile{Name: i.Name, Add: i.Add, Peer: i.Peer, CreateInRoot: i.CreateInRoot})
	}
	b, err := json.MarshalIndent(f, "", indent)
	if err != nil {
		return nil, fmt.Errorf("encode runtime.json: %w", err)
	}
	return b, nil
}
