package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// rootUser is the only user name that may log in: the node has no other accounts.
const rootUser = "root"

// server accepts SSH connections and authenticates them with public keys only.
type server struct {
	hostKey  ssh.Signer
	keys     *keyFile
	shell    string // the login shell: "-l" for a shell, "-c CMD" for a command
	children *children
	logf     func(format string, args ...any)
	// loginGrace is how long a connection may take to authenticate (OpenSSH's LoginGraceTime).
	loginGrace time.Duration
	// startups holds a token for each connection that is logging in; nil for no limit.
	startups chan struct{}
	// ptyDrain is how long a pty session waits for more output after its shell ended, when a
	// process left in the background still holds the terminal.
	ptyDrain time.Duration
}

// serve accepts connections on l until ctx ends, then closes the listener and every
// connection (a pty session's shell gets SIGHUP) and returns once the connections' handlers
// have returned.
func (s *server) serve(ctx context.Context, l net.Listener) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	closing := false
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-stopped:
		}
		l.Close()
		mu.Lock()
		closing = true
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	}()
	defer func() { close(stopped); wg.Wait() }()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				// Out of file descriptors, say: wait a little, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logf("accepting connections: %v; trying again in %s", err, delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("accepting connections: %w", err)
		}
		delay = 0
		mu.Lock()
		if closing { // accepted as the listener was closed
			mu.Unlock()
			_ = c.Close()
			return nil
		}
		conns[c] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handle(c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			_ = c.Close()
		}()
	}
}

// attempt is what one connection tried before it was let in or turned away, for its console
// line.
type attempt struct {
	mu       sync.Mutex
	user     string
	methods  []string // authentication methods tried, in order, once each
	refused  []string // why each offered key was refused
	noKeys   bool     // the file had no keys when a key was offered
	verified *authKey // the key that logged in
}

func (a *attempt) tried(method string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range a.methods {
		if m == method {
			return
		}
	}
	a.methods = append(a.methods, method)
}

// handle runs one connection: the handshake, public key authentication for root, then the
// sessions it opens.
func (s *server) handle(c net.Conn) {
	addr := c.RemoteAddr().String()
	// At most cap(s.startups) connections log in at once (OpenSSH's MaxStartups): each holds a
	// descriptor and a goroutine for up to loginGrace, and a flood of them must not lock the
	// operators out. Connections that are logged in do not count.
	if s.startups != nil {
		select {
		case s.startups <- struct{}{}:
		default:
			s.logf("refused %s: %d connections are logging in already", addr, cap(s.startups))
			return
		}
	}
	released := false
	release := func() {
		if s.startups != nil && !released {
			released = true
			<-s.startups
		}
	}
	defer release()
	a := &attempt{}
	cfg := &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-kiln",
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			return s.checkKey(meta, key, a)
		},
		VerifiedPublicKeyCallback: func(_ ssh.ConnMetadata, _ ssh.PublicKey, p *ssh.Permissions, _ string) (*ssh.Permissions, error) {
			k, _ := p.ExtraData[keyData{}].(*authKey)
			a.mu.Lock()
			a.verified = k
			a.mu.Unlock()
			return p, nil
		},
		AuthLogCallback: func(meta ssh.ConnMetadata, method string, _ error) {
			a.mu.Lock()
			a.user = meta.User()
			a.mu.Unlock()
			a.tried(method)
		},
		// Said to a client that asks for another user, before it tries its keys (OpenSSH's
		// client prints banners unless run with -q).
		BannerCallback: func(meta ssh.ConnMetadata) string {
			if meta.User() != rootUser {
				return fmt.Sprintf("kiln: only %s may log in to this node, not %q.\n", rootUser, meta.User())
			}
			return ""
		},
	}
	cfg.AddHostKey(s.hostKey)
	_ = c.SetDeadline(time.Now().Add(s.loginGrace))
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	release()
	if err != nil {
		s.logf("%s", a.failure(addr, err, s.keys.path))
		return
	}
	_ = c.SetDeadline(time.Time{})
	defer func() { _ = conn.Close() }()
	key := a.verified
	if key == nil { // cannot happen: public keys are the only method
		s.logf("refused %s: logged in without a key", addr)
		return
	}
	s.logf("login %s from %s with %s", conn.User(), addr, key.describe())
	go ssh.DiscardRequests(reqs) // no forwarding: every global request is refused
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.Prohibited, "kiln's sshd opens sessions only (no forwarding)")
			continue
		}
		go s.session(conn, nc, *key)
	}
}

// keyData is the key of the login's authKey in ssh.Permissions.ExtraData.
type keyData struct{}

// checkKey lets in root with a key from the authorized_keys file as it is now, from an address
// its from= option allows.
func (s *server) checkKey(meta ssh.ConnMetadata, key ssh.PublicKey, a *attempt) (*ssh.Permissions, error) {
	if meta.User() != rootUser {
		return nil, fmt.Errorf("user %q: only %s may log in", meta.User(), rootUser)
	}
	keys := s.keys.load(time.Now())
	fp := key.Type() + " key " + ssh.FingerprintSHA256(key)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(keys) == 0 {
		a.noKeys = true
	}
	remote := remoteAddr(meta.RemoteAddr())
	var why string
	for i := range keys {
		k := keys[i]
		if !keyEqual(k.Key, key) {
			continue
		}
		if !k.allows(remote) {
			why = fmt.Sprintf("%s is allowed only from %s", k.describe(), prefixes(k.From))
			continue
		}
		p := &ssh.Permissions{ExtraData: map[any]any{keyData{}: &k}}
		if k.From != nil {
			// x/crypto/ssh checks it again after the signature.
			p.CriticalOptions = map[string]string{"source-address": prefixes(k.From)}
		}
		return p, nil
	}
	if why == "" {
		why = fp + " is not in " + s.keys.path
	}
	for _, r := range a.refused {
		if r == why {
			return nil, errors.New(why)
		}
	}
	a.refused = append(a.refused, why)
	return nil, errors.New(why)
}

// failure is the console line of a connection that did not log in.
func (a *attempt) failure(addr string, err error, keysPath string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.user == "":
		return fmt.Sprintf("connection from %s closed before authentication: %v", addr, err)
	case a.user != rootUser:
		return fmt.Sprintf("refused %s: user %q (only %s may log in)", addr, a.user, rootUser)
	case a.noKeys:
		return fmt.Sprintf("refused %s as %s: no SSH keys in %s; nobody can log in", addr, a.user, keysPath)
	case len(a.refused) > 0:
		return fmt.Sprintf("refused %s as %s: %s", addr, a.user, strings.Join(a.refused, "; "))
	default:
		return fmt.Sprintf("refused %s as %s: no key offered (tried %s; only public keys are accepted)",
			addr, a.user, strings.Join(a.methods, ", "))
	}
}

func keyEqual(a, b ssh.PublicKey) bool {
	return a.Type() == b.Type() && string(a.Marshal()) == string(b.Marshal())
}

// remoteAddr is the client's IP address (invalid when it is not a TCP connection, which no
// from= list contains).
func remoteAddr(a net.Addr) netip.Addr {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(t.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

func prefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
