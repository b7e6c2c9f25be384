package builder

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeepCA: -reissue's certificates come from the same CA, so nodes and clients holding the
// old CA trust them, and carry the new host names.
func TestKeepCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	files, err := GenerateCerts(dir, []string{"node-a"})
	if err != nil {
		t.Fatal(err)
	}
	caBefore, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	serverBefore, err := os.ReadFile(files.ServerCert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateCerts(dir, []string{"node-a", "node-b"}, KeepCA()); err != nil {
		t.Fatal(err)
	}
	caAfter, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	serverAfter, err := os.ReadFile(files.ServerCert)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(caBefore, caAfter) {
		t.Error("KeepCA replaced the CA")
	}
	if bytes.Equal(serverBefore, serverAfter) {
		t.Error("KeepCA issued no new server certificate")
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, files.CA))
	server := readCert(t, files.ServerCert)
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: "node-b"}); err != nil {
		t.Errorf("reissued server certificate for node-b: %v", err)
	}
	client := readCert(t, files.ClientCert)
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("reissued client certificate: %v", err)
	}

	// Renewing without names keeps the old certificate's.
	if _, err := GenerateCerts(dir, nil, KeepCA()); err != nil {
		t.Fatal(err)
	}
	if _, err := readCert(t, files.ServerCert).Verify(x509.VerifyOptions{Roots: roots, DNSName: "node-b"}); err != nil {
		t.Errorf("renewed without -hosts, the server certificate lost node-b: %v", err)
	}

	empty := filepath.Join(t.TempDir(), "none")
	_, err = GenerateCerts(empty, nil, KeepCA())
	if err == nil || !strings.Contains(err.Error(), "reading the CA to issue certificates from") {
		t.Errorf("KeepCA without a CA: %v", err)
	}
}

// TestNodeUserData: the node configuration is the metadata service's JSON tree with the CA,
// the server's certificate and key (readable by root only) under buildkit/, and nothing of the
// CA's key or the client's files; the same files give the same bytes.
func TestNodeUserData(t *testing.T) {
	files, err := GenerateCerts(filepath.Join(t.TempDir(), "certs"), []string{"node-a"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := NodeUserData(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := NodeUserData(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, again) {
		t.Error("two calls gave different bytes")
	}
	var tree map[string]configEntry
	if err := json.Unmarshal(data, &tree); err != nil {
		t.Fatal(err)
	}
	dir, ok := tree[NodeConfigDir]
	if !ok || dir.Perm != "0700" || dir.Content != nil || len(tree) != 1 {
		t.Fatalf("tree: %s", data)
	}
	want := map[string]struct{ path, perm string }{
		"ca.pem": {files.CA, "0644"}, "server.pem": {files.ServerCert, "0644"}, "server-key.pem": {files.ServerKey, "0600"},
	}
	if len(dir.Entries) != len(want) {
		t.Errorf("entries: %v", dir.Entries)
	}
	for name, w := range want {
		e := dir.Entries[name]
		b, err := os.ReadFile(w.path)
		if err != nil {
			t.Fatal(err)
		}
		if e.Content == nil || *e.Content != string(b) || e.Perm != w.perm {
			t.Errorf("%s: perm %q, content matches %v", name, e.Perm, e.Content != nil && *e.Content == string(b))
		}
	}
	for _, secret := range []string{files.CAKey, files.ClientKey} {
		b, err := os.ReadFile(secret)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, bytes.TrimSpace(b)) {
			t.Errorf("the node configuration holds %s", filepath.Base(secret))
		}
	}
	if _, err := NodeUserData(CertFiles{CA: filepath.Join(t.TempDir(), "missing.pem")}, nil); err == nil {
		t.Error("no error for missing files")
	}

	// Trusted roots: buildkit/trusted-ca.pem, checked.
	ca, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	data, err = NodeUserData(files, ca)
	if err != nil {
		t.Fatal(err)
	}
	tree = nil
	if err := json.Unmarshal(data, &tree); err != nil {
		t.Fatal(err)
	}
	if e := tree[NodeConfigDir].Entries[TrustedCAFile]; e.Content == nil || *e.Content != string(ca) || e.Perm != "0644" {
		t.Errorf("trusted-ca.pem: %+v", e)
	}
	for _, bad := range []string{"not a certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"} {
		if _, err := NodeUserData(files, []byte(bad)); err == nil || !strings.Contains(err.Error(), "trusted certificates") {
			t.Errorf("trust %q: %v", bad, err)
		}
	}
}
