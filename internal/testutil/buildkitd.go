package testutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/kiln-os/kiln/internal/testenv"
)

// Environment variables that point at the binaries StartBuildkitd runs (the same ones kiln's
// builder package reads).
const (
	BuildkitdBinEnv = "KILN_BUILDKITD"
	RuncBinEnv      = "KILN_RUNC"
)

// BuildkitdOptions configures StartBuildkitd.
type BuildkitdOptions struct {
	// TLSDir holds ca.pem, server.pem and server-key.pem; it is required with TCP. Clients must
	// then present a certificate signed by ca.pem.
	TLSDir string
	// TCP makes the daemon also listen on a free loopback port, with mutual TLS from TLSDir.
	TCP bool
}

// Buildkitd is a running test daemon.
type Buildkitd struct {
	Unix string // "unix:///.../buildkitd.sock"
	TCP  string // "tcp://127.0.0.1:port" when BuildkitdOptions.TCP, else ""
	Root string // its state directory
}

// BuildkitdBinaries returns the buildkitd and runc binaries ($KILN_BUILDKITD and $KILN_RUNC,
// else <module root>/bin). Without them, or without root, the test is skipped, or fails under
// CI (see testenv.SkipOrFail).
func BuildkitdBinaries(t testing.TB) (buildkitd, runc string) {
	t.Helper()
	var err error
	if buildkitd, err = binary("buildkitd", BuildkitdBinEnv); err == nil {
		runc, err = binary("runc", RuncBinEnv)
	}
	if err != nil {
		testenv.SkipOrFail(t, "buildkitd binaries: %v (run make tools, or set %s and %s)", err, BuildkitdBinEnv, RuncBinEnv)
	}
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "buildkitd needs root (run the tests as root)")
	}
	return buildkitd, runc
}

// StartBuildkitd starts a real buildkitd (OCI worker with runc, overlayfs snapshotter, host
// networking) with its state in a temporary directory, listening on a unix socket and, with
// o.TCP, also on a free loopback port with mutual TLS. It returns once the daemon answers. When
// the test ends the daemon gets SIGTERM (SIGKILL if it lingers), and its log is printed if the
// test failed. Missing binaries skip the test as BuildkitdBinaries does.
func StartBuildkitd(t testing.TB, o BuildkitdOptions) Buildkitd {
	t.Helper()
	bkd, runc := BuildkitdBinaries(t)
	if o.TCP && o.TLSDir == "" {
		t.Fatal("StartBuildkitd: TCP needs TLSDir (ca.pem, server.pem, server-key.pem)")
	}
	var lastErr error
	for range 3 { // the free port can be taken between probing and binding
		b, err := startBuildkitd(t, bkd, runc, o)
		if err == nil {
			return b
		}
		lastErr = err
		if !o.TCP {
			break
		}
	}
	t.Fatalf("starting buildkitd: %v", lastErr)
	return Buildkitd{}
}

func startBuildkitd(t testing.TB, bkd, runc string, o BuildkitdOptions) (Buildkitd, error) {
	root := t.TempDir()
	// A unix socket path must stay under 108 bytes; t.TempDir can be longer.
	sockDir, err := os.MkdirTemp("", "bkd")
	if err != nil {
		return Buildkitd{}, err
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	b := Buildkitd{Unix: "unix://" + filepath.Join(sockDir, "buildkitd.sock"), Root: root}
	args := []string{
		"--root", root,
		"--config", filepath.Join(root, "buildkitd.toml"), // absent: ignore any host config
		"--addr", b.Unix,
		"--oci-worker=true",
		"--containerd-worker=false",
		"--oci-worker-snapshotter=overlayfs",
		"--oci-worker-binary", runc,
		"--oci-worker-net=host",
	}
	if o.TCP {
		port, err := freePort()
		if err != nil {
			return Buildkitd{}, err
		}
		b.TCP = "tcp://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args = append(args, "--addr", b.TCP,
			"--tlscacert", filepath.Join(o.TLSDir, "ca.pem"),
			"--tlscert", filepath.Join(o.TLSDir, "server.pem"),
			"--tlskey", filepath.Join(o.TLSDir, "server-key.pem"))
	}
	out := &syncBuffer{}
	cmd := exec.Command(bkd, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return Buildkitd{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		// Exit statuses say only that it was stopped.
		select {
		case werr := <-exited:
			_ = werr
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			werr := <-exited
			_ = werr
		}
	}

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			return Buildkitd{}, fmt.Errorf("buildkitd exited early (%w):\n%s", err, out.String())
		default:
		}
		err := pingBuildkitd(b.Unix)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return Buildkitd{}, fmt.Errorf("buildkitd did not answer on %s: %w:\n%s", b.Unix, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if o.TCP {
		// The TCP listener starts with the unix one; check it is bound before returning.
		var err error
		for range 20 {
			var c net.Conn
			if c, err = net.DialTimeout("tcp", b.TCP[len("tcp://"):], time.Second); err == nil {
				_ = c.Close()
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			stop()
			return Buildkitd{}, fmt.Errorf("buildkitd is not listening on %s: %w:\n%s", b.TCP, err, out.String())
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("buildkitd log:\n%s", out.String())
		}
	})
	return b, nil
}

func pingBuildkitd(address string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := client.New(ctx, address)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	_, err = c.ListWorkers(ctx)
	return err
}

// binary finds name: $env, else <module root>/bin/name.
func binary(name, env string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return filepath.Abs(p)
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", errors.Join(fmt.Errorf("%s not found", name), err)
	}
	return p, nil
}
