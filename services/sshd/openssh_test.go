package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/services/sshd/internal/testenv"
)

// TestOpenSSH logs in with OpenSSH's own client, as an operator would, checking the host key
// against the one the console printed (StrictHostKeyChecking=yes).
func TestOpenSSH(t *testing.T) {
	testenv.NeedTool(t, "ssh", "openssh-client")
	dir := t.TempDir()
	k1 := newClientKey(t, dir, "first")
	k2 := newClientKey(t, dir, "second")
	d := &sshd{keys: filepath.Join(dir, "authorized_keys")}
	d.setKeys(t, "# the operators", k1.line)
	d = startSSHD(t, dir, 0)
	d.waitFor(t, `^new host key in `+regexp.QuoteMeta(d.hostKeyPath)+`$`)
	d.waitFor(t, `^1 SSH key in `+regexp.QuoteMeta(d.keys)+`$`)
	loginLine := func(k clientKey) string {
		return `^login root from 127\.0\.0\.1:\d+ with ssh-ed25519 key ` + regexp.QuoteMeta(k.fingerprint) + ` \(` +
			regexp.QuoteMeta(filepath.Base(k.file)) + `@test, line \d+\)$`
	}

	t.Run("exec", func(t *testing.T) {
		r := d.ssh(t, k1.file, "root", nil, "echo hi")
		if r.code != 0 || r.stdout != "hi\n" || r.stderr != "" {
			t.Errorf("echo hi: status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		d.waitFor(t, loginLine(k1))
	})
	t.Run("exit status", func(t *testing.T) {
		if r := d.ssh(t, k1.file, "root", nil, "exit 3"); r.code != 3 {
			t.Errorf("exit 3: status %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("stdout and stderr apart", func(t *testing.T) {
		r := d.ssh(t, k1.file, "root", nil, "echo out; echo err >&2; echo $HOME $USER")
		if r.code != 0 || r.stdout != "out\n"+homeDir()+" root\n" || r.stderr != "err\n" {
			t.Errorf("status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		r := d.sshStdin(t, k1.file, "root", nil, "cat; echo end", "one\ntwo\n")
		if r.code != 0 || r.stdout != "one\ntwo\nend\n" {
			t.Errorf("status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("pty", func(t *testing.T) {
		r := d.ssh(t, k1.file, "root", []string{"-tt"}, `tty; echo "TERM=$TERM"`)
		if r.code != 0 || !regexp.MustCompile(`^/dev/pts/\d+\r\nTERM=vt220\r\n$`).MatchString(r.stdout) {
			t.Errorf("ssh -tt: status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		if r := d.ssh(t, k1.file, "root", []string{"-T"}, "tty"); r.code == 0 || !strings.Contains(r.stdout, "not a tty") {
			t.Errorf("ssh -T: status %d, stdout %q", r.code, r.stdout)
		}
		if r := d.ssh(t, k1.file, "root", []string{"-tt"}, "exit 4"); r.code != 4 {
			t.Errorf("ssh -tt exit 4: status %d", r.code)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		r := d.ssh(t, k2.file, "root", nil, "echo hi")
		if r.code != 255 || r.stdout != "" || !strings.Contains(r.stderr, "Permission denied (publickey)") {
			t.Errorf("status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		d.waitFor(t, `^refused 127\.0\.0\.1:\d+ as root: ssh-ed25519 key `+regexp.QuoteMeta(k2.fingerprint)+
			` is not in `+regexp.QuoteMeta(d.keys)+`$`)
	})
	t.Run("no key", func(t *testing.T) {
		r := d.ssh(t, "", "root", []string{"-o", "PubkeyAuthentication=no"}, "echo hi")
		if r.code != 255 || !strings.Contains(r.stderr, "Permission denied (publickey)") {
			t.Errorf("status %d, stderr %q", r.code, r.stderr)
		}
		d.waitFor(t, `^refused 127\.0\.0\.1:\d+ as root: no key offered \(tried none; only public keys are accepted\)$`)
	})
	t.Run("passwords not offered", func(t *testing.T) {
		// The methods the server offers are in the client's debug output and in its final
		// "Permission denied (...)".
		r := d.ssh(t, k1.file, "root", []string{"-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "LogLevel=DEBUG1"}, "echo hi")
		if r.code != 255 || r.stdout != "" || !strings.Contains(r.stderr, "Authentications that can continue: publickey\r\n") ||
			!strings.Contains(r.stderr, "Permission denied (publickey).") {
			t.Errorf("status %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("not root", func(t *testing.T) {
		r := d.ssh(t, k1.file, "admin", []string{"-o", "LogLevel=INFO"}, "echo hi")
		if r.code != 255 || r.stdout != "" || !strings.Contains(r.stderr, `kiln: only root may log in to this node, not "admin".`) {
			t.Errorf("status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		d.waitFor(t, `^refused 127\.0\.0\.1:\d+: user "admin" \(only root may log in\)$`)
	})
	t.Run("scp", func(t *testing.T) {
		testenv.NeedTool(t, "scp", "openssh-client")
		src := filepath.Join(dir, "payload")
		if err := os.WriteFile(src, []byte("to the node\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(t.TempDir(), "copied")
		if out, err := scp(d, k1.file, src, "root@127.0.0.1:"+dst); err != nil {
			t.Fatalf("scp to the node: %v\n%s", err, out)
		}
		back := filepath.Join(t.TempDir(), "back")
		if out, err := scp(d, k1.file, "root@127.0.0.1:"+dst, back); err != nil {
			t.Fatalf("scp from the node: %v\n%s", err, out)
		}
		if b, err := os.ReadFile(back); err != nil || string(b) != "to the node\n" {
			t.Errorf("copied back %q, %v", b, err)
		}
	})
	t.Run("key rotation", func(t *testing.T) {
		d.setKeys(t, k2.line)
		if r := d.ssh(t, k2.file, "root", nil, "echo new"); r.code != 0 || r.stdout != "new\n" {
			t.Errorf("the new key: status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		d.waitFor(t, loginLine(k2))
		if r := d.ssh(t, k1.file, "root", nil, "echo old"); r.code != 255 {
			t.Errorf("the old key after the rotation: status %d, stdout %q", r.code, r.stdout)
		}
		d.setKeys(t, "garbage line", k1.line)
		if r := d.ssh(t, k1.file, "root", nil, "true"); r.code != 0 {
			t.Errorf("the first key again: status %d, stderr %q", r.code, r.stderr)
		}
		d.waitFor(t, `^`+regexp.QuoteMeta(d.keys)+`:1: not a public key \(.*\); line skipped$`)
	})
	t.Run("host key persists", func(t *testing.T) {
		fingerprint, hostKey := d.fingerprint, d.hostKey
		d.stop(t)
		d.waitFor(t, `^stopped$`)
		d = startSSHD(t, dir, 0)
		if d.fingerprint != fingerprint {
			t.Errorf("host key %s after a restart, was %s", d.fingerprint, fingerprint)
		}
		if strings.Contains(d.out.String(), "new host key") {
			t.Error("a new host key was made at the restart")
		}
		// The key printed before the restart, for the new port.
		old := writeKnownHosts(t, dir, d.port, hostKey)
		if r := d.ssh(t, k1.file, "root", []string{"-o", "UserKnownHostsFile=" + old}, "echo again"); r.code != 0 || r.stdout != "again\n" {
			t.Errorf("after the restart: status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		d.stop(t)
	})
}

func writeKnownHosts(t *testing.T, dir, port, hostKey string) string {
	t.Helper()
	p := filepath.Join(dir, "known_hosts_"+port)
	if err := os.WriteFile(p, []byte("[127.0.0.1]:"+port+" "+hostKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNoKeys: without keys the server says so, refuses everyone and keeps running; keys that
// arrive later work at once.
func TestNoKeys(t *testing.T) {
	testenv.NeedTool(t, "ssh", "openssh-client")
	dir := t.TempDir()
	k := newClientKey(t, dir, "late")
	d := startSSHD(t, dir, 0)
	d.waitFor(t, `^no SSH keys in `+regexp.QuoteMeta(d.keys)+`; nobody can log in$`)
	if r := d.ssh(t, k.file, "root", nil, "true"); r.code != 255 {
		t.Errorf("without keys: status %d", r.code)
	}
	d.waitFor(t, `^refused 127\.0\.0\.1:\d+ as root: no SSH keys in `+regexp.QuoteMeta(d.keys)+`; nobody can log in$`)
	if err := os.MkdirAll(filepath.Dir(d.keys), 0o700); err != nil {
		t.Fatal(err)
	}
	d.setKeys(t, k.line)
	if r := d.ssh(t, k.file, "root", nil, "echo late"); r.code != 0 || r.stdout != "late\n" {
		t.Errorf("with the key: status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	d.waitFor(t, `^1 SSH key in `+regexp.QuoteMeta(d.keys)+`$`)
	d.stop(t)
}
