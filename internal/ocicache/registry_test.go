package ocicache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-os/kiln/internal/testutil"
)

// TestRegistryPushPull pushes an image and a three-platform index to a real registry and pulls
// them into fresh caches.
func TestRegistryPushPull(t *testing.T) {
	host := testutil.StartRegistry(t)
	ctx := context.Background()
	src := newCache(t)
	imgRef, idxRef := host+"/kiln/img:1", host+"/kiln/multi:1"
	imgDesc, err := src.WriteImage(imgRef, testImage(t, amd64, "pushed"))
	if err != nil {
		t.Fatal(err)
	}
	idxDesc, err := src.WriteIndex(idxRef, testIndex(t, "pushed", amd64, arm64, s390x))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{imgRef, idxRef} {
		if err := src.Push(ctx, r, Insecure()); err != nil {
			t.Fatal(err)
		}
	}

	dst := newCache(t)
	if d, err := dst.Pull(ctx, imgRef, Insecure()); err != nil || d.Digest != imgDesc.Digest {
		t.Fatalf("pull image: %s, %v; want %s", d.Digest, err, imgDesc.Digest)
	}
	if d, err := dst.Pull(ctx, idxRef, Insecure()); err != nil || d.Digest != idxDesc.Digest {
		t.Fatalf("pull index: %s, %v; want %s", d.Digest, err, idxDesc.Digest)
	}
	for _, p := range []v1.Platform{amd64, arm64, s390x} {
		want, _, err := src.Image(idxRef, &p)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := dst.Image(idxRef, &p)
		if err != nil {
			t.Fatal(err)
		}
		if digestOf(t, got) != digestOf(t, want) {
			t.Errorf("%s: pulled %s, pushed %s", p.String(), digestOf(t, got), digestOf(t, want))
		}
		if err := readAllLayers(got); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := dst.Resolve(imgRef); err != nil || got.Digest != imgDesc.Digest {
		t.Fatalf("resolve pulled image: %v", err)
	}

	// A platform filter keeps the index digest and only the chosen child.
	one := newCache(t)
	d, err := one.Pull(ctx, idxRef, Insecure(), WithPlatforms(arm64))
	if err != nil || d.Digest != idxDesc.Digest {
		t.Fatalf("filtered pull: %s, %v", d.Digest, err)
	}
	if _, _, err := one.Image(idxRef, &arm64); err != nil {
		t.Fatal(err)
	}
	if _, _, err := one.Image(idxRef, &s390x); !errors.Is(err, ErrNotFound) {
		t.Errorf("absent platform: %v, want ErrNotFound", err)
	}
	if _, err := one.Pull(ctx, idxRef, Insecure(), WithPlatforms(v1.Platform{OS: "linux", Architecture: "riscv64"})); !errors.Is(err, ErrNotFound) {
		t.Errorf("pull of a platform the index lacks: %v", err)
	}
	// The partial index still exports and re-imports.
	var buf bytes.Buffer
	if err := one.ExportOCI(&buf, idxRef); err != nil {
		t.Fatal(err)
	}
	if _, err := newCache(t).Import(&buf); err != nil {
		t.Fatal(err)
	}
	// Pushing an index needs every child.
	if err := one.Tag(host+"/kiln/partial:1", d); err != nil {
		t.Fatal(err)
	}
	if err := one.Push(ctx, host+"/kiln/partial:1", Insecure()); err == nil {
		t.Error("pushed an index whose children are missing")
	}
	if err := one.Push(ctx, host+"/kiln/unknown:1", Insecure()); !errors.Is(err, ErrNotFound) {
		t.Errorf("push of an unknown ref: %v", err)
	}
}

func TestPlainHTTPAllowed(t *testing.T) {
	named := []string{"registry.lan:5000", "build.lan", "[fd00::1]:5000", "10.0.0.7"}
	tests := []struct {
		registry string
		want     bool
	}{
		{"127.0.0.1:5000", true},
		{"127.0.0.1", true},
		{"127.1.2.3:80", true},
		{"localhost", true},
		{"localhost:5000", true},
		{"LOCALHOST:5000", true},
		{"[::1]:5000", true},
		{"::1", true},
		// Private addresses are not special: HTTPS only unless named.
		{"10.1.2.3:5000", false},
		{"192.168.1.10", false},
		{"172.16.0.1:443", false},
		{"172.31.255.255:5000", false},
		{"foo.localhost:5000", false},
		{"index.docker.io", false},
		{"ghcr.io", false},
		{"[fd00::2]:5000", false},
		// Named ones: a host matches every port, host:port only that port.
		{"registry.lan:5000", true},
		{"REGISTRY.LAN:5000", true},
		{"registry.lan:5001", false},
		{"registry.lan", false},
		{"build.lan", true},
		{"build.lan:8080", true},
		{"[fd00::1]:5000", true},
		{"[fd00::1]:5001", false},
		{"10.0.0.7:5000", true},
		{"10.0.0.8:5000", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := PlainHTTPAllowed(tt.registry, named); got != tt.want {
			t.Errorf("PlainHTTPAllowed(%q) = %v, want %v", tt.registry, got, tt.want)
		}
	}
}

func TestParseInsecureRegistries(t *testing.T) {
	got, err := ParseInsecureRegistries(" registry.lan:5000, ,10.0.0.7,[fd00::1]:5000,fd00::2 ")
	if err != nil || strings.Join(got, " ") != "registry.lan:5000 10.0.0.7 [fd00::1]:5000 fd00::2" {
		t.Errorf("got %q, %v", got, err)
	}
	for _, bad := range []string{"http://registry.lan", "registry.lan/kiln", "user@registry.lan", "registry.lan:0", "registry.lan:http", "a b", "registry.lan:99999"} {
		if _, err := ParseInsecureRegistries(bad); !errors.Is(err, ErrBadRegistryName) || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v; want ErrBadRegistryName naming it", bad, err)
		}
	}
}

// TestRegistrySchemeOfReference: the reference kiln builds for a registry is marked insecure
// (go-containerregistry may fall back to plain HTTP) exactly when the policy allows it.
func TestRegistrySchemeOfReference(t *testing.T) {
	tests := []struct {
		ref      string
		insecure []string
		want     string
	}{
		{"127.0.0.2:5000/kiln/a:1", nil, "http"}, // loopback beyond 127.0.0.1
		{"localhost/kiln/a:1", nil, "http"},
		{"registry.lan:5000/kiln/a:1", []string{"registry.lan:5000"}, "http"},
		{"registry.lan:5000/kiln/a:1", nil, "https"},
		{"ghcr.io/kiln/a:1", []string{"registry.lan"}, "https"},
	}
	for _, tt := range tests {
		r, _, err := Remote(context.Background(), tt.ref, InsecureRegistries(tt.insecure...))
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Context().Scheme(); got != tt.want {
			t.Errorf("%s with %v: scheme %s, want %s", tt.ref, tt.insecure, got, tt.want)
		}
	}
}

// recordingTransport answers every request itself (no traffic leaves the process): HTTPS as
// if the TLS handshake failed, plain HTTP with 404.
type recordingTransport struct {
	mu   sync.Mutex
	seen []string
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.seen = append(rt.seen, req.URL.Scheme+"://"+req.URL.Host+req.URL.Path)
	rt.mu.Unlock()
	if req.Body != nil {
		req.Body.Close()
	}
	if req.URL.Scheme == "https" {
		return nil, errors.New("tls: first record does not look like a TLS handshake")
	}
	return &http.Response{StatusCode: http.StatusNotFound, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: req}, nil
}

func (rt *recordingTransport) plainHTTP() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []string
	for _, s := range rt.seen {
		if strings.HasPrefix(s, "http://") {
			out = append(out, s)
		}
	}
	return out
}

// TestPullPrivateAddressNoPlainHTTP: go-containerregistry would retry a private-address
// registry over plain HTTP after a TLS failure; kiln must not, unless the registry is named.
// The transport is a fake: nothing is sent to the addresses.
func TestPullPrivateAddressNoPlainHTTP(t *testing.T) {
	for _, host := range []string{"10.1.2.3:5000", "192.168.7.7", "172.20.0.5:443", "foo.localhost:5000"} {
		rt := &recordingTransport{}
		c := newCache(t)
		_, err := c.Pull(context.Background(), host+"/kiln/a:1", WithTransport(rt))
		if err == nil {
			t.Fatalf("%s: pull succeeded", host)
		}
		if got := rt.plainHTTP(); len(got) != 0 {
			t.Errorf("%s: plain HTTP requests reached the transport: %v", host, got)
		}
		if len(rt.seen) == 0 {
			t.Errorf("%s: no HTTPS attempt either", host)
		}
		if !errors.Is(err, ErrPlainHTTPRefused) && !strings.Contains(err.Error(), "tls") {
			t.Errorf("%s: %v", host, err)
		}

		// Named insecure (flag or environment): plain HTTP is allowed.
		rt = &recordingTransport{}
		reg := strings.Split(host, ":")[0]
		_, err = c.Pull(context.Background(), host+"/kiln/a:1", WithTransport(rt), InsecureRegistries(reg))
		if err == nil {
			t.Fatalf("%s: pull from the fake succeeded", host)
		}
		if got := rt.plainHTTP(); len(got) == 0 {
			t.Errorf("%s named insecure: no plain HTTP attempt (%v)", host, rt.seen)
		}
	}
}

// TestHTTPGuard checks the transport wrapper alone.
func TestHTTPGuard(t *testing.T) {
	rt := &recordingTransport{}
	g := httpGuard{inner: rt, allow: func(h string) bool { return PlainHTTPAllowed(h, []string{"registry.lan"}) }}
	for _, u := range []string{"http://10.0.0.1:5000/v2/", "http://192.168.0.1/v2/", "http://ghcr.io/v2/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if _, err := g.RoundTrip(req); !errors.Is(err, ErrPlainHTTPRefused) || !strings.Contains(err.Error(), "-insecure-registry") {
			t.Errorf("%s: %v; want ErrPlainHTTPRefused with a hint", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:5000/v2/", "http://registry.lan:5000/v2/", "https://10.0.0.1/v2/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		g.RoundTrip(req)
	}
	if len(rt.seen) != 3 {
		t.Errorf("passed through: %v; want the loopback, the named and the HTTPS request", rt.seen)
	}
}

// TestRegistryLoopbackWithoutInsecure: a registry on loopback is reached over plain HTTP with
// no option at all.
func TestRegistryLoopbackWithoutInsecure(t *testing.T) {
	host := testutil.StartRegistry(t)
	ctx := context.Background()
	src := newCache(t)
	ref := host + "/kiln/plain:1"
	d, err := src.WriteImage(ref, testImage(t, amd64, "loopback"))
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Push(ctx, ref); err != nil {
		t.Fatal(err)
	}
	dst := newCache(t)
	if got, err := dst.Pull(ctx, ref); err != nil || got.Digest != d.Digest {
		t.Fatalf("pull: %v, %v", got.Digest, err)
	}
}
