package spec

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/kiln-os/kiln/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// namespace reads one of net, ipc, uts, pid or userns: "host" or "root" shares the host's
// namespace (no entry), "new" or "" makes a new one (net also takes "none"), an absolute path
// joins that namespace.
func namespace(typ specs.LinuxNamespaceType, value string) (*specs.LinuxNamespace, error) {
	switch {
	case value == "host" || value == "root":
		return nil, nil
	case value == "new" || value == "" || (value == "none" && typ == specs.NetworkNamespace):
		return &specs.LinuxNamespace{Type: typ}, nil
	case strings.HasPrefix(value, "/"):
		return &specs.LinuxNamespace{Type: typ, Path: value}, nil
	}
	return nil, fmt.Errorf("%q: want host, new or an absolute path to a namespace", value)
}

// knownRlimit reports whether name is one of the limits the OCI runtime spec defines for Linux.
func knownRlimit(name string) bool {
	switch name {
	case "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
		"RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
		"RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME":
		return true
	}
	return false
}

// parseRlimit reads "name,soft,hard": the name in any case with or without RLIMIT_, each limit a
// number or "unlimited".
func parseRlimit(s string) (specs.POSIXRlimit, error) {
	f := strings.SplitN(s, ",", 3)
	if len(f) != 3 {
		return specs.POSIXRlimit{}, fmt.Errorf("%q: want name,soft,hard", s)
	}
	name := strings.ToUpper(strings.TrimSpace(f[0]))
	if !strings.HasPrefix(name, "RLIMIT_") {
		name = "RLIMIT_" + name
	}
	if !knownRlimit(name) {
		return specs.POSIXRlimit{}, fmt.Errorf("%q: unknown limit %s", s, name)
	}
	var lim [2]uint64
	for i, v := range f[1:] {
		v = strings.TrimSpace(v)
		if strings.EqualFold(v, "unlimited") {
			lim[i] = math.MaxUint64
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return specs.POSIXRlimit{}, fmt.Errorf("%q: %w", s, err)
		}
		lim[i] = n
	}
	return specs.POSIXRlimit{Type: name, Soft: lim[0], Hard: lim[1]}, nil
}

// devices turns the devices list into device nodes and the cgroup rules that allow them. The
// path "all" adds only a rule, allowing every device of that type.
func devices(list []config.Device) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	var nodes []specs.LinuxDevice
	var rules []specs.LinuxDeviceCgroup
	for _, d := range list {
		if d.Path == "all" {
			rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Access: "rwm"})
			continue
		}
		mode, err := config.ParseMode(d.Mode)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", d.Path, err)
		}
		fm := os.FileMode(mode)
		major, minor := d.Major, d.Minor
		nodes = append(nodes, specs.LinuxDevice{Path: d.Path, Type: d.Type, Major: major, Minor: minor, FileMode: &fm})
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Major: &major, Minor: &minor, Access: "rwm"})
	}
	return nodes, rules, nil
}
