package pkgbuild

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/moby/buildkit/client"

	"github.com/kiln-os/kiln/builder"
	"github.com/kiln-os/kiln/internal/testutil"
)

// remoteDigest returns the digest the registry serves for ref, or the error (a 404 is a
// *transport.Error with StatusCode 404).
func remoteDigest(ctx context.Context, t *testing.T, ref string) (v1.Hash, error) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r, remote.WithContext(ctx))
	if err != nil {
		return v1.Hash{}, err
	}
	return d.Digest, nil
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// childDigests returns the platform images of the cached index ref, by platform.
func childDigests(t *testing.T, o Options, ref string) map[string]v1.Hash {
	t.Helper()
	idx, err := o.Cache.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]v1.Hash{}
	for _, m := range im.Manifests {
		out[m.Platform.String()] = m.Digest
	}
	return out
}

func TestBuildPushAndManifest(t *testing.T) {
	ctx := testCtx(t)
	bk := testutil.StartBuildkitd(t, testutil.BuildkitdOptions{})
	reg := testutil.StartRegistry(t)
	r := newRepo(t, map[string]string{
		"p/build.yml":  "image: p\norg: " + reg + "/kiln\narches: [amd64, arm64]\n",
		"p/Dockerfile": "FROM scratch\nARG TARGETARCH\nCOPY f /f-$TARGETARCH\n",
		"p/f":          "f\n",
	})
	ref := r.treeRef(reg+"/kiln", "p", "p")
	var calls atomic.Int32
	o := newOptions(t, connectCounter(t, bk.Unix, &calls), nil)
	o.Push = true

	// Only amd64 first, as a builder of one architecture would.
	o.Platforms = []string{"linux/amd64"}
	res, err := Build(ctx, []string{r.path("p")}, o)
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Pushed || res[0].Ref != ref {
		t.Fatalf("result %+v, want %s pushed", res[0], ref)
	}
	children := childDigests(t, o, ref)
	if d, err := remoteDigest(ctx, t, ref); err != nil || d != res[0].Digest {
		t.Errorf("the registry has %s as %v (%v), want the cached index %s", ref, d, err, res[0].Digest)
	}
	if d, err := remoteDigest(ctx, t, ref+"-amd64"); err != nil || d != children["linux/amd64"] {
		t.Errorf("the registry has %s-amd64 as %v (%v), want the amd64 image %s", ref, d, err, children["linux/amd64"])
	}
	if _, err := remoteDigest(ctx, t, ref+"-arm64"); !isNotFound(err) {
		t.Errorf("%s-arm64 before arm64 was built: %v, want not found", ref, err)
	}

	// The index cannot be assembled while a platform of the package's arches is missing.
	var log bytes.Buffer
	err = Manifest(ctx, []string{r.path("p")}, nil, &log)
	if err == nil || !strings.Contains(err.Error(), "not in the registry: "+ref+"-arm64;") {
		t.Fatalf("Manifest() with arm64 missing: %v, want \"not in the registry: %s-arm64\"", err, ref)
	}

	// The rest: amd64 is cached, only arm64 is built; both are pushed again.
	o.Platforms = nil
	calls.Store(0)
	res, err = Build(ctx, []string{r.path("p")}, o)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res[0].Built, []string{"linux/arm64"}) || calls.Load() != 1 {
		t.Errorf("Built %v with %d connections, want only linux/arm64 with one", res[0].Built, calls.Load())
	}
	full := res[0].Digest
	children = childDigests(t, o, ref)
	for pl, want := range map[string]string{"linux/amd64": "-amd64", "linux/arm64": "-arm64"} {
		if d, err := remoteDigest(ctx, t, ref+want); err != nil || d != children[pl] {
			t.Errorf("the registry has %s%s as %v (%v), want %s", ref, want, d, err, children[pl])
		}
	}

	// Manifest assembles the index from the REF-<arch> images: the same index kiln built.
	log.Reset()
	if err := Manifest(ctx, []string{r.path("p")}, nil, &log); err != nil {
		t.Fatal(err)
	}
	if d, err := remoteDigest(ctx, t, ref); err != nil || d != full {
		t.Errorf("after Manifest the registry has %s as %v (%v), want %s", ref, d, err, full)
	}
	if !strings.Contains(log.String(), "linux/amd64, linux/arm64") {
		t.Errorf("Manifest's log %q does not list the platforms", log.String())
	}
}

func TestBuildOnRemoteTLSNode(t *testing.T) {
	ctx := testCtx(t)
	certs, err := builder.GenerateCerts(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	far := testutil.StartBuildkitd(t, testutil.BuildkitdOptions{TLSDir: certs.Dir, TCP: true})
	near := testutil.StartBuildkitd(t, testutil.BuildkitdOptions{})
	r := newRepo(t, map[string]string{
		"p/build.yml":  "image: p\narches: [amd64, arm64]\n",
		"p/Dockerfile": "FROM scratch\nARG TARGETARCH\nCOPY f /f-$TARGETARCH\n",
		"p/f":          "f\n",
	})

	// connectVia sends the platforms nodes name to their node (mutual TLS), the others to the
	// local daemon, the way kiln's command does.
	connectVia := func(nodes []builder.Node) func(context.Context, string) (*client.Client, string, error) {
		return func(ctx context.Context, platform string) (*client.Client, string, error) {
			n, ok := builder.FindNode(nodes, platform)
			if !ok {
				n = builder.Node{Platform: hostPlatform(), Address: near.Unix}
			}
			// The "remote" daemon runs on this machine: its workers need not list arm64
			// (that takes binfmt_misc emulation), and COPY-only arm64 builds need none. Check
			// the node for the host's platform; the address and TLS files are the node's.
			n.Platform = hostPlatform()
			c, err := builder.Connect(ctx, n)
			if err != nil {
				return nil, "", err
			}
			t.Cleanup(func() { _ = c.Close() })
			return c, n.Address, nil
		}
	}

	nodes, err := builder.ParseNodes("linux/arm64="+far.TCP, certs.Dir)
	if err != nil {
		t.Fatal(err)
	}
	o := newOptions(t, connectVia(nodes), nil)
	res, err := Build(ctx, []string{r.path("p")}, o)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res[0].Built, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("Built %v, want amd64 and arm64", res[0].Built)
	}
	if got := builtPlatforms(ctx, t, far.Unix); !reflect.DeepEqual(got, []string{"linux/arm64"}) {
		t.Errorf("the TLS node built %v, want only linux/arm64", got)
	}
	if got := builtPlatforms(ctx, t, near.Unix); !reflect.DeepEqual(got, []string{"linux/amd64"}) {
		t.Errorf("the local daemon built %v, want only linux/amd64", got)
	}
	if got := childDigests(t, o, res[0].Ref); len(got) != 2 {
		t.Errorf("index children %v, want amd64 and arm64", got)
	}
	logged := o.Log.(*testLog).buf.String()
	for _, want := range []string{"building for linux/arm64 on " + far.TCP, "building for linux/amd64 on " + near.Unix} {
		if !strings.Contains(logged, want) {
			t.Errorf("the log does not say %q:\n%s", want, logged)
		}
	}

	// A node that does not answer fails the build, and the package gets no name in the cache.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	nodes, err = builder.ParseNodes("linux/arm64=tcp://"+closed, certs.Dir)
	if err != nil {
		t.Fatal(err)
	}
	o = newOptions(t, connectVia(nodes), nil)
	_, err = Build(ctx, []string{r.path("p")}, o)
	if !errors.Is(err, builder.ErrUnreachable) || !strings.Contains(err.Error(), closed) {
		t.Fatalf("Build() with an unreachable node: %v, want builder.ErrUnreachable naming %s", err, closed)
	}
	if got := names(t, o.Cache); len(got) != 0 {
		t.Errorf("after the failed build the cache names %v, want nothing", got)
	}
}
