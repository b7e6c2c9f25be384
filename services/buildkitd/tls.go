package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names in the certificate folder: those `kiln builder certs` writes.
const (
	caFile   = "ca.pem"
	certFile = "server.pem"
	keyFile  = "server-key.pem"
	// trustFile holds root certificates the node trusts besides the image's (kiln builder
	// certs -trust): for what builds fetch over HTTPS.
	trustFile = "trusted-ca.pem"
)

// writeTrust writes the root certificates buildkitd trusts for its builds' downloads to out:
// the image's bundle (system) and the certificates of dir's trusted-ca.pem. It returns how many
// it added, 0 (and writes nothing) when there is no trusted-ca.pem. A file that holds no
// certificate, or one that does not parse, is an error that names it.
func writeTrust(dir, system, out string) (int, error) {
	p := filepath.Join(dir, trustFile)
	extra, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for rest := extra; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return 0, fmt.Errorf("%s: certificate %d: %w", p, n+1, err)
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("%s holds no PEM certificate", p)
	}
	bundle, err := os.ReadFile(system)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	if len(bundle) > 0 && bundle[len(bundle)-1] != '\n' {
		bundle = append(bundle, '\n')
	}
	return n, writeFileAtomic(out, append(bundle, extra...), 0o644)
}

// tlsFiles are the checked paths of a node's TLS files.
type tlsFiles struct {
	CA, Cert, Key string
	// NotAfter is when the server certificate expires; Names are the names and addresses it
	// is valid for.
	NotAfter time.Time
	Names    []string
}

// checkTLS checks that dir holds a CA, a server certificate the CA signed and its key, and
// that the certificate is valid at now. The error says what is wrong and how to fix it.
func checkTLS(dir string, now time.Time) (tlsFiles, error) {
	f := tlsFiles{CA: filepath.Join(dir, caFile), Cert: filepath.Join(dir, certFile), Key: filepath.Join(dir, keyFile)}
	var missing []string
	for _, p := range []string{f.CA, f.Cert, f.Key} {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, filepath.Base(p))
		} else if err != nil {
			return f, fmt.Errorf("TLS file %s: %w", p, err)
		}
	}
	if len(missing) == 3 {
		return f, fmt.Errorf("no TLS files in %s (want %s, %s and %s in the node's configuration; "+
			"kiln builder certs -node-config DIR writes them)", dir, caFile, certFile, keyFile)
	}
	if len(missing) > 0 {
		return f, fmt.Errorf("%s lacks %s (want %s, %s and %s)", dir, strings.Join(missing, " and "), caFile, certFile, keyFile)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return f, fmt.Errorf("server certificate %s with key %s: %w", f.Cert, f.Key, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return f, fmt.Errorf("server certificate %s: %w", f.Cert, err)
	}
	f.NotAfter = leaf.NotAfter
	f.Names = append(f.Names, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		f.Names = append(f.Names, ip.String())
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return f, fmt.Errorf("CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !appendPEM(pool, caPEM) {
		return f, fmt.Errorf("CA certificate %s: no PEM certificate in it", f.CA)
	}
	switch {
	case now.After(leaf.NotAfter):
		return f, fmt.Errorf("server certificate %s expired on %s (the clock says %s); renew it with "+
			"kiln builder certs -reissue -node-config DIR and give the node the new configuration", f.Cert, leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return f, fmt.Errorf("server certificate %s is valid only from %s and the clock says %s; "+
			"is the node's time right?", f.Cert, leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return f, fmt.Errorf("server certificate %s does not chain to the CA in %s: %w", f.Cert, f.CA, err)
	}
	return f, nil
}

// appendPEM adds every certificate in data to pool and reports whether there was one.
func appendPEM(pool *x509.CertPool, data []byte) bool {
	found := false
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return found
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			continue
		}
		pool.AddCert(c)
		found = true
	}
}
