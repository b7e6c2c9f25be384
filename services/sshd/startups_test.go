package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestMaxStartups: while cap(startups) connections are logging in (here one, which never
// starts its handshake), another is closed at once with a console line; once the first has
// gone, a new one is served again.
func TestMaxStartups(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	}
	said := func(s string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range lines {
			if strings.Contains(l, s) {
				return true
			}
		}
		return false
	}
	s := &server{hostKey: signer, keys: &keyFile{path: filepath.Join(t.TempDir(), "none"), logf: logf}, shell: "/bin/sh",
		logf: logf, loginGrace: time.Minute, startups: make(chan struct{}, 1), ptyDrain: time.Millisecond}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })

	first, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// The server speaks first: its version line means the first connection holds the token.
	if _, err := first.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	second, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = second.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := second.Read(make([]byte, 64)); err == nil {
		t.Errorf("the second connection got %d bytes while the first was logging in; want it closed", n)
	}
	second.Close()
	if !said("connections are logging in already") {
		t.Errorf("no console line for the refused connection: %q", lines)
	}
	first.Close()
	for i := 0; ; i++ {
		third, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = third.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := third.Read(make([]byte, 64))
		third.Close()
		if err == nil && n > 0 {
			break
		}
		if i == 50 {
			t.Fatal("no connection served after the first one went away")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
