// Package bundle reads the container bundles kiln writes into a system
// (/containers/{onboot,services,onshutdown}/...: config.json, runtime.json, rootfs/) and
// prepares the host side of one before it runs: the mounts, directories and cgroups that
// runtime.json asks for (Plan, then Apply).
//
// runtime.json is LinuxKit's: cgroups, mounts and mkdir are done here, namespace (the
// containerd namespace of a service) is used by package supervise; interfaces and bindNS are
// read but not acted on (Unsupported lists them). kiln's own key "kiln.rootfs" says the root
// file system is an overlay of a copy shared with other containers (RootfsPlan). Running
// containers is left to the runc and supervise packages.
package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Annotations kiln-init reads from a container's config.json (set them with `annotations:`
// in the YAML or in the image's org.mobyproject.config label).
const (
	// AnnotationOptional set to "true" on an onboot or onshutdown container lets the boot
	// (or shutdown) go on when it fails.
	AnnotationOptional = "kiln.optional"
	// AnnotationRestart chooses a service's restart policy: "always" (the default),
	// "on-failure" or "never".
	AnnotationRestart = "kiln.restart"
)

// Runtime is the content of runtime.json.
type Runtime struct {
	Cgroups    []string          `json:"cgroups"`
	Mounts     []specs.Mount     `json:"mounts"`
	Mkdir      []string          `json:"mkdir"`
	Interfaces []json.RawMessage `json:"interfaces"`
	BindNS     map[string]string `json:"bindNS"`
	Namespace  string            `json:"namespace"`
	// Rootfs is kiln's "kiln.rootfs" key: the root file system is made from a shared copy.
	Rootfs *SharedRootfs `json:"kiln.rootfs"`
}

// Bundle is one container directory.
type Bundle struct {
	Dir     string // absolute
	Name    string // the container's name: the directory name without its "NNN-" order prefix
	ID      string // the directory name, unique within its folder
	Spec    *specs.Spec
	Runtime Runtime
}

var orderPrefix = regexp.MustCompile(`^[0-9]+-`)

// Load reads the bundle in dir. runtime.json is optional.
func Load(dir string) (*Bundle, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	b := &Bundle{Dir: abs, ID: filepath.Base(abs)}
	b.Name = orderPrefix.ReplaceAllString(b.ID, "")
	if b.Name == "" {
		b.Name = b.ID
	}
	data, err := os.ReadFile(filepath.Join(abs, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: read the runtime spec: %w", abs, err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("bundle %s: config.json is not a valid OCI runtime spec: %w", abs, err)
	}
	b.Spec = &s
	data, err = os.ReadFile(filepath.Join(abs, "runtime.json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("bundle %s: read runtime.json: %w", abs, err)
	default:
		if err := json.Unmarshal(data, &b.Runtime); err != nil {
			return nil, fmt.Errorf("bundle %s: runtime.json: %w", abs, err)
		}
	}
	return b, nil
}

// List loads every bundle directory in dir, in name order (the NNN- prefixes give the run
// order). A missing dir is an empty list.
func List(dir string) ([]*Bundle, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list containers in %s: %w", dir, err)
	}
	var out []*Bundle
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		b, err := Load(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Optional reports whether the container carries kiln.optional=true.
func (b *Bundle) Optional() bool {
	return strings.EqualFold(b.annotation(AnnotationOptional), "true")
}

// Restart returns the kiln.restart annotation, "always" when unset.
func (b *Bundle) Restart() (string, error) {
	v := b.annotation(AnnotationRestart)
	switch v {
	case "":
		return "always", nil
	case "always", "on-failure", "never":
		return v, nil
	}
	return "", fmt.Errorf("container %s: %s=%q; expected always, on-failure or never", b.Name, AnnotationRestart, v)
}

func (b *Bundle) annotation(k string) string {
	if b.Spec == nil {
		return ""
	}
	return b.Spec.Annotations[k]
}

// RootfsPath returns the absolute path of the container's root file system (config.json's
// root.path, relative to the bundle unless absolute).
func (b *Bundle) RootfsPath() string {
	p := "rootfs"
	if b.Spec != nil && b.Spec.Root != nil && b.Spec.Root.Path != "" {
		p = b.Spec.Root.Path
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(b.Dir, p)
}

// Unsupported names the runtime.json fields that are set but that kiln-init does not act on.
func (r Runtime) Unsupported() []string {
	var out []string
	if len(r.Interfaces) > 0 {
		out = append(out, "interfaces")
	}
	for _, k := range sortedKeys(r.BindNS) {
		if r.BindNS[k] != "" {
			out = append(out, "bindNS."+k)
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
