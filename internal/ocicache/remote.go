package ocicache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

type remoteConfig struct {
	insecureAll bool
	insecure    []string // registries named insecure: "host" or "host:port"
	platforms   []v1.Platform
	keychain    authn.Keychain
	transport   http.RoundTripper
}

// RemoteOption configures Pull and Push.
type RemoteOption func(*remoteConfig)

// Insecure lets this call speak plain HTTP to whatever registry its reference names. It is
// for programs and tests that chose the registry themselves; users name registries with
// InsecureRegistries (the -insecure-registry flag, KILN_INSECURE_REGISTRIES).
func Insecure() RemoteOption {
	return func(c *remoteConfig) { c.insecureAll = true }
}

// InsecureRegistries names registries ("host" for any port, or "host:port") that may be
// spoken to over plain HTTP. Registries on loopback (127.0.0.0/8, ::1, localhost) always may;
// any other registry is spoken to over HTTPS only, whatever its address.
func InsecureRegistries(hosts ...string) RemoteOption {
	return func(c *remoteConfig) { c.insecure = append(c.insecure, hosts...) }
}

// WithPlatforms makes Pull store only the children of an index that match one of ps. The index
// manifest itself is stored unchanged, so its digest stays the registry's; the other
// platforms are simply absent. Without it, Pull keeps the whole index.
func WithPlatforms(ps ...v1.Platform) RemoteOption {
	return func(c *remoteConfig) { c.platforms = append(c.platforms, ps...) }
}

// WithKeychain replaces authn.DefaultKeychain.
func WithKeychain(k authn.Keychain) RemoteOption {
	return func(c *remoteConfig) { c.keychain = k }
}

// WithTransport replaces the HTTP transport. Plain-HTTP requests that the registry policy
// refuses never reach it.
func WithTransport(t http.RoundTripper) RemoteOption {
	return func(c *remoteConfig) { c.transport = t }
}

// EnvInsecureRegistries names the environment variable that lists, comma separated, the
// registries kiln may reach over plain HTTP (like repeated -insecure-registry flags).
const EnvInsecureRegistries = "KILN_INSECURE_REGISTRIES"

// ErrPlainHTTPRefused is wrapped by the error of a plain-HTTP request to a registry that is
// neither on loopback nor named insecure.
var ErrPlainHTTPRefused = errors.New("plain HTTP refused")

// ErrBadRegistryName is wrapped by errors about an entry of an insecure-registry list that is
// not "host" or "host:port".
var ErrBadRegistryName = errors.New("not a registry host[:port]")

// ParseInsecureRegistries splits a comma-separated list ("host1,host2:5000"; blanks and
// empty items ignored) and checks every entry.
func ParseInsecureRegistries(list string) ([]string, error) {
	var out []string
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if err := CheckRegistryHost(item); err != nil {
			return nil, err
		}
		out = append(out, item)
	}
	return out, nil
}

// CheckRegistryHost accepts "host" or "host:port" (an IPv6 address in brackets when it has a
// port), as registries appear in image references; no scheme, path or credentials.
func CheckRegistryHost(s string) error {
	bad := func(why string) error {
		return fmt.Errorf("insecure registry %q: %w: %s; write it as it appears in image references, such as registry.lan:5000",
			s, ErrBadRegistryName, why)
	}
	switch {
	case s == "":
		return bad("it is empty")
	case strings.Contains(s, "://"):
		return bad("give no scheme")
	case strings.ContainsAny(s, "/@?# \t"):
		return bad("give no path, user or spaces")
	}
	host, port := splitRegistry(s)
	if host == "" {
		return bad("no host")
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return bad("the port is not a number from 1 to 65535")
		}
	}
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return bad("not a host name or IP address")
	}
	return nil
}

// splitRegistry splits "host:port", "[v6]:port", "v6", "host" into a lower-case host (no
// brackets) and a port ("" when none).
func splitRegistry(s string) (host, port string) {
	s = strings.ToLower(s)
	if h, p, err := net.SplitHostPort(s); err == nil {
		return strings.Trim(h, "[]"), p
	}
	if net.ParseIP(strings.Trim(s, "[]")) != nil {
		return strings.Trim(s, "[]"), ""
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[:i], ":") {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// isLoopback reports whether host is localhost or a loopback IP (127.0.0.0/8, ::1).
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// PlainHTTPAllowed is the transport policy: whether kiln may speak plain HTTP to registry
// ("host" or "host:port", as in a reference or a request URL). Only loopback registries
// (127.0.0.0/8, ::1, localhost) and those named in insecure ("host" matches every port,
// "host:port" that port) may; every other registry, private addresses included, gets HTTPS
// only.
func PlainHTTPAllowed(registry string, insecure []string) bool {
	host, port := splitRegistry(registry)
	if host == "" {
		return false
	}
	if isLoopback(host) {
		return true
	}
	for _, e := range insecure {
		eh, ep := splitRegistry(strings.TrimSpace(e))
		if eh == host && (ep == "" || ep == port) {
			return true
		}
	}
	return false
}

// allowHTTP applies the policy to one call's options.
func (rc *remoteConfig) allowHTTP(registry string) bool {
	return rc.insecureAll || PlainHTTPAllowed(registry, rc.insecure)
}

// parse reads a reference; the registry is marked insecure (go-containerregistry then falls
// back to plain HTTP) exactly when the policy allows it.
func (rc *remoteConfig) parse(ref string) (name.Reference, error) {
	r, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	if rc.allowHTTP(r.Context().RegistryStr()) {
		return parseRef(ref, name.Insecure)
	}
	return r, nil
}

// httpGuard refuses plain-HTTP requests to hosts the policy does not allow before they leave
// the machine. go-containerregistry tries plain HTTP after HTTPS fails for registries with
// private addresses (10/8, 172.16/12, 192.168/16) or names ending in .localhost; this keeps it
// from doing so.
type httpGuard struct {
	inner http.RoundTripper
	allow func(host string) bool
}

func (g httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL != nil && strings.EqualFold(req.URL.Scheme, "http") && !g.allow(req.URL.Host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("%w to %s: kiln speaks plain HTTP only to loopback registries and those named with -insecure-registry %s or %s",
			ErrPlainHTTPRefused, req.URL.Host, req.URL.Host, EnvInsecureRegistries)
	}
	return g.inner.RoundTrip(req)
}

func (rc *remoteConfig) options(ctx context.Context) []remote.Option {
	inner := rc.transport
	if inner == nil {
		inner = remote.DefaultTransport
	}
	t := httpGuard{inner: inner, allow: rc.allowHTTP}
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(rc.keychain), remote.WithTransport(t)}
}

func (c *Cache) remoteConfig(opts []RemoteOption) *remoteConfig {
	rc := &remoteConfig{keychain: authn.DefaultKeychain}
	rc.insecure = append(rc.insecure, c.insecure...)
	for _, o := range opts {
		o(rc)
	}
	return rc
}

// Remote returns ref parsed and the go-containerregistry options that carry the cache's
// transport policy (plain HTTP only to loopback and named registries), authentication and
// ctx, for callers that talk to a registry themselves with the remote package.
func (c *Cache) Remote(ctx context.Context, ref string, opts ...RemoteOption) (name.Reference, []remote.Option, error) {
	return Remote(ctx, ref, append(append([]RemoteOption{}, InsecureRegistries(c.insecure...)), opts...)...)
}

// Remote is Cache.Remote without a cache: only opts name insecure registries.
func Remote(ctx context.Context, ref string, opts ...RemoteOption) (name.Reference, []remote.Option, error) {
	rc := &remoteConfig{keychain: authn.DefaultKeychain}
	for _, o := range opts {
		o(rc)
	}
	r, err := rc.parse(ref)
	if err != nil {
		return nil, nil, err
	}
	return r, rc.options(ctx), nil
}

// Pull fetches an image or index from its registry into the cache and names it ref. An index
// is kept whole (every platform) unless WithPlatforms narrows it.
func (c *Cache) Pull(ctx context.Context, ref string, opts ...RemoteOption) (v1.Descriptor, error) {
	rc := c.remoteConfig(opts)
	r, err := rc.parse(ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	unlock, err := c.readLock()
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer unlock()
	rd, err := remote.Get(r, rc.options(ctx)...)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("pulling %s: %w", Familiar(r.Name()), err)
	}
	var d v1.Descriptor
	switch {
	case rd.MediaType.IsIndex():
		idx, err := rd.ImageIndex()
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("pulling %s: %w", Familiar(r.Name()), err)
		}
		var keep func(v1.Descriptor) bool
		if len(rc.platforms) > 0 {
			im, err := idx.IndexManifest()
			if err != nil {
				return v1.Descriptor{}, fmt.Errorf("pulling %s: %w", Familiar(r.Name()), err)
			}
			keep = func(d v1.Descriptor) bool {
				if d.MediaType.IsIndex() {
					return true
				}
				for _, p := range rc.platforms {
					if platformMatches(p, d.Platform) {
						return true
					}
				}
				return false
			}
			n := 0
			for _, child := range im.Manifests {
				if keep(child) {
					n++
				}
			}
			if n == 0 {
				var want []string
				for _, p := range rc.platforms {
					want = append(want, p.String())
				}
				return v1.Descriptor{}, fmt.Errorf("pulling %s: %w: no %s image; it has: %s", Familiar(r.Name()),
					ErrNotFound, strings.Join(want, ", "), strings.Join(availablePlatforms(im), ", "))
			}
		}
		if d, err = c.writeIndex(idx, keep); err != nil {
			return v1.Descriptor{}, fmt.Errorf("pulling %s: %w", Familiar(r.Name()), err)
		}
	case rd.MediaType.IsImage():
		img, err := rd.Image()
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("pulling %s: %w", Familiar(r.Name()), err)
		}
		if d, err = c.writeImage(img); err != nil {
			return v1.Descriptor{}, fmt.Errorf("pulling %s: %w", Familiar(r.Name()), err)
		}
	default:
		return v1.Descriptor{}, fmt.Errorf("pulling %s: unsupported media type %s", Familiar(r.Name()), rd.MediaType)
	}
	if d.Digest != rd.Digest {
		return v1.Descriptor{}, fmt.Errorf("%w: pulling %s: registry said %s, content is %s", ErrCorrupt, Familiar(r.Name()), rd.Digest, d.Digest)
	}
	if err := c.tag(r, d); err != nil {
		return v1.Descriptor{}, err
	}
	return d, nil
}

// Push uploads the image or index named ref to its registry. An index is pushed with every
// child; a child missing from the cache (a platform-filtered pull) makes it fail.
func (c *Cache) Push(ctx context.Context, ref string, opts ...RemoteOption) error {
	rc := c.remoteConfig(opts)
	r, err := rc.parse(ref)
	if err != nil {
		return err
	}
	unlock, err := c.readLock()
	if err != nil {
		return err
	}
	defer unlock()
	d, err := c.resolve(ref)
	if err != nil {
		return fmt.Errorf("pushing: %w", err)
	}
	switch {
	case d.MediaType.IsIndex():
		idx, err := c.index(d)
		if err != nil {
			return fmt.Errorf("pushing %s: %w", Familiar(r.Name()), err)
		}
		if err := remote.WriteIndex(r, idx, rc.options(ctx)...); err != nil {
			return fmt.Errorf("pushing %s: %w", Familiar(r.Name()), err)
		}
	case d.MediaType.IsImage():
		img, err := c.image(d)
		if err != nil {
			return fmt.Errorf("pushing %s: %w", Familiar(r.Name()), err)
		}
		if err := remote.Write(r, img, rc.options(ctx)...); err != nil {
			return fmt.Errorf("pushing %s: %w", Familiar(r.Name()), err)
		}
	default:
		return fmt.Errorf("pushing %s: unsupported media type %s", Familiar(r.Name()), d.MediaType)
	}
	return nil
}
