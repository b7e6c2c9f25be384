// Package config is kiln's system description: the YAML schema (LinuxKit's format, unchanged),
// its strict decoder with file:line:column errors, the merge of several files, the expansion of
// "@pkg:" references and the semantic checks that need no image.
//
// It does not resolve images or generate runtime specs: see package assemble for that.
package config

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// System is one parsed (or merged) system description. Field order follows LinuxKit's format so
// that a marshalled System reads like the files users write.
type System struct {
	Kernel     *Kernel   `yaml:"kernel,omitempty"`
	Init       []string  `yaml:"init,omitempty"`
	Onboot     []*Image  `yaml:"onboot,omitempty"`
	Onshutdown []*Image  `yaml:"onshutdown,omitempty"`
	Services   []*Image  `yaml:"services,omitempty"`
	Files      []*File   `yaml:"files,omitempty"`
	Volumes    []*Volume `yaml:"volumes,omitempty"`
	// Trust is accepted (and ignored, with a warning) so that old LinuxKit files load.
	Trust *Trust `yaml:"trust,omitempty"`

	initPos  []Position // where each Init entry was written (parallel to Init when known)
	files    []string   // the files this System was parsed from, in load order
	warnings []*Error   // warnings found while decoding (e.g. a trust section)
}

// Trust is LinuxKit's retired content-trust section. Kiln verifies by digest instead.
type Trust struct {
	Image []string `yaml:"image,omitempty"`
	Org   []string `yaml:"org,omitempty"`
}

// Kernel names the kernel image and how to boot it.
type Kernel struct {
	Image   string  `yaml:"image"`
	Cmdline string  `yaml:"cmdline,omitempty"`
	Binary  string  `yaml:"binary,omitempty"` // default "kernel"
	Tar     *string `yaml:"tar,omitempty"`    // default "kernel.tar"; "none" for no modules
	UCode   string  `yaml:"ucode,omitempty"`

	// Pos is where the kernel section was written. Not part of the format.
	Pos Position `yaml:"-"`
	src *origin
}

// File is one entry of the files section.
type File struct {
	Path      string   `yaml:"path"`
	Directory bool     `yaml:"directory,omitempty"`
	Symlink   string   `yaml:"symlink,omitempty"`
	Contents  *string  `yaml:"contents,omitempty"`
	Source    string   `yaml:"source,omitempty"`
	Metadata  string   `yaml:"metadata,omitempty"`
	Optional  bool     `yaml:"optional,omitempty"`
	Mode      string   `yaml:"mode,omitempty"`
	UID       *IDValue `yaml:"uid,omitempty"`
	GID       *IDValue `yaml:"gid,omitempty"`

	// Pos is where this entry was written. Not part of the format.
	Pos Position `yaml:"-"`
	src *origin
}

// Volume is a named volume made from an image.
type Volume struct {
	Name      string   `yaml:"name"`
	Image     string   `yaml:"image,omitempty"`
	ReadOnly  bool     `yaml:"readonly,omitempty"`
	Format    string   `yaml:"format,omitempty"` // "oci" (default) or "filesystem"
	Platforms []string `yaml:"platforms,omitempty"`

	// Pos is where this entry was written. Not part of the format.
	Pos Position `yaml:"-"`
	src *origin
}

// IDValue is a uid or gid: a number, or a user/group name looked up in the image's
// /etc/passwd or /etc/group at build time. Exactly one of ID and Name is set; in YAML it is
// written as an integer or as a string.
type IDValue struct {
	ID   *uint32 `yaml:"-"`
	Name string  `yaml:"-"`
}

// Image is one container of onboot, services or onshutdown. Pointer fields distinguish
// "not set" from "set to empty": a set field overrides the image's label, which overrides the
// image's own config (LinuxKit's precedence).
type Image struct {
	Name              string                  `yaml:"name"`
	Image             string                  `yaml:"image"`
	Capabilities      *[]string               `yaml:"capabilities,omitempty"`
	CapabilitiesAdd   *[]string               `yaml:"capabilities.add,omitempty"`
	Ambient           *[]string               `yaml:"ambient,omitempty"`
	Mounts            *[]specs.Mount          `yaml:"mounts,omitempty"`
	Binds             *[]string               `yaml:"binds,omitempty"`
	BindsAdd          *[]string               `yaml:"binds.add,omitempty"`
	Tmpfs             *[]string               `yaml:"tmpfs,omitempty"`
	Devices           *[]Device               `yaml:"devices,omitempty"`
	Command           *[]string               `yaml:"command,omitempty"`
	Env               *[]string               `yaml:"env,omitempty"`
	Cwd               string                  `yaml:"cwd,omitempty"`
	Net               string                  `yaml:"net,omitempty"`
	Pid               string                  `yaml:"pid,omitempty"`
	Ipc               string                  `yaml:"ipc,omitempty"`
	Uts               string                  `yaml:"uts,omitempty"`
	Userns            string                  `yaml:"userns,omitempty"`
	Hostname          string                  `yaml:"hostname,omitempty"`
	Readonly          *bool                   `yaml:"readonly,omitempty"`
	MaskedPaths       *[]string               `yaml:"maskedPaths,omitempty"`
	ReadonlyPaths     *[]string               `yaml:"readonlyPaths,omitempty"`
	UID               *IDValue                `yaml:"uid,omitempty"`
	GID               *IDValue                `yaml:"gid,omitempty"`
	AdditionalGids    *[]IDValue              `yaml:"additionalGids,omitempty"`
	NoNewPrivileges   *bool                   `yaml:"noNewPrivileges,omitempty"`
	OOMScoreAdj       *int                    `yaml:"oomScoreAdj,omitempty"`
	RootfsPropagation *string                 `yaml:"rootfsPropagation,omitempty"`
	CgroupsPath       *string                 `yaml:"cgroupsPath,omitempty"`
	Resources         *specs.LinuxResources   `yaml:"resources,omitempty"`
	Sysctl            *map[string]string      `yaml:"sysctl,omitempty"`
	Rlimits           *[]string               `yaml:"rlimits,omitempty"`
	UIDMappings       *[]specs.LinuxIDMapping `yaml:"uidMappings,omitempty"`
	GIDMappings       *[]specs.LinuxIDMapping `yaml:"gidMappings,omitempty"`
	Annotations       *map[string]string      `yaml:"annotations,omitempty"`
	Runtime           *Runtime                `yaml:"runtime,omitempty"`

	// Pos is where this entry (or label) was written. Not part of the format.
	Pos Position `yaml:"-"`
	src *origin
}

// Device is a device node made available in a container.
type Device struct {
	Path  string `yaml:"path"` // absolute, or "all": allow every device of Type, make no node
	Type  string `yaml:"type"` // "b", "c", "u" or "p" (or "a", with path "all")
	Major int64  `yaml:"major"`
	Minor int64  `yaml:"minor"`
	Mode  string `yaml:"mode,omitempty"` // octal, e.g. "0666"; required unless path is "all"
}

// Runtime holds the actions that kiln's init performs around a container, outside its spec.
type Runtime struct {
	Cgroups    *[]string      `yaml:"cgroups,omitempty"`
	Mounts     *[]specs.Mount `yaml:"mounts,omitempty"`
	Mkdir      *[]string      `yaml:"mkdir,omitempty"`
	Interfaces *[]Interface   `yaml:"interfaces,omitempty"`
	BindNS     BindNS         `yaml:"bindNS,omitempty"`
	Namespace  *string        `yaml:"namespace,omitempty"`
}

// Interface moves or creates a network interface for a container.
type Interface struct {
	Name         string `yaml:"name,omitempty"`
	Add          string `yaml:"add,omitempty"`
	Peer         string `yaml:"peer,omitempty"`
	CreateInRoot bool   `yaml:"createInRoot,omitempty"`
}

// BindNS binds the container's namespaces to paths so that others can join them.
type BindNS struct {
	Cgroup *string `yaml:"cgroup,omitempty"`
	Ipc    *string `yaml:"ipc,omitempty"`
	Mnt    *string `yaml:"mnt,omitempty"`
	Net    *string `yaml:"net,omitempty"`
	Pid    *string `yaml:"pid,omitempty"`
	User   *string `yaml:"user,omitempty"`
	Uts    *string `yaml:"uts,omitempty"`
}
