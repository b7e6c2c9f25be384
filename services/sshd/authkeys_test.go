package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// newKey returns a fresh ed25519 key pair as a signer and its authorized_keys text.
func newKey(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, authorizedLine(s.PublicKey())
}

func TestParseAuthorizedKeys(t *testing.T) {
	_, a := newKey(t)
	_, b := newKey(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	type want struct {
		line    int
		comment string
		noPTY   bool
		from    string
	}
	tests := []struct {
		name     string
		file     string
		keys     []want
		problems []string // substrings, one per problem, in order
	}{
		{name: "empty", file: ""},
		{name: "comments and blank lines", file: "# keys\n\n   \n\t# more\n"},
		{name: "plain", file: a + "\n" + b + " me@laptop\n", keys: []want{{line: 1}, {line: 2, comment: "me@laptop"}}},
		{name: "CRLF and no final newline", file: a + " one\r\n" + b, keys: []want{{line: 1, comment: "one"}, {line: 2}}},
		{name: "bad line between good ones", file: a + "\nssh-ed25519 AAAAnotbase64\n\n" + b + "\n",
			keys: []want{{line: 1}, {line: 4}}, problems: []string{"keys:2: not a public key ("}},
		{name: "garbage", file: "hello world\n", problems: []string{"keys:1: not a public key"}},
		{name: "no-pty", file: "no-pty " + a + "\n", keys: []want{{line: 1, noPTY: true}}},
		{name: "restrict then pty", file: "restrict,pty " + a + "\n", keys: []want{{line: 1}}},
		{name: "restrict", file: "restrict " + a + "\n", keys: []want{{line: 1, noPTY: true}}},
		{name: "forwarding options are harmless", file: `no-port-forwarding,no-agent-forwarding,no-X11-forwarding,permitopen="h:1",environment="A=b" ` + a + "\n",
			keys: []want{{line: 1}}},
		{name: "from with addresses and blocks", file: `from="10.0.0.0/8,192.0.2.7,2001:db8::/32" ` + a + "\n",
			keys: []want{{line: 1, from: "10.0.0.0/8,192.0.2.7/32,2001:db8::/32"}}},
		{name: "from with a host name", file: `from="*.example.com" ` + a + "\n",
			problems: []string{`keys:1: from="*.example.com": "*.example.com" is not an IP address or CIDR block`}},
		{name: "two from options", file: `from="10.0.0.1",from="0.0.0.0/0" ` + a + "\n",
			problems: []string{`keys:1: more than one "from=" option`}},
		{name: "from with a negation", file: `from="!10.0.0.1,10.0.0.0/8" ` + a + "\n", problems: []string{"keys:1: from="}},
		{name: "forced command", file: `command="uptime" ` + a + "\n" + b + "\n",
			keys: []want{{line: 2}}, problems: []string{`keys:1: option command="uptime" is not supported`}},
		{name: "cert-authority", file: "cert-authority " + a + "\n", problems: []string{"keys:1: option cert-authority is not supported"}},
		{name: "unknown option", file: "frobnicate " + a + "\n", problems: []string{"keys:1: "}},
		{name: "expired", file: `expiry-time="20261130" ` + a + "\n", problems: []string{"keys:1: expired on 2026-11-30"}},
		{name: "expires later", file: `expiry-time="202612011300Z" ` + a + "\n", keys: []want{{line: 1}}},
		{name: "expired a minute ago", file: `expiry-time="202612011159Z" ` + a + "\n", problems: []string{"expired on 2026-12-01T11:59:00Z"}},
		{name: "bad expiry", file: `expiry-time="tomorrow" ` + a + "\n", problems: []string{`expiry-time="tomorrow": want YYYYMMDD`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, problems := parseAuthorizedKeys("keys", []byte(tt.file), now)
			if len(keys) != len(tt.keys) {
				t.Fatalf("%d keys, want %d (problems %q)", len(keys), len(tt.keys), problems)
			}
			for i, k := range keys {
				w := tt.keys[i]
				if k.Line != w.line || k.Comment != w.comment || k.NoPTY != w.noPTY || prefixes(k.From) != w.from {
					t.Errorf("key %d: line %d comment %q no-pty %v from %q; want %+v", i, k.Line, k.Comment, k.NoPTY, prefixes(k.From), w)
				}
			}
			if len(problems) != len(tt.problems) {
				t.Fatalf("problems %q, want %d", problems, len(tt.problems))
			}
			for i, p := range problems {
				if !strings.Contains(p, tt.problems[i]) {
					t.Errorf("problem %q, want it to contain %q", p, tt.problems[i])
				}
			}
		})
	}
}

func TestFromAllows(t *testing.T) {
	k := authKey{}
	if !k.allows(netip.MustParseAddr("203.0.113.9")) {
		t.Error("a key without from= refused an address")
	}
	from, err := parseFrom("10.0.0.0/8,192.0.2.7,::1")
	if err != nil {
		t.Fatal(err)
	}
	k.From = from
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "192.0.2.7": true, "192.0.2.8": false, "::1": true, "::ffff:10.9.9.9": true, "127.0.0.1": false,
	} {
		if got := k.allows(netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s: allowed %v, want %v", addr, got, want)
		}
	}
	if k.allows(netip.Addr{}) {
		t.Error("a key with from= allowed a connection without an IP address")
	}
}

// TestKeyFile: the console hears about the file once per content; rotated keys take effect at
// the next load; a file others can write is not used.
func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "authorized_keys")
	var lines []string
	f := &keyFile{path: path, logf: func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }}
	// said checks the lines said since the last call; a wanted line ending in "*" is a prefix.
	said := func(want ...string) {
		t.Helper()
		ok := len(lines) == len(want)
		for i := 0; ok && i < len(want); i++ {
			if p, isPrefix := strings.CutSuffix(want[i], "*"); isPrefix {
				ok = strings.HasPrefix(lines[i], p)
			} else {
				ok = lines[i] == want[i]
			}
		}
		if !ok {
			t.Errorf("said %q, want %q", lines, want)
		}
		lines = nil
	}
	now := time.Now()

	if keys := f.load(now); len(keys) != 0 {
		t.Errorf("keys without a file: %v", keys)
	}
	said("no SSH keys in " + path + "; nobody can log in")
	f.load(now)
	said() // nothing new

	_, a := newKey(t)
	_, b := newKey(t)
	write := func(content string, mode os.FileMode) {
		t.Helper()
		if err := writeFileAtomic(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(a+"\nnot a key\n", 0o600)
	if keys := f.load(now); len(keys) != 1 || authorizedLine(keys[0].Key) != a {
		t.Errorf("keys %v", keys)
	}
	said(path+":2: not a public key (ssh: no key found*", "1 SSH key in "+path)
	f.load(now)
	said()

	write(a+"\n"+b+"\n", 0o600) // rotated
	if keys := f.load(now); len(keys) != 2 {
		t.Errorf("%d keys after the rotation, want 2", len(keys))
	}
	said("2 SSH keys in " + path)

	write(b+"\n", 0o666)
	if err := os.Chmod(path, 0o666); err != nil { // past the umask
		t.Fatal(err)
	}
	if keys := f.load(now); len(keys) != 0 {
		t.Errorf("keys from a file anyone can write: %v", keys)
	}
	said(path + " is writable by group or others (mode 0666); its keys are not used; nobody can log in")

	write("# nothing yet\n", 0o600)
	f.load(now)
	said("no SSH keys in " + path + "; nobody can log in")
}

// TestKeyFileFIFO: a FIFO at the keys' path is refused at once; opening it blocking would hang
// the login until something wrote to it.
func TestKeyFileFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authorized_keys")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := (&keyFile{path: path}).read()
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("read of a FIFO = %v, want an error saying it is not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read of a FIFO blocked")
	}
}
