package spec

import (
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// allCapabilities lists every capability LinuxKit knows, in kernel number order (0 to 40). It is
// what the single keyword "all" expands to.
func allCapabilities() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
		"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
		"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
		"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
		"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
		"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
		"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
		"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
		"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
	}
}

// expandCapabilities applies the keywords ("all" or "none", in any case, as the only entry),
// checks every name (exact, upper-case CAP_ names) and drops repeats, keeping first positions.
func expandCapabilities(list []string) ([]string, error) {
	known := allCapabilities()
	if len(list) == 1 {
		switch strings.ToLower(list[0]) {
		case "all":
			return known, nil
		case "none":
			return nil, nil
		}
	}
	var out []string
	for _, c := range list {
		if k := strings.ToLower(c); k == "all" || k == "none" {
			return nil, fmt.Errorf("%q must be the only entry of its list", c)
		}
		if !slices.Contains(known, c) {
			return nil, fmt.Errorf("unknown capability %q", c)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// capabilities builds the process capability sets: the effective set is the chosen list; the
// bounding, permitted and inheritable sets are the sorted union of it and the ambient list.
func capabilities(effective, ambient []string) *specs.LinuxCapabilities {
	var bounding []string
	for _, c := range append(slices.Clone(effective), ambient...) {
		if !slices.Contains(bounding, c) {
			bounding = append(bounding, c)
		}
	}
	slices.Sort(bounding)
	return &specs.LinuxCapabilities{
		Bounding:    bounding,
		Effective:   effective,
		Inheritable: slices.Clone(bounding),
		Permitted:   slices.Clone(bounding),
		Ambient:     ambient,
	}
}

// union appends b's entries missing from a to a copy of a.
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
