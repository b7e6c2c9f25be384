package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// testCA signs certificates for the tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{c, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// server writes a CA, a server certificate it signed (valid from notBefore to notAfter) and
// the key into a new folder.
func (ca testCA) server(t *testing.T, notBefore, notAfter time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node"},
		NotBefore: notBefore, NotAfter: notAfter,
		DNSNames: []string{"node1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, caFile), ca.pem)
	write(t, filepath.Join(dir, certFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write(t, filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	return dir
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCheckTLS(t *testing.T) {
	now := time.Now()
	ca := newCA(t, "kiln CA")
	good := ca.server(t, now.Add(-time.Hour), now.Add(time.Hour))
	f, err := checkTLS(good, now)
	if err != nil {
		t.Fatalf("good files: %v", err)
	}
	if got := strings.Join(f.Names, ","); got != "node1,127.0.0.1" {
		t.Errorf("names %q", got)
	}

	expired := ca.server(t, now.Add(-2*time.Hour), now.Add(-time.Hour))
	foreign := ca.server(t, now.Add(-time.Hour), now.Add(time.Hour))
	write(t, filepath.Join(foreign, caFile), newCA(t, "other CA").pem)
	future := ca.server(t, now.Add(time.Hour), now.Add(2*time.Hour))
	partial := ca.server(t, now.Add(-time.Hour), now.Add(time.Hour))
	if err := os.Remove(filepath.Join(partial, keyFile)); err != nil {
		t.Fatal(err)
	}
	mismatched := ca.server(t, now.Add(-time.Hour), now.Add(time.Hour))
	other, err := os.ReadFile(filepath.Join(good, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(mismatched, keyFile), other)
	notPEM := ca.server(t, now.Add(-time.Hour), now.Add(time.Hour))
	write(t, filepath.Join(notPEM, caFile), []byte("not a certificate\n"))

	for _, c := range []struct{ name, dir, want string }{
		{"empty", t.TempDir(), `no TLS files in .*kiln builder certs -node-config`},
		{"no key", partial, `lacks server-key.pem`},
		{"expired", expired, `server certificate .*server.pem expired on .*; renew it with kiln builder certs -reissue -node-config DIR`},
		{"not yet valid", future, `is valid only from .* is the node's time right\?`},
		{"foreign CA", foreign, `does not chain to the CA in .*ca.pem`},
		{"key of another certificate", mismatched, `server certificate .* with key .*: tls: private key does not match public key`},
		{"CA not PEM", notPEM, `CA certificate .*ca.pem: no PEM certificate in it`},
	} {
		_, err := checkTLS(c.dir, now)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !regexp.MustCompile(c.want).MatchString(err.Error()) {
			t.Errorf("%s: error %q does not match %q", c.name, err, c.want)
		}
	}
}

// TestWriteTrust: trusted-ca.pem is added to the image's bundle; without it nothing is
// written; a file without a certificate, or with a broken one, is an error naming it.
func TestWriteTrust(t *testing.T) {
	dir := t.TempDir()
	system := filepath.Join(dir, "system.crt")
	write(t, system, []byte("SYSTEM ROOTS"))
	out := filepath.Join(dir, "out", "bundle.pem")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if n, err := writeTrust(dir, system, out); n != 0 || err != nil {
		t.Fatalf("no trusted-ca.pem: %d, %v", n, err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("no trusted-ca.pem, but %s was written: %v", out, err)
	}
	a, b := newCA(t, "proxy CA"), newCA(t, "other CA")
	write(t, filepath.Join(dir, trustFile), append(append([]byte("# a comment\n"), a.pem...), b.pem...))
	n, err := writeTrust(dir, system, out)
	if err != nil || n != 2 {
		t.Fatalf("two certificates: %d, %v", n, err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "SYSTEM ROOTS\n") || !strings.Contains(string(got), string(a.pem)) || !strings.HasSuffix(string(got), string(b.pem)) {
		t.Errorf("the bundle:\n%s", got)
	}
	write(t, filepath.Join(dir, trustFile), []byte("not PEM"))
	if _, err := writeTrust(dir, system, out); err == nil || !strings.Contains(err.Error(), "trusted-ca.pem holds no PEM certificate") {
		t.Errorf("not PEM: %v", err)
	}
	write(t, filepath.Join(dir, trustFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}))
	if _, err := writeTrust(dir, system, out); err == nil || !strings.Contains(err.Error(), "certificate 1") {
		t.Errorf("a broken certificate: %v", err)
	}
}

func TestConfigTOML(t *testing.T) {
	c := config{Root: "/var/lib/buildkit", Socket: "/run/buildkit/buildkitd.sock", TCP: "0.0.0.0:1234",
		MaxUsed: 80, MinFree: 10, Res: 10,
		TLS: &tlsFiles{CA: "/c/ca.pem", Cert: "/c/server.pem", Key: "/c/server-key.pem"}}
	want := `root = "/var/lib/buildkit"
debug = false

[grpc]
  address = ["unix:///run/buildkit/buildkitd.sock", "tcp://0.0.0.0:1234"]

[grpc.tls]
  cert = "/c/server.pem"
  key = "/c/server-key.pem"
  ca = "/c/ca.pem"

[worker.oci]
  enabled = true
  gc = true
  reservedSpace = "10%"
  maxUsedSpace = "80%"
  minFreeSpace = "10%"

[worker.containerd]
  enabled = false
`
	if got := c.toml(); got != want {
		t.Errorf("with TLS:\n%s\nwant:\n%s", got, want)
	}
	c.TLS = nil
	got := c.toml()
	if strings.Contains(got, "tcp://") || strings.Contains(got, "[grpc.tls]") {
		t.Errorf("without TLS the node must not listen on TCP:\n%s", got)
	}
}

func TestOptionsCheck(t *testing.T) {
	ok := options{TCP: "0.0.0.0:1234", Socket: "/run/b.sock", Root: "/var/lib/buildkit", Config: "/run/b.toml", MaxUsed: 80, MinFree: 10, Reserved: 10}
	if err := ok.check(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		change func(*options)
		want   string
	}{
		{func(o *options) { o.MaxUsed = 101 }, "-max-used 101: want a percentage"},
		{func(o *options) { o.Reserved = 90 }, "-reserved 90% is more than -max-used 80%"},
		{func(o *options) { o.TCP = "1234" }, `-tcp "1234": want HOST:PORT`},
		{func(o *options) { o.Root = "var/lib" }, `-root "var/lib": want an absolute path`},
	} {
		o := ok
		c.change(&o)
		err := o.check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

// TestPinsAgree: the Dockerfile stamps the BuildKit version go.mod pins, and go.mod pins the
// build machine's (kiln's own go.mod): the node runs the BuildKit the host runs.
func TestPinsAgree(t *testing.T) {
	pin := func(file string) string {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?github\.com/moby/buildkit (v\S+)`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s pins no github.com/moby/buildkit", file)
		}
		return string(m[1])
	}
	ours, host := pin("go.mod"), pin("../../go.mod")
	if ours != host {
		t.Errorf("go.mod pins buildkit %s, the build machine's go.mod %s", ours, host)
	}
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), "version.Version="+ours) {
		t.Errorf("Dockerfile does not stamp version.Version=%s", ours)
	}
}

func TestBytesText(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 512 << 20: "512.0 MiB", 20 << 30: "20.0 GiB"} {
		if got := bytesText(n); got != want {
			t.Errorf("bytesText(%d) = %q, want %q", n, got, want)
		}
	}
}
