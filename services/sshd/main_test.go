package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// The end-to-end tests run the command itself, as a child process of the test binary (TestMain
// runs runMain when this variable is set), on 127.0.0.1 with a free port and the files in a
// test's folder, and talk to it with OpenSSH's client and with x/crypto/ssh's.
const runMainEnv = "KILN_SSHD_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(runMain(os.Args[1:], os.Stderr))
	}
	os.Exit(m.Run())
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sshd is a running kiln-sshd.
type sshd struct {
	dir, keys, hostKeyPath string
	addr, port             string
	hostKey                string // the public host key as the console printed it: "ssh-ed25519 AAAA..."
	fingerprint            string
	knownHosts             string // a known_hosts file with that key for addr
	cmd                    *exec.Cmd
	out                    *syncBuffer
	done                   chan error
}

// startSSHD runs kiln-sshd with its files in dir (authorized_keys, host/ssh_host_ed25519_key),
// in new namespaces of cloneflags, and waits until it listens.
func startSSHD(t *testing.T, dir string, cloneflags uintptr) *sshd {
	t.Helper()
	d := &sshd{dir: dir, keys: filepath.Join(dir, "authorized_keys"), hostKeyPath: filepath.Join(dir, "host", "ssh_host_ed25519_key"),
		out: &syncBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(os.Args[0], "-addr", "127.0.0.1:0", "-authorized-keys", d.keys, "-host-key", d.hostKeyPath)
	d.cmd.Env = append(os.Environ(), runMainEnv+"=1")
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: cloneflags}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting kiln-sshd: %v", err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		t.Logf("kiln-sshd said:\n%s", d.out)
	})
	listening := regexp.MustCompile(`(?m)^listening on (127\.0\.0\.1:(\d+))$`)
	hostKey := regexp.MustCompile(`(?m)^host key (SHA256:\S+) \((ssh-ed25519 \S+)\)$`)
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out := d.out.String()
		if m := listening.FindStringSubmatch(out); m != nil {
			d.addr, d.port = m[1], m[2]
			break
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("kiln-sshd ended (%v) before listening; it said:\n%s", err, out)
		default:
		}
		if time.Now().After(end) {
			t.Fatalf("kiln-sshd not listening after 20s; it said:\n%s", out)
		}
	}
	m := hostKey.FindStringSubmatch(d.out.String())
	if m == nil {
		t.Fatalf("no host key line; kiln-sshd said:\n%s", d.out)
	}
	d.fingerprint, d.hostKey = m[1], m[2]
	d.knownHosts = filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(d.knownHosts, []byte("[127.0.0.1]:"+d.port+" "+d.hostKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

// stop sends SIGTERM and wants exit status 0.
func (d *sshd) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("kiln-sshd still running 10s after SIGTERM")
	}
}

// waitFor waits until the console has a line matching the regular expression, or fails.
func (d *sshd) waitFor(t *testing.T, pattern string) {
	t.Helper()
	re := regexp.MustCompile("(?m)" + pattern)
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if re.MatchString(d.out.String()) {
			return
		}
	}
	t.Errorf("no console line matching %q within 10s", pattern)
}

// setKeys replaces the authorized_keys file, as the metadata service does: whole, mode 0600.
func (d *sshd) setKeys(t *testing.T, lines ...string) {
	t.Helper()
	if err := writeFileAtomic(d.keys, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// clientKey is a client's key pair: the private key in a file for ssh -i, its signer for Go
// clients, and its authorized_keys line.
type clientKey struct {
	file, line, fingerprint string
	signer                  ssh.Signer
}

func newClientKey(t *testing.T, dir, name string) clientKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, name)
	if err != nil {
		t.Fatal(err)
	}
	k := clientKey{file: filepath.Join(dir, name)}
	if err := os.WriteFile(k.file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if k.signer, err = ssh.NewSignerFromKey(priv); err != nil {
		t.Fatal(err)
	}
	k.line = authorizedLine(k.signer.PublicKey()) + " " + name + "@test"
	k.fingerprint = ssh.FingerprintSHA256(k.signer.PublicKey())
	return k
}

// sshResult is what OpenSSH's client did.
type sshResult struct {
	stdout, stderr string
	code           int
}

// ssh runs OpenSSH's client against d: opts first (for ssh the first value of an option wins),
// then no configuration but ours, the host key from known_hosts only, and the key (none when
// empty); command is the remote command ("" for none).
func (d *sshd) ssh(t *testing.T, key, user string, opts []string, command string) sshResult {
	t.Helper()
	return d.sshStdin(t, key, user, opts, command, "")
}

// sshStdin is ssh with stdin as the client's standard input.
func (d *sshd) sshStdin(t *testing.T, key, user string, opts []string, command, stdin string) sshResult {
	t.Helper()
	args := append([]string{}, opts...)
	args = append(args, "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile="+d.knownHosts, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "-p", d.port, "-l", user)
	if key != "" {
		args = append(args, "-i", key)
	}
	args = append(args, "127.0.0.1")
	if command != "" {
		args = append(args, command)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &stdout, &stderr
	cmd.Env = append(os.Environ(), "TERM=vt220")
	err := cmd.Run()
	r := sshResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("ssh %q: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("ssh %q: no end within 30s", args)
	}
	return r
}

// dial logs in with x/crypto/ssh's client, checking the host key.
func (d *sshd) dial(user string, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	hk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(d.hostKey))
	if err != nil {
		return nil, err
	}
	return ssh.Dial("tcp", d.addr, &ssh.ClientConfig{User: user, Auth: auth, HostKeyCallback: ssh.FixedHostKey(hk), Timeout: 10 * time.Second})
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestUsage: flag mistakes are status 2, an address in use status 1, with the reason.
func TestUsage(t *testing.T) {
	var out bytes.Buffer
	if code := runMain([]string{"-nope"}, &out); code != 2 {
		t.Errorf("an unknown flag: status %d", code)
	}
	out.Reset()
	if code := runMain([]string{"extra"}, &out); code != 2 || !strings.Contains(out.String(), `unexpected arguments ["extra"]`) {
		t.Errorf("an argument: status %d, said %q", code, out.String())
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	out.Reset()
	code := runMain([]string{"-addr", l.Addr().String(), "-authorized-keys", filepath.Join(dir, "keys"), "-host-key", filepath.Join(dir, "key")}, &out)
	if code != 1 || !strings.Contains(out.String(), "address already in use") {
		t.Errorf("an address in use: status %d, said %q", code, out.String())
	}
	out.Reset()
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := runMain([]string{"-addr", freeAddr(t), "-host-key", bad}, &out); code != 1 || !strings.Contains(out.String(), "host key "+bad) {
		t.Errorf("a broken host key: status %d, said %q", code, out.String())
	}
}

// scp copies with OpenSSH's scp (the SFTP protocol since OpenSSH 9.0) through d.
func scp(d *sshd, key, from, to string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "scp", "-q", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile="+d.knownHosts, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none", "-P", d.port, "-i", key, from, to).CombinedOutput()
}
