package builder

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// NodeConfigDir is the folder, under the metadata service's /run/config, that holds a builder
// node's TLS files: the buildkitd service reads ca.pem, server.pem and server-key.pem there.
const NodeConfigDir = "buildkit"

// configEntry is one node of the metadata service's user-data tree: a file (Content) or a
// folder (Entries) with its mode.
type configEntry struct {
	Perm    string                 `json:"perm"`
	Content *string                `json:"content,omitempty"`
	Entries map[string]configEntry `json:"entries,omitempty"`
}

// TrustedCAFile is the node configuration's file of root certificates the node trusts for
// what its builds fetch over HTTPS, besides the image's own (services/buildkitd reads it).
const TrustedCAFile = "trusted-ca.pem"

// NodeUserData returns a builder node's user data: the JSON tree the node's metadata service
// writes under /run/config, holding the CA certificate, the server certificate and the
// server's key of files in the folder buildkit/ (the key readable by root only), and trust,
// when not empty, as buildkit/trusted-ca.pem: PEM root certificates the node's builds trust
// for their downloads (a proxy's CA). The CA's key and the client's files stay on the machine
// that issued them. The same files give the same bytes.
func NodeUserData(files CertFiles, trust []byte) ([]byte, error) {
	entries := map[string]configEntry{}
	for _, f := range []struct {
		name, path, perm string
	}{
		{CAFile, files.CA, "0644"},
		{ServerCertFile, files.ServerCert, "0644"},
		{ServerKeyFile, files.ServerKey, "0600"},
	} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("node configuration: %w", err)
		}
		s := string(b)
		entries[f.name] = configEntry{Perm: f.perm, Content: &s}
	}
	if len(trust) > 0 {
		if err := CheckRoots(trust); err != nil {
			return nil, fmt.Errorf("node configuration: trusted certificates: %w", err)
		}
		s := string(trust)
		entries[TrustedCAFile] = configEntry{Perm: "0644", Content: &s}
	}
	tree := map[string]configEntry{NodeConfigDir: {Perm: "0700", Entries: entries}}
	b, err := json.MarshalIndent(tree, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("node configuration: %w", err)
	}
	return append(b, '\n'), nil
}

// CheckRoots checks that b holds PEM certificates, at least one, each of which parses.
func CheckRoots(b []byte) error {
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM certificate in it")
	}
	return nil
}
