package builder

import (
	"errors"
	"net"
	"net/url"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/platforms"
	"github.com/kiln-os/kiln/internal/testutil"
	"github.com/moby/buildkit/client"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestNormalizePlatform(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "linux/amd64", want: "linux/amd64"},
		{in: "amd64", want: "linux/amd64"},
		{in: "x86_64", want: "linux/amd64"},
		{in: "arm64", want: "linux/arm64"},
		{in: "aarch64", want: "linux/arm64"},
		{in: "linux/arm64/v8", want: "linux/arm64"},
		{in: " Linux/ARM64 ", want: "linux/arm64"},
		{in: "arm", want: "linux/arm/v7"},
		{in: "linux/arm/v7", want: "linux/arm/v7"},
		{in: "s390x", want: "linux/s390x"},
		{in: "riscv64", want: "linux/riscv64"},
		{in: "linux/ppc64le", want: "linux/ppc64le"},
		{in: "", err: "empty platform"},
		{in: "linux", err: "want one of"},
		{in: "linux/", err: "want one of"},
		{in: "windows/amd64", err: "not supported"},
		{in: "linux/amd64/v2", err: "not supported"},
		{in: "linux/arm/v6", err: "not supported"},
		{in: "mips64", err: "not supported"},
		{in: "nonsense-arch", err: "want one of"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizePlatform(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("NormalizePlatform(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizePlatform(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseNodes(t *testing.T) {
	certs, err := GenerateCerts(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tlsFor := func(host string) *TLSConfig {
		return &TLSConfig{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey, ServerName: host}
	}
	noCerts := t.TempDir()

	tests := []struct {
		name    string
		spec    string
		certDir string
		want    []Node
		err     []string // substrings of the error
	}{
		{name: "empty", spec: "  ", want: nil},
		{
			name: "two tcp nodes", spec: "linux/arm64=tcp://node-a:1234,linux/s390x=tcp://10.0.0.7:4321",
			want: []Node{
				{Platform: "linux/arm64", Address: "tcp://node-a:1234", TLS: tlsFor("node-a")},
				{Platform: "linux/s390x", Address: "tcp://10.0.0.7:4321", TLS: tlsFor("10.0.0.7")},
			},
		},
		{
			name: "short arch, spaces, trailing slash", spec: " arm64 = tcp://node-a:1234/ , arm=tcp://[fd00::2]:1234",
			want: []Node{
				{Platform: "linux/arm64", Address: "tcp://node-a:1234", TLS: tlsFor("node-a")},
				{Platform: "linux/arm/v7", Address: "tcp://[fd00::2]:1234", TLS: tlsFor("fd00::2")},
			},
		},
		{
			name: "unix needs no certificates", spec: "amd64=unix:///run/buildkit/buildkitd.sock", certDir: noCerts,
			want: []Node{{Platform: "linux/amd64", Address: "unix:///run/buildkit/buildkitd.sock"}},
		},
		{name: "empty entry", spec: "arm64=tcp://a:1,,s390x=tcp://b:1", err: []string{`builder ""`, "empty entry"}},
		{name: "trailing comma", spec: "arm64=tcp://a:1,", err: []string{"empty entry"}},
		{name: "no equals", spec: "tcp://a:1", err: []string{`builder "tcp://a:1"`, `missing "="`}},
		{name: "unknown platform", spec: "linux/mips64=tcp://a:1", err: []string{`builder "linux/mips64=tcp://a:1"`, "not supported"}},
		{name: "other os", spec: "windows/amd64=tcp://a:1", err: []string{"not supported"}},
		{name: "no platform", spec: "=tcp://a:1", err: []string{"empty platform"}},
		{
			name: "duplicate platform", spec: "arm64=tcp://a:1,linux/aarch64=tcp://b:1",
			err: []string{`builder "linux/aarch64=tcp://b:1"`, "linux/arm64 already has a builder", `"arm64=tcp://a:1"`},
		},
		{name: "no scheme", spec: "arm64=node-a:1234", err: []string{`"node-a:1234" has no scheme`}},
		{name: "bad url", spec: "arm64=tcp://node-a:12%34", err: []string{`builder "arm64=tcp://node-a:12%34"`, "address"}},
		{name: "no port", spec: "arm64=tcp://node-a", err: []string{"want tcp://HOST:PORT"}},
		{name: "no host", spec: "arm64=tcp://:1234", err: []string{"want tcp://HOST:PORT"}},
		{name: "port out of range", spec: "arm64=tcp://node-a:70000", err: []string{"from 1 to 65535"}},
		{name: "port zero", spec: "arm64=tcp://node-a:0", err: []string{"from 1 to 65535"}},
		{name: "path after port", spec: "arm64=tcp://node-a:1234/x", err: []string{"nothing after the port"}},
		{name: "query", spec: "arm64=tcp://node-a:1234?x=1", err: []string{"nothing after the port"}},
		{name: "user", spec: "arm64=tcp://me@node-a:1234", err: []string{"nothing after the port"}},
		{name: "unsupported scheme", spec: "arm64=ssh://node-a", err: []string{`scheme "ssh" is not supported`}},
		{name: "relative unix path", spec: "arm64=unix://buildkitd.sock", err: []string{"unix:///ABSOLUTE/PATH"}},
		{
			name: "tcp without certificate files", spec: "arm64=tcp://node-a:1234", certDir: noCerts,
			err: []string{`builder "arm64=tcp://node-a:1234"`, filepath.Join(noCerts, "ca.pem") + " is missing", "kiln builder certs"},
		},
		{
			name: "tcp without certificate directory", spec: "arm64=tcp://node-a:1234", certDir: "-",
			err: []string{"no certificate directory", "kiln builder certs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := certs.Dir
			switch tt.certDir {
			case "-":
				dir = ""
			case "":
			default:
				dir = tt.certDir
			}
			got, err := ParseNodes(tt.spec, dir)
			if len(tt.err) > 0 {
				if err == nil {
					t.Fatalf("ParseNodes(%q) = %+v, want an error", tt.spec, got)
				}
				for _, s := range tt.err {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNodes(%q): %v", tt.spec, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseNodes(%q)\n got %+v\nwant %+v", tt.spec, got, tt.want)
			}
			// Every node prints back to a spec that parses to the same node.
			for _, n := range got {
				again, err := ParseNodes(n.String(), dir)
				if err != nil || !reflect.DeepEqual(again, []Node{n}) {
					t.Errorf("ParseNodes(%q) = %+v, %v; want %+v", n.String(), again, err, n)
				}
			}
		})
	}
}

func TestFindNode(t *testing.T) {
	nodes := []Node{{Platform: "linux/arm64", Address: "tcp://a:1"}, {Platform: "linux/arm/v7", Address: "tcp://b:1"}}
	for _, tt := range []struct {
		platform, want string
	}{
		{"aarch64", "tcp://a:1"}, {"linux/arm", "tcp://b:1"}, {"linux/s390x", ""}, {"bogus", ""},
	} {
		n, ok := FindNode(nodes, tt.platform)
		if ok != (tt.want != "") || n.Address != tt.want {
			t.Errorf("FindNode(%q) = %+v, %v; want %q", tt.platform, n, ok, tt.want)
		}
	}
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	return port
}

func TestConnectUnreachable(t *testing.T) {
	certs, err := GenerateCerts(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := "tcp://127.0.0.1:" + closedPort(t)
	nodes, err := ParseNodes("linux/arm64="+addr+",linux/s390x=unix://"+filepath.Join(t.TempDir(), "none.sock"), certs.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		c, err := Connect(t.Context(), n)
		if err == nil {
			c.Close()
			t.Fatalf("Connect(%s) succeeded with nothing listening", n)
		}
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("Connect(%s): %v, want ErrUnreachable", n, err)
		}
		for _, s := range []string{"builder for " + n.Platform + " at " + n.Address + ": unreachable", "kiln builder status"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not contain %q", err, s)
			}
		}
	}

	// A tcp node must use TLS.
	_, err = Connect(t.Context(), Node{Platform: "linux/arm64", Address: addr})
	if err == nil || !strings.Contains(err.Error(), "refusing plain TCP") {
		t.Errorf("Connect without TLS: %v, want a refusal", err)
	}
}

// missingPlatform returns a supported platform none of the daemon's workers builds.
func missingPlatform(t *testing.T, address string) string {
	t.Helper()
	c, err := client.New(t.Context(), address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	workers, err := c.ListWorkers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range SupportedPlatforms {
		if !workersSupport(workers, p) {
			return p
		}
	}
	return ""
}

func TestConnectTLS(t *testing.T) {
	t.Parallel()
	certs, err := GenerateCerts(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateCerts(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	bk := testutil.StartBuildkitd(t, testutil.BuildkitdOptions{TLSDir: certs.Dir, TCP: true})
	port := bk.TCP[strings.LastIndex(bk.TCP, ":")+1:]
	good := func(host string) *TLSConfig {
		return &TLSConfig{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey, ServerName: host}
	}
	tests := []struct {
		name string
		node Node
		want error
	}{
		{"tcp by IP", Node{"linux/amd64", "tcp://127.0.0.1:" + port, good("127.0.0.1")}, nil},
		{"tcp by name", Node{"linux/amd64", "tcp://localhost:" + port, good("localhost")}, nil},
		{"unix", Node{"linux/amd64", bk.Unix, nil}, nil},
		{"client certificate from another CA",
			Node{"linux/amd64", bk.TCP, &TLSConfig{CA: certs.CA, Cert: other.ClientCert, Key: other.ClientKey, ServerName: "127.0.0.1"}},
			ErrTLS},
		{"server from another CA",
			Node{"linux/amd64", bk.TCP, &TLSConfig{CA: other.CA, Cert: other.ClientCert, Key: other.ClientKey, ServerName: "127.0.0.1"}},
			ErrTLS},
		{"server name not in the certificate", Node{"linux/amd64", bk.TCP, good("node-b")}, ErrTLS},
	}
	if p := missingPlatform(t, bk.Unix); p != "" {
		tests = append(tests, struct {
			name string
			node Node
			want error
		}{"platform the node does not build", Node{p, bk.TCP, good("127.0.0.1")}, ErrPlatform})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Connect(t.Context(), tt.node)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Connect(%s): %v", tt.node, err)
				}
				defer c.Close()
				// The client works beyond the checks Connect made.
				if _, err := c.Info(t.Context()); err != nil {
					t.Fatalf("Info after Connect: %v", err)
				}
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("Connect(%s) succeeded, want %v", tt.node, tt.want)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Connect(%s): %v, want %v", tt.node, err, tt.want)
			}
			if !strings.Contains(err.Error(), "builder for "+tt.node.Platform+" at "+tt.node.Address) {
				t.Errorf("error %q does not name the node", err)
			}
		})
	}

	// Without a client certificate the daemon refuses: both in our probe and for a BuildKit
	// client that skips it.
	t.Run("no client certificate", func(t *testing.T) {
		conf, err := good("127.0.0.1").load()
		if err != nil {
			t.Fatal(err)
		}
		conf.Certificates = nil
		u, err := url.Parse(bk.TCP)
		if err != nil {
			t.Fatal(err)
		}
		if err := probe(t.Context(), u, conf); !errors.Is(err, ErrTLS) {
			t.Errorf("probe without client certificate: %v, want ErrTLS", err)
		}
		c, err := client.New(t.Context(), bk.TCP, client.WithServerConfig("127.0.0.1", certs.CA))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.ListWorkers(t.Context()); err == nil {
			t.Error("ListWorkers without a client certificate succeeded")
		}
	})

	// A plain TLS-less client is refused by the TLS listener.
	t.Run("plain client to the TLS port", func(t *testing.T) {
		c, err := client.New(t.Context(), bk.TCP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.ListWorkers(t.Context()); err == nil {
			t.Error("ListWorkers without TLS succeeded on the TLS port")
		}
	})
}

func TestWorkersSupport(t *testing.T) {
	workers := []*client.WorkerInfo{{Platforms: []ocispecs.Platform{
		platforms.MustParse("linux/amd64"), platforms.MustParse("linux/amd64/v2"), platforms.MustParse("linux/arm64/v8"),
		platforms.MustParse("linux/arm/v6"),
	}}}
	for p, want := range map[string]bool{
		"linux/amd64": true, "linux/arm64": true, "linux/arm/v7": false, "linux/s390x": false,
	} {
		if got := workersSupport(workers, p); got != want {
			t.Errorf("workersSupport(%s) = %v, want %v", p, got, want)
		}
	}
	if got := orNone(nil); got != "no platform" {
		t.Errorf("orNone(nil) = %q", got)
	}
}
