package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/kiln-os/kiln/services/sshd/internal/testenv"
)

func TestHostKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lib", "sshd", "ssh_host_ed25519_key")
	first, created, err := loadHostKey(path)
	if err != nil || !created {
		t.Fatalf("first start: created %v, %v", created, err)
	}
	if first.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("host key type %s", first.PublicKey().Type())
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", p, fi.Mode(), err, want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	again, created, err := loadHostKey(path)
	if err != nil || created {
		t.Fatalf("second start: created %v, %v", created, err)
	}
	if ssh.FingerprintSHA256(again.PublicKey()) != ssh.FingerprintSHA256(first.PublicKey()) {
		t.Error("the host key changed between two starts")
	}

	t.Run("OpenSSH reads it", func(t *testing.T) {
		testenv.NeedTool(t, "ssh-keygen", "openssh-client")
		out, err := exec.Command("ssh-keygen", "-y", "-f", path).Output()
		if err != nil {
			t.Fatalf("ssh-keygen -y: %v", err)
		}
		if got := strings.Fields(string(out)); len(got) < 2 || got[0]+" "+got[1] != authorizedLine(first.PublicKey()) {
			t.Errorf("ssh-keygen -y says %q, want %q", out, authorizedLine(first.PublicKey()))
		}
	})

	t.Run("unreadable key is kept", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(bad, []byte("not a key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := loadHostKey(bad); err == nil || !strings.Contains(err.Error(), "move it away") {
			t.Errorf("a broken host key: %v", err)
		}
		if b, _ := os.ReadFile(bad); string(b) != "not a key\n" {
			t.Errorf("the broken host key was replaced: %q", b)
		}
	})

	t.Run("not ed25519", func(t *testing.T) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		block, err := ssh.MarshalPrivateKey(k, "")
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := loadHostKey(p); err == nil || !strings.Contains(err.Error(), "want ssh-ed25519") {
			t.Errorf("an ECDSA host key: %v", err)
		}
	})
}
