package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// authKey is one usable line of an authorized_keys file.
type authKey struct {
	Key     ssh.PublicKey
	Comment string
	Line    int
	// From is the from= option's list of addresses and CIDR blocks; nil allows any address.
	From []netip.Prefix
	// NoPTY is set by no-pty or restrict (and cleared again by a later pty).
	NoPTY bool
}

// describe names the key for a console line: type, fingerprint, comment and line.
func (k authKey) describe() string {
	s := k.Key.Type() + " key " + ssh.FingerprintSHA256(k.Key)
	if k.Comment != "" {
		return fmt.Sprintf("%s (%s, line %d)", s, k.Comment, k.Line)
	}
	return fmt.Sprintf("%s (line %d)", s, k.Line)
}

// allows reports whether the key's from= option admits addr (any address when there is none).
func (k authKey) allows(addr netip.Addr) bool {
	if k.From == nil {
		return true
	}
	addr = addr.Unmap()
	for _, p := range k.From {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Options of OpenSSH's authorized_keys format (sshd(8), AUTHORIZED_KEYS FILE FORMAT) that
// change nothing here, because this server never offers what they allow or forbid: port,
// agent, X11 and tunnel forwarding, ~/.ssh/rc, user environment files.
var harmlessOptions = map[string]bool{
	"no-port-forwarding": true, "port-forwarding": true, "permitopen": true, "permitlisten": true,
	"no-agent-forwarding": true, "agent-forwarding": true,
	"no-x11-forwarding": true, "x11-forwarding": true,
	"no-user-rc": true, "user-rc": true, "environment": true, "tunnel": true,
}

// parseAuthorizedKeys reads an authorized_keys file (name is for messages) line by line, with
// ssh.ParseAuthorizedKey. Blank lines and comments are skipped. A line that is not a key, or
// has an option this server cannot honour, is skipped and reported as "name:line: why".
//
// Options that restrict a key are enforced or the key is not used, never silently widened:
// from= (IP addresses and CIDR blocks only), no-pty, restrict, pty and expiry-time= (against
// now) are enforced; the forwarding options are harmless (nothing is forwarded); command=,
// cert-authority, principals=, verify-required and any unknown option make the line skipped.
func parseAuthorizedKeys(name string, data []byte, now time.Time) (keys []authKey, problems []string) {
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(bytes.TrimSuffix(line, []byte("\r")))
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		n := i + 1
		key, comment, options, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s:%d: not a public key (%v); line skipped", name, n, err))
			continue
		}
		k := authKey{Key: key, Comment: comment, Line: n}
		if err := k.applyOptions(options, now); err != nil {
			problems = append(problems, fmt.Sprintf("%s:%d: %v; key %s skipped", name, n, err, ssh.FingerprintSHA256(key)))
			continue
		}
		keys = append(keys, k)
	}
	return keys, problems
}

// applyOptions enforces the options of one line, in order, or says why the key cannot be used.
func (k *authKey) applyOptions(options []string, now time.Time) error {
	for _, opt := range options {
		name, value, hasValue := strings.Cut(opt, "=")
		name = strings.ToLower(name)
		if hasValue {
			value = unquote(value)
		}
		switch {
		case name == "no-pty" || name == "restrict":
			k.NoPTY = true
		case name == "pty":
			k.NoPTY = false
		case name == "from" && hasValue:
			if k.From != nil {
				// OpenSSH refuses this too: which of two lists would hold is not clear,
				// and the last one must not silently widen the first.
				return errors.New(`more than one "from=" option`)
			}
			from, err := parseFrom(value)
			if err != nil {
				return err
			}
			k.From = from
		case name == "expiry-time" && hasValue:
			end, err := parseExpiry(value)
			if err != nil {
				return err
			}
			if !now.Before(end) {
				return fmt.Errorf("expired on %s", end.Format(time.RFC3339))
			}
		case name == "no-touch-required":
			// Only security keys use it; x/crypto/ssh then requires the touch anyway.
		case harmlessOptions[name]:
		default:
			return fmt.Errorf("option %s is not supported (kiln's sshd runs no forced commands, certificates or verify-required)", opt)
		}
	}
	return nil
}

// unquote removes the double quotes around an option's value and the backslashes before
// quotes inside it.
func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return strings.ReplaceAll(v, `\"`, `"`)
}

// parseFrom reads from="10.0.0.0/8,192.0.2.7": addresses and CIDR blocks. OpenSSH's host name
// patterns, wildcards and negations are refused: this server does not look names up, and
// refusing the key is safer than ignoring the restriction.
func parseFrom(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if pre, err := netip.ParsePrefix(p); err == nil {
			out = append(out, pre.Masked())
			continue
		}
		if a, err := netip.ParseAddr(p); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		return nil, fmt.Errorf("from=%q: %q is not an IP address or CIDR block (host names, wildcards and ! are not supported)", v, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("from=%q names no address", v)
	}
	return out, nil
}

// parseExpiry reads expiry-time="YYYYMMDD[HHMM[SS]]", local time, or UTC with a trailing Z,
// as OpenSSH does.
func parseExpiry(v string) (time.Time, error) {
	loc := time.Local
	s := v
	if strings.HasSuffix(s, "Z") {
		loc, s = time.UTC, strings.TrimSuffix(s, "Z")
	}
	layouts := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}
	layout, ok := layouts[len(s)]
	if ok {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("expiry-time=%q: want YYYYMMDD[HHMM[SS]][Z]", v)
}

// keyFile is the authorized_keys file, read again at every login so that keys the metadata
// service rotates take effect at once. What is wrong in it is said on the console once per
// content, not at every login.
type keyFile struct {
	path string
	logf func(format string, args ...any)

	mu       sync.Mutex
	reported string // a digest of the state last reported
}

// load reads the keys usable at now. It never fails: a file that is missing, unreadable or
// unsafe gives no keys, and the console says so when that changes.
func (f *keyFile) load(now time.Time) []authKey {
	data, err := f.read()
	var keys []authKey
	var lines []string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		lines = []string{fmt.Sprintf("no SSH keys in %s; nobody can log in", f.path)}
	case err != nil:
		lines = []string{fmt.Sprintf("%v; nobody can log in", err)}
	default:
		keys, lines = parseAuthorizedKeys(f.path, data, now)
		if len(keys) == 0 {
			lines = append(lines, fmt.Sprintf("no SSH keys in %s; nobody can log in", f.path))
		} else {
			lines = append(lines, fmt.Sprintf("%d SSH %s in %s", len(keys), plural(len(keys), "key", "keys"), f.path))
		}
	}
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	f.mu.Lock()
	defer f.mu.Unlock()
	if state := string(sum[:]); state != f.reported {
		f.reported = state
		for _, l := range lines {
			f.logf("%s", l)
		}
	}
	return keys
}

// read returns the file's content after checking, as OpenSSH's StrictModes does, that only its
// owner (root or this server's user) can write it.
func (f *keyFile) read() ([]byte, error) {
	// O_NONBLOCK: a FIFO put at the path must not hang the login; it is refused below.
	file, err := os.OpenFile(f.path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", f.path)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%s is writable by group or others (mode %04o); its keys are not used", f.path, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%s belongs to uid %d, not root; its keys are not used", f.path, st.Uid)
	}
	const limit = 1 << 20
	data, err := io.ReadAll(io.LimitReader(file, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.path, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s is larger than 1 MiB; its keys are not used", f.path)
	}
	return data, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
