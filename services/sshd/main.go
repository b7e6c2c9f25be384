// Command kiln-sshd gives operators a root shell on a kiln node over SSH, with the keys the
// metadata service wrote, never with passwords. It is the sshd service of images/builder.yml;
// build.yml says what of the node its container sees (all of it that matters: the node's PIDs,
// network, devices, /run, /var/log).
//
//	kiln-sshd [-addr :22] [-authorized-keys /run/config/ssh/authorized_keys]
//	          [-host-key /var/lib/sshd/ssh_host_ed25519_key] [-shell /bin/sh]
//
// Authentication: public keys only; password and keyboard-interactive authentication are never
// offered. The user must be root: the node has no other accounts, and a client that asks for
// another name is told so in a banner. The keys are those of -authorized-keys, in OpenSSH's
// authorized_keys format, read again at every login, so that keys the metadata service rotates
// take effect for the next login (sessions already open stay). A line that is not a key is
// skipped and reported on the console as FILE:LINE; options that restrict a key are enforced
// (from= with addresses and CIDR blocks, no-pty, restrict, expiry-time=) or, when this server
// cannot enforce them (command=, cert-authority, host name patterns in from=, unknown ones),
// the key is skipped and reported, never used without its restriction. The file must be
// writable only by its owner, root (OpenSSH's StrictModes). Without keys nobody can log in,
// and the server keeps running, so that keys can arrive later. A connection has 30 s to log
// in, and at most 10 may be logging in at once (OpenSSH's LoginGraceTime and MaxStartups):
// more are closed at once, so that a flood of them cannot lock the operators out.
//
// The host key is ed25519, kept at -host-key (0600, OpenSSH's private key format) so that it
// survives reboots when /var/lib is the node's state disk. It is made on the first start, at
// once and whole (a temporary file renamed), and its fingerprint is on the console at every
// start, for operators to compare with what their client shows. A host key that exists but
// cannot be read stops the server: it is never replaced behind the operators' backs.
//
// Sessions: a login shell ("-shell -l") with a pty when the client asks for one (window size
// changes followed); a command ("-shell -c COMMAND") with stdout and stderr kept apart and its
// exit status (or the signal that killed it) returned; TERM, LANG and LC_* passed from the
// client, and the service's own KILN_* variables (kiln's cache folder on the node); signals from the client go to the command's process group; the sftp subsystem (so
// scp and sftp work). No forwarding of ports, agents or X11. As the first process of its PID
// namespace it also reaps the orphans that end there.
//
// Console lines, on stderr (kiln-init puts the container's name before each):
//
//	new host key in /var/lib/sshd/ssh_host_ed25519_key
//	host key SHA256:m0Q4... (ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI...)
//	2 SSH keys in /run/config/ssh/authorized_keys
//	no SSH keys in /run/config/ssh/authorized_keys; nobody can log in
//	/run/config/ssh/authorized_keys:3: not a public key (ssh: no key found); line skipped
//	listening on [::]:22
//	login root from 10.0.2.2:50412 with ssh-ed25519 key SHA256:x3c... (me@laptop, line 1)
//	refused 10.0.2.2:50418 as root: ssh-ed25519 key SHA256:9Yq... is not in /run/config/ssh/authorized_keys
//	refused 10.0.2.2:50420: user "admin" (only root may log in)
//	refused 10.0.2.2:50422: 10 connections are logging in already
//
// Exit status: 0 after SIGTERM or SIGINT; 1 when the host key or the address is unusable; 2 for
// a usage mistake.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

func main() {
	os.Exit(runMain(os.Args[1:], os.Stderr))
}

// runMain runs the server with its arguments until SIGTERM or SIGINT and returns its exit
// status.
func runMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("kiln-sshd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":22", "the TCP address to listen on")
	keysPath := fs.String("authorized-keys", "/run/config/ssh/authorized_keys", "the authorized_keys file, read at every login")
	hostKey := fs.String("host-key", "/var/lib/sshd/ssh_host_ed25519_key", "the ed25519 host key, made when missing")
	shell := fs.String("shell", "/bin/sh", "the shell for logins (-l) and commands (-c)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var mu sync.Mutex
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stderr, format+"\n", args...)
	}
	if fs.NArg() > 0 {
		logf("unexpected arguments %q", fs.Args())
		fs.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	kids, stopReaping := newChildren(os.Getpid() == 1)
	defer stopReaping()

	signer, created, err := loadHostKey(*hostKey)
	if err != nil {
		logf("%v", err)
		return 1
	}
	if created {
		logf("new host key in %s", *hostKey)
	}
	logf("host key %s (%s)", ssh.FingerprintSHA256(signer.PublicKey()), authorizedLine(signer.PublicKey()))
	keys := &keyFile{path: *keysPath, logf: logf}
	keys.load(time.Now())

	l, err := net.Listen("tcp", *addr)
	if err != nil {
		logf("%v", err)
		return 1
	}
	logf("listening on %s", l.Addr())
	s := &server{hostKey: signer, keys: keys, shell: *shell, children: kids, logf: logf,
		loginGrace: 30 * time.Second, startups: make(chan struct{}, maxStartups), ptyDrain: 500 * time.Millisecond}
	if err := s.serve(ctx, l); err != nil {
		logf("%v", err)
		return 1
	}
	logf("stopped")
	return 0
}

// authorizedLine is a public key as an authorized_keys or known_hosts line writes it, without
// the newline.
func authorizedLine(k ssh.PublicKey) string {
	b := ssh.MarshalAuthorizedKey(k)
	return string(b[:len(b)-1])
}

// maxStartups is how many connections may be logging in at once; more are closed at once.
const maxStartups = 10
