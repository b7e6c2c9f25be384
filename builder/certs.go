package builder

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-os/kiln/internal/atomicfile"
)

// File names inside a certificate directory, as written by GenerateCerts and read by ParseNodes
// and Daemon.Start.
const (
	CAFile         = "ca.pem"
	CAKeyFile      = "ca-key.pem"
	ServerCertFile = "server.pem"
	ServerKeyFile  = "server-key.pem"
	ClientCertFile = "client.pem"
	ClientKeyFile  = "client-key.pem"
)

// certValidity is how long generated certificates stay valid.
const certValidity = 10 * 365 * 24 * time.Hour

// ErrCertsExist is returned (wrapped) by GenerateCerts when a certificate directory already
// holds files it would replace and ReplaceExisting was not given.
var ErrCertsExist = errors.New("certificate files already exist")

// CertFiles names the files of a certificate directory: one CA, a server certificate for the
// BuildKit daemons and a client certificate for kiln. All paths are absolute.
type CertFiles struct {
	Dir        string // the directory holding the files below
	CA         string // CA certificate: daemons and clients trust only what it signed
	CAKey      string // CA private key (mode 0600); needed only to issue new certificates
	ServerCert string // server certificate, valid for the host names given to GenerateCerts
	ServerKey  string // server private key (mode 0600)
	ClientCert string // client certificate kiln presents to remote daemons
	ClientKey  string // client private key (mode 0600)
}

// CertFilesIn returns the file names GenerateCerts writes in dir, without touching the disk.
func CertFilesIn(dir string) (CertFiles, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return CertFiles{}, fmt.Errorf("certificate directory %q: %w", dir, err)
	}
	return CertFiles{
		Dir:        abs,
		CA:         filepath.Join(abs, CAFile),
		CAKey:      filepath.Join(abs, CAKeyFile),
		ServerCert: filepath.Join(abs, ServerCertFile),
		ServerKey:  filepath.Join(abs, ServerKeyFile),
		ClientCert: filepath.Join(abs, ClientCertFile),
		ClientKey:  filepath.Join(abs, ClientKeyFile),
	}, nil
}

// CertOption changes how GenerateCerts works.
type CertOption func(*certOptions)

type certOptions struct {
	replace bool
	keepCA  bool
}

// KeepCA makes GenerateCerts issue new server and client certificates from the CA already in
// the directory (ca.pem and ca-key.pem) instead of making a new CA: nodes and clients keep
// trusting each other while the new files reach them one by one. Use it to add a node's name
// or to replace certificates before they expire; with no hosts, the new server certificate
// names what the old one named. It implies ReplaceExisting for the server's and client's
// files. The new certificates expire with the CA at the latest.
func KeepCA() CertOption {
	return func(o *certOptions) { o.keepCA = true }
}

// ReplaceExisting lets GenerateCerts overwrite certificate files already in the directory.
// Every client and daemon holding the old files stops trusting the new ones.
func ReplaceExisting() CertOption {
	return func(o *certOptions) { o.replace = true }
}

// GenerateCerts creates a private CA in dir and uses it to sign a server certificate (for
// buildkitd on the builder nodes) and a client certificate (for kiln), so that both sides
// authenticate each other (mutual TLS). Keys are ECDSA P-256; certificates are valid for ten
// years.
//
// hosts are the names and addresses clients use to reach the server; each becomes a subject
// alternative name (as an IP address when it parses as one). "localhost", 127.0.0.1 and ::1
// are always added. Copy ca.pem, server.pem and server-key.pem to each builder node; keep
// ca-key.pem private.
//
// Files are written atomically; keys get mode 0600. When any of the files already exists,
// GenerateCerts writes nothing and returns an error wrapping ErrCertsExist, unless
// ReplaceExisting is given.
func GenerateCerts(dir string, hosts []string, opts ...CertOption) (CertFiles, error) {
	var o certOptions
	for _, opt := range opts {
		opt(&o)
	}
	files, err := CertFilesIn(dir)
	if err != nil {
		return CertFiles{}, err
	}
	if o.keepCA && len(hosts) == 0 {
		// The names of the certificate being replaced, so that renewing keeps every node
		// (a missing CA is the error to report first).
		if _, _, err := loadCA(files); err != nil {
			return CertFiles{}, err
		}
		if hosts, err = serverNames(files.ServerCert); err != nil {
			return CertFiles{}, err
		}
	}
	dnsNames, ips, err := sanEntries(hosts)
	if err != nil {
		return CertFiles{}, err
	}
	if !o.replace && !o.keepCA {
		var existing []string
		for _, p := range files.paths() {
			if _, err := os.Lstat(p); err == nil {
				existing = append(existing, filepath.Base(p))
			} else if !errors.Is(err, fs.ErrNotExist) {
				return CertFiles{}, fmt.Errorf("checking %s: %w", p, err)
			}
		}
		if len(existing) > 0 {
			return CertFiles{}, fmt.Errorf("%s: %w (%s); keep them, issue new server and client certificates "+
				"from the same CA (kiln builder certs -reissue), or replace them all with a new CA (kiln builder "+
				"certs -force), after which every node and client holding the old files must get the new ones",
				files.Dir, ErrCertsExist, strings.Join(existing, ", "))
		}
	}
	notBefore := time.Now().Add(-time.Hour) // tolerate small clock differences between nodes
	notAfter := notBefore.Add(certValidity)

	var caCert *x509.Certificate
	var caKey crypto.Signer
	var writes []certWrite
	if o.keepCA {
		caCert, caKey, err = loadCA(files)
		if err != nil {
			return CertFiles{}, err
		}
		if caCert.NotAfter.Before(notAfter) {
			notAfter = caCert.NotAfter
		}
	} else {
		caCert, caKey, writes, err = newCA(files, notBefore, notAfter)
		if err != nil {
			return CertFiles{}, err
		}
	}

	if err := os.MkdirAll(files.Dir, 0o700); err != nil {
		return CertFiles{}, fmt.Errorf("creating certificate directory: %w", err)
	}

	serverTmpl, err := certTemplate("kiln builder server", notBefore, notAfter)
	if err != nil {
		return CertFiles{}, err
	}
	serverTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	serverTmpl.DNSNames, serverTmpl.IPAddresses = dnsNames, ips
	serverDER, serverKey, err := signLeaf(serverTmpl, caCert, caKey)
	if err != nil {
		return CertFiles{}, fmt.Errorf("creating server certificate: %w", err)
	}

	clientTmpl, err := certTemplate("kiln builder client", notBefore, notAfter)
	if err != nil {
		return CertFiles{}, err
	}
	clientTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	clientDER, clientKey, err := signLeaf(clientTmpl, caCert, caKey)
	if err != nil {
		return CertFiles{}, fmt.Errorf("creating client certificate: %w", err)
	}

	writes = append(writes, []certWrite{
		{files.ServerCert, certPEM(serverDER), 0o644},
		{files.ServerKey, keyPEM(serverKey), 0o600},
		{files.ClientCert, certPEM(clientDER), 0o644},
		{files.ClientKey, keyPEM(clientKey), 0o600},
	}...)
	for _, w := range writes {
		data, err := w.data()
		if err != nil {
			return CertFiles{}, fmt.Errorf("encoding %s: %w", w.path, err)
		}
		if err := atomicfile.Write(w.path, data, w.mode); err != nil {
			return CertFiles{}, err
		}
	}
	return files, nil
}

// certWrite is one file GenerateCerts writes.
type certWrite struct {
	path string
	data func() ([]byte, error)
	mode os.FileMode
}

// newCA makes a CA valid from notBefore to notAfter and returns it with the files to write.
func newCA(files CertFiles, notBefore, notAfter time.Time) (*x509.Certificate, crypto.Signer, []certWrite, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generating CA key: %w", err)
	}
	caTmpl, err := certTemplate("kiln builder CA", notBefore, notAfter)
	if err != nil {
		return nil, nil, nil, err
	}
	caTmpl.IsCA = true
	caTmpl.BasicConstraintsValid = true
	caTmpl.MaxPathLenZero = true
	caTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	return caCert, caKey, []certWrite{{files.CA, certPEM(caDER), 0o644}, {files.CAKey, keyPEM(caKey), 0o600}}, nil
}

// serverNames returns the host names and addresses the server certificate at path is valid for.
func serverNames(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the server certificate for its names (give -hosts to name them anew): %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("server certificate %s: no PEM certificate in it", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("server certificate %s: %w", path, err)
	}
	names := append([]string{}, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	return names, nil
}

// loadCA reads the CA certificate and key of files.
func loadCA(files CertFiles) (*x509.Certificate, crypto.Signer, error) {
	pair, err := tls.LoadX509KeyPair(files.CA, files.CAKey)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the CA to issue certificates from (%s, %s): %w; without it, "+
			"make a new CA with kiln builder certs -force", files.CA, files.CAKey, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate %s: %w", files.CA, err)
	}
	if !cert.IsCA {
		return nil, nil, fmt.Errorf("CA certificate %s is not a CA certificate", files.CA)
	}
	if time.Now().After(cert.NotAfter) {
		return nil, nil, fmt.Errorf("the CA in %s expired on %s; make a new one with kiln builder certs -force",
			files.CA, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("CA key %s cannot sign", files.CAKey)
	}
	return cert, signer, nil
}

func (f CertFiles) paths() []string {
	return []string{f.CA, f.CAKey, f.ServerCert, f.ServerKey, f.ClientCert, f.ClientKey}
}

// sanEntries splits hosts into DNS names and IP addresses, adding the loopback names.
func sanEntries(hosts []string) ([]string, []net.IP, error) {
	var dnsNames []string
	var ips []net.IP
	seen := map[string]bool{}
	for _, h := range append(append([]string{}, hosts...), "localhost", "127.0.0.1", "::1") {
		h = strings.TrimSpace(h)
		if h == "" || strings.ContainsAny(h, "/ ") || strings.Contains(h, "://") {
			return nil, nil, fmt.Errorf("certificate host %q: want a host name or an IP address "+
				"(no scheme, port or path)", h)
		}
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			if seen[ip.String()] {
				continue
			}
			seen[ip.String()] = true
			ips = append(ips, ip)
			continue
		}
		if _, _, err := net.SplitHostPort(h); err == nil {
			return nil, nil, fmt.Errorf("certificate host %q: want a host name without a port", h)
		}
		h = strings.ToLower(h)
		if seen[h] {
			continue
		}
		seen[h] = true
		dnsNames = append(dnsNames, h)
	}
	return dnsNames, ips, nil
}

func certTemplate(cn string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating certificate serial number: %w", err)
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"kiln"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}, nil
}

func signLeaf(tmpl, ca *x509.Certificate, caKey crypto.Signer) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, err
	}
	return der, key, nil
}

func certPEM(der []byte) func() ([]byte, error) {
	return func() ([]byte, error) {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
	}
}

func keyPEM(key *ecdsa.PrivateKey) func() ([]byte, error) {
	return func() ([]byte, error) {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	}
}
