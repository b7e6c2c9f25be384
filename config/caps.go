package config

import "strings"

// capabilities lists every Linux capability, in kernel number order (CAP_CHOWN is 0,
// CAP_CHECKPOINT_RESTORE is 40). LinuxKit accepts these exact upper-case names, plus a single
// "all" or "none" (any case) standing alone in the list.
var capabilities = [...]string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_DAC_READ_SEARCH",
	"CAP_FOWNER",
	"CAP_FSETID",
	"CAP_KILL",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST",
	"CAP_NET_ADMIN",
	"CAP_NET_RAW",
	"CAP_IPC_LOCK",
	"CAP_IPC_OWNER",
	"CAP_SYS_MODULE",
	"CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE",
	"CAP_SYS_PACCT",
	"CAP_SYS_ADMIN",
	"CAP_SYS_BOOT",
	"CAP_SYS_NICE",
	"CAP_SYS_RESOURCE",
	"CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG",
	"CAP_MKNOD",
	"CAP_LEASE",
	"CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL",
	"CAP_SETFCAP",
	"CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN",
	"CAP_SYSLOG",
	"CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND",
	"CAP_AUDIT_READ",
	"CAP_PERFMON",
	"CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// Capabilities returns the names of all Linux capabilities kiln knows, in kernel order.
func Capabilities() []string { return append([]string(nil), capabilities[:]...) }

func isCapability(s string) bool {
	for _, c := range capabilities {
		if c == s {
			return true
		}
	}
	return false
}

// capabilityHint suggests the accepted spelling of a near miss ("net_admin", "cap_sys_admin").
func capabilityHint(s string) string {
	u := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(u, "CAP_") {
		u = "CAP_" + u
	}
	if isCapability(u) {
		return u
	}
	return ""
}

// rlimits lists the resource limits LinuxKit accepts, written RLIMIT_NAME or name in any case.
var rlimits = [...]string{
	"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
	"RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
	"RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
}

// RlimitName returns the canonical RLIMIT_ name for a name written in an rlimits entry
// ("nofile", "NOFILE", "RLIMIT_NOFILE"), and whether it is known.
func RlimitName(s string) (string, bool) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(u, "RLIMIT_") {
		u = "RLIMIT_" + u
	}
	for _, r := range rlimits {
		if r == u {
			return u, true
		}
	}
	return "", false
}
