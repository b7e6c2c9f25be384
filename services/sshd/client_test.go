package main

import (
	"bufio"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestGoClient drives what OpenSSH's command line does not show well, with x/crypto/ssh's
// client: window changes, environment requests, signals, the no-pty and from= options, and
// what is refused.
func TestGoClient(t *testing.T) {
	dir := t.TempDir()
	k := newClientKey(t, dir, "go")
	noPTY := newClientKey(t, dir, "nopty")
	elsewhere := newClientKey(t, dir, "elsewhere")
	local := newClientKey(t, dir, "local")
	d := &sshd{keys: dir + "/authorized_keys"}
	d.setKeys(t, k.line, "no-pty "+noPTY.line, `from="192.0.2.0/24" `+elsewhere.line, `from="127.0.0.0/8,::1" `+local.line)
	d = startSSHD(t, dir, 0)
	login := func(t *testing.T, key clientKey) *ssh.Client {
		t.Helper()
		c, err := d.dial("root", ssh.PublicKeys(key.signer))
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("passwords not offered", func(t *testing.T) {
		asked := false
		_, err := d.dial("root", ssh.Password("secret"), ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) {
			asked = true
			return nil, nil
		}))
		if err == nil || !strings.Contains(err.Error(), "attempted methods [none]") || asked {
			t.Errorf("with a password: %v (keyboard-interactive asked: %v)", err, asked)
		}
	})

	t.Run("window change", func(t *testing.T) {
		s, err := login(t, k).NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{ssh.ECHO: 0}); err != nil {
			t.Fatal(err)
		}
		in, err := s.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Shell(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- strings.TrimRight(sc.Text(), "\r")
			}
			close(lines)
		}()
		expect := func(want string) {
			t.Helper()
			timeout := time.After(10 * time.Second)
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("the shell ended before %q", want)
					}
					if strings.Contains(l, want) {
						return
					}
				case <-timeout:
					t.Fatalf("no %q from the shell in 10s", want)
				}
			}
		}
		// stty stands for what full-screen programs do: ask the terminal for its size.
		_, _ = io.WriteString(in, "echo size $(stty size)\n")
		expect("size 24 80")
		if err := s.WindowChange(50, 132); err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(in, "echo size $(stty size)\n")
		expect("size 50 132")
		_, _ = io.WriteString(in, "exit 7\n")
		var exit *ssh.ExitError
		if err := s.Wait(); !errors.As(err, &exit) || exit.ExitStatus() != 7 {
			t.Errorf("the shell's end: %v, want status 7", err)
		}
	})

	t.Run("environment", func(t *testing.T) {
		c := login(t, k)
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Setenv("TERM", "dumb"); err != nil {
			t.Errorf("TERM: %v", err)
		}
		if err := s.Setenv("LC_ALL", "C"); err != nil {
			t.Errorf("LC_ALL: %v", err)
		}
		if err := s.Setenv("LD_PRELOAD", "/tmp/evil.so"); err == nil {
			t.Error("LD_PRELOAD was accepted")
		}
		out, err := s.Output(`echo "$TERM $LC_ALL ${LD_PRELOAD:-unset} $USER $SSH_CONNECTION"`)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^dumb C unset root 127\.0\.0\.1 \d+ 127\.0\.0\.1 ` + d.port + "\n$").Match(out) {
			t.Errorf("environment %q", out)
		}
	})

	t.Run("signal", func(t *testing.T) {
		s, err := login(t, k).NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start("echo started; exec sleep 30"); err != nil {
			t.Fatal(err)
		}
		if l, err := bufio.NewReader(out).ReadString('\n'); err != nil || l != "started\n" {
			t.Fatalf("read %q, %v", l, err)
		}
		if err := s.Signal(ssh.SIGTERM); err != nil {
			t.Fatal(err)
		}
		var exit *ssh.ExitError
		if err := s.Wait(); !errors.As(err, &exit) || exit.Signal() != "TERM" {
			t.Errorf("after SIGTERM: %v, want the exit signal TERM", err)
		}
	})

	t.Run("no-pty", func(t *testing.T) {
		s, err := login(t, noPTY).NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RequestPty("xterm", 24, 80, nil); err == nil {
			t.Error("a key with no-pty got a pty")
		}
		if out, err := s.Output("echo still"); err != nil || string(out) != "still\n" {
			t.Errorf("a command without the pty: %q, %v", out, err)
		}
	})

	t.Run("from", func(t *testing.T) {
		if _, err := d.dial("root", ssh.PublicKeys(elsewhere.signer)); err == nil {
			t.Error("a key for 192.0.2.0/24 logged in from 127.0.0.1")
		}
		d.waitFor(t, `^refused 127\.0\.0\.1:\d+ as root: ssh-ed25519 key `+regexp.QuoteMeta(elsewhere.fingerprint)+
			` \(elsewhere@test, line 3\) is allowed only from 192\.0\.2\.0/24$`)
		s, err := login(t, local).NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if out, err := s.Output("echo local"); err != nil || string(out) != "local\n" {
			t.Errorf("a key for 127.0.0.0/8 from 127.0.0.1: %q, %v", out, err)
		}
	})

	t.Run("no forwarding", func(t *testing.T) {
		c := login(t, k)
		if conn, err := c.Dial("tcp", d.addr); err == nil {
			conn.Close()
			t.Error("a direct-tcpip channel was opened")
		}
		if l, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
			l.Close()
			t.Error("a remote forward was set up")
		}
	})

	t.Run("one command per session", func(t *testing.T) {
		s, err := login(t, k).NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start("sleep 1"); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{"echo second"})); ok || err != nil {
			t.Errorf("a second exec: %v, %v", ok, err)
		}
		if err := s.Wait(); err != nil {
			t.Errorf("the first command: %v", err)
		}
	})
	d.stop(t)
}
