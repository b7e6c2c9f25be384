package builder

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGenerateCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	files, err := GenerateCerts(dir, []string{"node-a", "10.0.0.5", "Node-A", "[fd00::1]"})
	if err != nil {
		t.Fatal(err)
	}
	if files.Dir != dir || files.CA != filepath.Join(dir, "ca.pem") || files.ClientKey != filepath.Join(dir, "client-key.pem") {
		t.Errorf("file names: %+v", files)
	}
	modes := map[string]os.FileMode{
		files.CA: 0o644, files.CAKey: 0o600, files.ServerCert: 0o644,
		files.ServerKey: 0o600, files.ClientCert: 0o644, files.ClientKey: 0o600,
	}
	for p, want := range modes {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", p, fi.Mode().Perm(), want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 6 {
		t.Errorf("directory holds %d entries, want the 6 files (no temporary files left)", len(entries))
	}

	ca := readCert(t, files.CA)
	if !ca.IsCA {
		t.Error("ca.pem is not a CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	server := readCert(t, files.ServerCert)
	for _, name := range []string{"node-a", "10.0.0.5", "fd00::1", "localhost", "127.0.0.1", "::1"} {
		if _, err := server.Verify(x509.VerifyOptions{DNSName: name, Roots: roots,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if _, err := server.Verify(x509.VerifyOptions{DNSName: "node-b", Roots: roots}); err == nil {
		t.Error("server certificate is valid for node-b, which was not asked for")
	}
	if len(server.DNSNames) != 2 { // node-a (once, lower case) and localhost
		t.Errorf("DNS names %v, want [node-a localhost]", server.DNSNames)
	}
	if ip := net.ParseIP("10.0.0.5"); !slicesContainsIP(server.IPAddresses, ip) {
		t.Errorf("IP addresses %v lack %v", server.IPAddresses, ip)
	}
	client := readCert(t, files.ClientCert)
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client certificate is accepted as a server certificate")
	}
	if got := client.NotAfter.Sub(client.NotBefore); got < certValidity {
		t.Errorf("validity %v, want %v", got, certValidity)
	}

	// A second run refuses to overwrite and changes nothing.
	before, _ := os.ReadFile(files.CA)
	_, err = GenerateCerts(dir, nil)
	if !errors.Is(err, ErrCertsExist) || !strings.Contains(err.Error(), "ca.pem") {
		t.Fatalf("second GenerateCerts: %v, want ErrCertsExist naming ca.pem", err)
	}
	if after, _ := os.ReadFile(files.CA); !bytes.Equal(before, after) {
		t.Error("refused GenerateCerts changed ca.pem")
	}
	// One file left from an earlier run is enough to refuse.
	partial := t.TempDir()
	if err := os.WriteFile(filepath.Join(partial, "client-key.pem"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateCerts(partial, nil); !errors.Is(err, ErrCertsExist) {
		t.Errorf("GenerateCerts over client-key.pem: %v, want ErrCertsExist", err)
	}
	// ReplaceExisting makes a new CA.
	if _, err := GenerateCerts(dir, nil, ReplaceExisting()); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(files.CA); bytes.Equal(before, after) {
		t.Error("ReplaceExisting kept the old CA")
	}
}

func slicesContainsIP(ips []net.IP, ip net.IP) bool {
	for _, i := range ips {
		if i.Equal(ip) {
			return true
		}
	}
	return false
}

func TestGenerateCertsBadHosts(t *testing.T) {
	for _, h := range []string{"", "node-a:1234", "tcp://node-a", "node a", "a/b"} {
		t.Run(h, func(t *testing.T) {
			dir := t.TempDir()
			_, err := GenerateCerts(dir, []string{h})
			if err == nil || !strings.Contains(err.Error(), "certificate host") {
				t.Fatalf("GenerateCerts(%q): %v, want a certificate host error", h, err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("failed GenerateCerts left %d files", len(entries))
			}
		})
	}
}
