package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kiln-os/kiln/services/buildkitd/internal/testenv"
)

// client returns a TLS client certificate the CA signed.
func (ca testCA) client(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// health asks the daemon at addr over TLS whether it serves, presenting certs.
func health(ca testCA, addr string, certs ...tls.Certificate) error {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	creds := credentials.NewTLS(&tls.Config{RootCAs: pool, Certificates: certs, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestRunsBuildkitd starts the build machine's real buildkitd ($KILN_BUILDKITD, which the
// Makefile sets) through run: it answers on the unix socket, serves clients with a certificate
// from the node's CA over TCP, and refuses one without a certificate or with one from another CA.
// Without TLS files it serves the unix socket only.
func TestRunsBuildkitd(t *testing.T) {
	testenv.Short(t, "starts buildkitd")
	bk := os.Getenv("KILN_BUILDKITD")
	if bk == "" {
		testenv.SkipOrFail(t, "KILN_BUILDKITD is not set (the Makefile sets it; run through make)")
	}
	if os.Getuid() != 0 {
		testenv.SkipOrFail(t, "buildkitd needs root")
	}
	if runc := os.Getenv("KILN_RUNC"); runc != "" {
		t.Setenv("PATH", filepath.Dir(runc)+":"+os.Getenv("PATH"))
	}
	now := time.Now()
	ca := newCA(t, "kiln CA")
	certs := ca.server(t, now.Add(-time.Hour), now.Add(time.Hour))

	start := func(t *testing.T, certs, tcp string) (lines func() string, stop func() (int, error)) {
		t.Helper()
		// A short root: unix socket paths are limited to 108 bytes.
		root, err := os.MkdirTemp("", "kbk")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(root) })
		o := options{Certs: certs, TCP: tcp, Socket: filepath.Join(root, "run/bk.sock"), Root: filepath.Join(root, "state"),
			Config: filepath.Join(root, "run/buildkitd.toml"), Buildkitd: bk, MaxUsed: 80, MinFree: 10, Reserved: 10,
			ReadyTimeout: 2 * time.Minute}
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		var log strings.Builder
		ready := make(chan struct{})
		var once sync.Once
		logf := func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			line := "buildkitd: " + strings.TrimSpace(sprintf(format, args...))
			log.WriteString(line + "\n")
			t.Log(line)
			if strings.Contains(line, "buildkitd: ready on ") {
				once.Do(func() { close(ready) })
			}
		}
		type result struct {
			code int
			err  error
		}
		done := make(chan result, 1)
		go func() {
			code, err := run(ctx, o, logf)
			done <- result{code, err}
		}()
		select {
		case <-ready:
		case r := <-done:
			t.Fatalf("run ended before buildkitd was ready: %d %v", r.code, r.err)
		case <-time.After(3 * time.Minute):
			cancel()
			t.Fatal("buildkitd not ready in 3 minutes")
		}
		var stopped *result
		stopFn := func() (int, error) {
			if stopped == nil {
				cancel()
				r := <-done
				stopped = &r
			}
			return stopped.code, stopped.err
		}
		t.Cleanup(func() { _, _ = stopFn() })
		return func() string { mu.Lock(); defer mu.Unlock(); return log.String() }, stopFn
	}

	t.Run("mutual TLS", func(t *testing.T) {
		addr := freePort(t)
		lines, stop := start(t, certs, addr)
		if !strings.Contains(lines(), "ready on tcp://"+addr+" (mutual TLS)") {
			t.Errorf("the ready line does not name the TLS address:\n%s", lines())
		}
		if err := health(ca, addr, ca.client(t)); err != nil {
			t.Errorf("a client with a certificate from the node's CA: %v", err)
		}
		if err := health(ca, addr); err == nil {
			t.Error("a client without a certificate was served")
		}
		if err := health(ca, addr, newCA(t, "foreign CA").client(t)); err == nil {
			t.Error("a client with a certificate from another CA was served")
		}
		if code, err := stop(); code != 0 || err != nil {
			t.Errorf("stopping: status %d, %v", code, err)
		}
	})
	t.Run("no certificates", func(t *testing.T) {
		addr := freePort(t)
		lines, _ := start(t, t.TempDir(), addr)
		if !strings.Contains(lines(), "not listening on "+addr+": no TLS files in") {
			t.Errorf("no line about the missing TLS files:\n%s", lines())
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("something listens on %s without TLS files", addr)
		}
	})
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
