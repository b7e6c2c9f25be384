package builder

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
)

// SupportedPlatforms lists the platforms a builder node may be assigned to, in normalized form.
var SupportedPlatforms = []string{
	"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/s390x", "linux/riscv64", "linux/ppc64le",
}

// connectTimeout bounds the reachability and platform checks of Connect.
const connectTimeout = 10 * time.Second

// Errors Connect wraps, so that callers can tell the cases apart with errors.Is.
var (
	// ErrUnreachable: nothing answers at the node's address.
	ErrUnreachable = errors.New("unreachable")
	// ErrTLS: the TLS handshake failed (certificates from different CAs, a wrong host name,
	// or a missing client certificate).
	ErrTLS = errors.New("TLS handshake failed")
	// ErrPlatform: the node answers but none of its workers builds the node's platform.
	ErrPlatform = errors.New("platform not supported by the node")
)

// Node is one BuildKit daemon that builds one platform: the local daemon, or a remote native
// builder such as a booted kiln builder appliance.
type Node struct {
	Platform string     // normalized platform, e.g. "linux/arm64"
	Address  string     // "unix:///path" or "tcp://host:port"
	TLS      *TLSConfig // client TLS settings; set for every tcp:// node
}

// TLSConfig names the files for a mutual TLS connection to a node.
type TLSConfig struct {
	CA         string // CA certificate the node's server certificate must chain to
	Cert       string // client certificate presented to the node
	Key        string // client private key
	ServerName string // name the server certificate must be valid for (the address's host)
}

// String returns the node in the form ParseNodes accepts: "linux/arm64=tcp://host:port".
func (n Node) String() string { return n.Platform + "=" + n.Address }

// ParseNodes parses a platform-to-node map such as
//
//	linux/arm64=tcp://node-a:1234,linux/s390x=tcp://node-b:1234
//
// (the value of `kiln pkg build --builders`). A platform may be written as its architecture
// alone ("arm64") and is normalized ("aarch64" becomes "linux/arm64", "linux/arm" becomes
// "linux/arm/v7"); only SupportedPlatforms are accepted, each at most once. Addresses are
// tcp://host:port or unix:///absolute/path. A tcp node always uses mutual TLS with the files
// ca.pem, client.pem and client-key.pem from certDir (see GenerateCerts); they must exist.
// An empty spec gives no nodes. Errors name the offending entry.
func ParseNodes(spec string, certDir string) ([]Node, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	var nodes []Node
	seen := map[string]string{} // platform -> entry that claimed it
	for entry := range strings.SplitSeq(spec, ",") {
		entry = strings.TrimSpace(entry)
		n, err := parseNode(entry, certDir)
		if err != nil {
			return nil, fmt.Errorf("builder %q: %w", entry, err)
		}
		if prev, ok := seen[n.Platform]; ok {
			return nil, fmt.Errorf("builder %q: platform %s already has a builder (%q); give one "+
				"builder per platform", entry, n.Platform, prev)
		}
		seen[n.Platform] = entry
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// FindNode returns the node for platform (any form ParseNodes accepts) from nodes.
func FindNode(nodes []Node, platform string) (Node, bool) {
	p, err := NormalizePlatform(platform)
	if err != nil {
		return Node{}, false
	}
	for _, n := range nodes {
		if n.Platform == p {
			return n, true
		}
	}
	return Node{}, false
}

// NormalizePlatform returns the normalized form of a supported platform ("arm64", "aarch64"
// and "linux/arm64/v8" all give "linux/arm64"), or an error listing SupportedPlatforms.
func NormalizePlatform(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("empty platform; want one of %s", strings.Join(SupportedPlatforms, ", "))
	}
	spec := s
	if !strings.Contains(spec, "/") {
		// An architecture alone. (platforms.Parse would read "linux" alone as the host's
		// architecture; a node must name its own.)
		spec = "linux/" + spec
	}
	p, err := platforms.Parse(spec)
	if err != nil {
		return "", fmt.Errorf("platform %q: %w; want one of %s", s, err, strings.Join(SupportedPlatforms, ", "))
	}
	norm := platforms.Format(platforms.Normalize(p))
	if !slices.Contains(SupportedPlatforms, norm) {
		return "", fmt.Errorf("platform %q (%s) is not supported; want one of %s", s, norm,
			strings.Join(SupportedPlatforms, ", "))
	}
	return norm, nil
}

func parseNode(entry, certDir string) (Node, error) {
	if entry == "" {
		return Node{}, errors.New(`empty entry; want PLATFORM=ADDRESS, e.g. linux/arm64=tcp://node-a:1234`)
	}
	plat, addr, ok := strings.Cut(entry, "=")
	if !ok {
		return Node{}, errors.New(`missing "="; want PLATFORM=ADDRESS, e.g. linux/arm64=tcp://node-a:1234`)
	}
	p, err := NormalizePlatform(plat)
	if err != nil {
		return Node{}, err
	}
	addr = strings.TrimSpace(addr)
	if !strings.Contains(addr, "://") {
		return Node{}, fmt.Errorf("address %q has no scheme; want tcp://HOST:PORT or unix:///PATH", addr)
	}
	u, err := url.Parse(addr)
	if err != nil {
		return Node{}, fmt.Errorf("address %q: %w", addr, err)
	}
	n := Node{Platform: p}
	switch u.Scheme {
	case "tcp":
		host, port := u.Hostname(), u.Port()
		if host == "" || port == "" {
			return Node{}, fmt.Errorf("address %q: want tcp://HOST:PORT", addr)
		}
		if pn, err := strconv.Atoi(port); err != nil || pn < 1 || pn > 65535 {
			return Node{}, fmt.Errorf("address %q: port %q is not a number from 1 to 65535", addr, port)
		}
		if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return Node{}, fmt.Errorf("address %q: want tcp://HOST:PORT with nothing after the port", addr)
		}
		n.Address = "tcp://" + u.Host
		tc, err := clientTLS(certDir, host)
		if err != nil {
			return Node{}, err
		}
		n.TLS = tc
	case "unix":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return Node{}, fmt.Errorf("address %q: want unix:///ABSOLUTE/PATH", addr)
		}
		n.Address = "unix://" + u.Path
	default:
		return Node{}, fmt.Errorf("address %q: scheme %q is not supported; want tcp://HOST:PORT or unix:///PATH",
			addr, u.Scheme)
	}
	return n, nil
}

// clientTLS returns the TLS files for a tcp node, checking that they exist.
func clientTLS(certDir, serverName string) (*TLSConfig, error) {
	const advice = "create the certificates with `kiln builder certs` and copy ca.pem, server.pem " +
		"and server-key.pem to the node"
	if certDir == "" {
		return nil, fmt.Errorf("a tcp builder needs mutual TLS but no certificate directory is set; %s", advice)
	}
	files, err := CertFilesIn(certDir)
	if err != nil {
		return nil, err
	}
	for _, p := range []string{files.CA, files.ClientCert, files.ClientKey} {
		if _, err := os.Stat(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("a tcp builder needs mutual TLS but %s is missing; %s", p, advice)
			}
			return nil, fmt.Errorf("TLS file for a tcp builder: %w", err)
		}
	}
	return &TLSConfig{CA: files.CA, Cert: files.ClientCert, Key: files.ClientKey, ServerName: serverName}, nil
}

// Connect opens a BuildKit client to the node and checks, within ten seconds, that the node
// answers (ErrUnreachable otherwise), that the TLS handshake succeeds both ways (ErrTLS) and
// that one of its workers builds the node's platform (ErrPlatform). A tcp node without TLS is
// refused. The caller closes the client.
func Connect(ctx context.Context, n Node) (*client.Client, error) {
	where := fmt.Sprintf("builder for %s at %s", n.Platform, n.Address)
	u, err := url.Parse(n.Address)
	if err != nil {
		return nil, fmt.Errorf("%s: bad address: %w", where, err)
	}
	var opts []client.ClientOpt
	var tlsConf *tls.Config
	switch u.Scheme {
	case "unix":
	case "tcp":
		if n.TLS == nil {
			return nil, fmt.Errorf("%s: refusing plain TCP: a tcp builder needs mutual TLS "+
				"(create certificates with `kiln builder certs`)", where)
		}
		tlsConf, err = n.TLS.load()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		opts = append(opts,
			client.WithServerConfig(n.TLS.ServerName, n.TLS.CA),
			client.WithCredentials(n.TLS.Cert, n.TLS.Key))
	default:
		return nil, fmt.Errorf("%s: scheme %q is not supported; want tcp:// or unix://", where, u.Scheme)
	}

	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := probe(cctx, u, tlsConf); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}

	c, err := client.New(ctx, n.Address, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	workers, err := c.ListWorkers(cctx)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("%s: %w: %w; check the node is up (kiln builder status on it) and "+
			"that the address is right", where, ErrUnreachable, err)
	}
	if !workersSupport(workers, n.Platform) {
		_ = c.Close()
		var have []string
		for _, w := range workers {
			for _, p := range w.Platforms {
				have = append(have, platforms.Format(platforms.Normalize(p)))
			}
		}
		slices.Sort(have)
		have = slices.Compact(have)
		return nil, fmt.Errorf("%s: %w: its workers build %s, not %s; point %s at a node of that "+
			"architecture, or enable emulation (binfmt_misc with qemu-user-static) on it",
			where, ErrPlatform, orNone(have), n.Platform, n.Platform)
	}
	return c, nil
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "no platform"
	}
	return strings.Join(list, ", ")
}

// workersSupport reports whether any worker builds platform (normalized).
func workersSupport(workers []*client.WorkerInfo, platform string) bool {
	want, err := platforms.Parse(platform)
	if err != nil {
		return false
	}
	want = platforms.Normalize(want)
	for _, w := range workers {
		for _, p := range w.Platforms {
			p = platforms.Normalize(p)
			if p.OS == want.OS && p.Architecture == want.Architecture &&
				(want.Variant == "" || p.Variant == want.Variant) {
				return true
			}
		}
	}
	return false
}

// load reads the TLS files into a client configuration.
func (t *TLSConfig) load() (*tls.Config, error) {
	caPEM, err := os.ReadFile(t.CA)
	if err != nil {
		return nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no PEM certificate; regenerate it with `kiln builder certs`", t.CA)
	}
	pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("loading client certificate %s and key %s: %w", t.Cert, t.Key, err)
	}
	return &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{pair},
		ServerName:   t.ServerName,
		NextProtos:   []string{"h2"},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// http2Preface opens every HTTP/2 (gRPC) connection.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// probe dials the node once on its own to classify failures precisely: the gRPC client reports
// every failure as "unavailable". With TLS it completes the handshake and waits for the server's
// first HTTP/2 frame: a server that rejects our client certificate answers with a TLS alert
// instead (with TLS 1.3 the client's side of the handshake finishes before the server checks
// the client certificate).
func probe(ctx context.Context, u *url.URL, tlsConf *tls.Config) error {
	network, addr := "tcp", u.Host
	if u.Scheme == "unix" {
		network, addr = "unix", u.Path
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("%w: %w; check the node is up (kiln builder status on it) and that the "+
			"address is right", ErrUnreachable, err)
	}
	defer func() { _ = conn.Close() }()
	if tlsConf == nil {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return fmt.Errorf("%w: %w", ErrUnreachable, err)
		}
	}
	const advice = "both sides need certificates from the same `kiln builder certs` run, and the " +
		"server certificate must name the host in the address"
	tc := tls.Client(conn, tlsConf)
	if err := tc.HandshakeContext(ctx); err != nil {
		return tlsError(err, advice)
	}
	if _, err := io.WriteString(tc, http2Preface); err != nil {
		return tlsError(err, advice)
	}
	var b [1]byte
	if _, err := tc.Read(b[:]); err != nil {
		return tlsError(err, advice)
	}
	return nil
}

// tlsError wraps a failure during the TLS probe: TLS failures as ErrTLS, anything else (a
// reset, a timeout) as ErrUnreachable.
func tlsError(err error, advice string) error {
	var (
		op       *net.OpError
		verify   *tls.CertificateVerificationError
		hostname x509.HostnameError
		unknown  x509.UnknownAuthorityError
		recHdr   tls.RecordHeaderError
	)
	// An alert from the server (for example "certificate required") arrives as a net.OpError
	// whose Op is "remote error".
	remoteAlert := errors.As(err, &op) && op.Op == "remote error"
	if remoteAlert || errors.As(err, &verify) || errors.As(err, &hostname) ||
		errors.As(err, &unknown) || errors.As(err, &recHdr) {
		return fmt.Errorf("%w: %w; %s", ErrTLS, err, advice)
	}
	return fmt.Errorf("%w: %w; check the node is up (kiln builder status on it)", ErrUnreachable, err)
}
