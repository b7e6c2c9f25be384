package pkgbuild

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/buildkit/client"

	"github.com/kiln-os/kiln/builder"
	"github.com/kiln-os/kiln/internal/ocicache"
	"github.com/kiln-os/kiln/internal/testenv"
	"github.com/kiln-os/kiln/internal/testutil"
)

// The integration tests below talk to real buildkitd daemons (testutil.StartBuildkitd) and,
// for pushes, a real registry. Their packages copy files into scratch images, or run a static
// Go program without a shell, so that every build takes about a second.

// testCtx bounds a test's builds; it is a safety net, not an assertion.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// hostPlatform is the platform the test daemons run natively.
func hostPlatform() string {
	return platforms.Format(platforms.Normalize(platforms.DefaultSpec()))
}

// connectCounter returns an Options.Connect that connects every platform to the daemon at
// addr and counts its calls. The worker check is for the host's platform: the test daemons
// build other architectures' COPY-only images natively, with or without emulation.
func connectCounter(t *testing.T, addr string, calls *atomic.Int32) func(context.Context, string) (*client.Client, string, error) {
	return func(ctx context.Context, platform string) (*client.Client, string, error) {
		calls.Add(1)
		c, err := builder.Connect(ctx, builder.Node{Platform: hostPlatform(), Address: addr})
		if err != nil {
			return nil, "", err
		}
		t.Cleanup(func() { _ = c.Close() })
		return c, addr, nil
	}
}

// newOptions returns Options for a fresh cache in a temporary folder, with an environment
// that holds only env (no SOURCE_DATE_EPOCH unless given).
func newOptions(t *testing.T, connect func(context.Context, string) (*client.Client, string, error), env map[string]string) Options {
	t.Helper()
	cache, err := ocicache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		Cache:            cache,
		Connect:          connect,
		DefaultPlatforms: []string{hostPlatform()},
		Log:              &testLog{t: t},
		Getenv:           envOf(env),
	}
}

// testLog sends kiln's log lines to the test log and keeps them. It has no lock of its own:
// Build promises not to write to Options.Log from two goroutines at once.
type testLog struct {
	t   *testing.T
	buf bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) {
	l.buf.Write(p)
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// v1Platform parses "os/arch[/variant]".
func v1Platform(t *testing.T, s string) *v1.Platform {
	t.Helper()
	p, err := platforms.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return &v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
}

func cachedImage(t *testing.T, c *ocicache.Cache, ref, platform string) v1.Image {
	t.Helper()
	img, _, err := c.Image(ref, v1Platform(t, platform))
	if err != nil {
		t.Fatalf("%s for %s: %v", ref, platform, err)
	}
	return img
}

func layerDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// files returns the regular files of an image's file system (later layers win), by path
// without a leading slash.
func files(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				b, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				out[strings.TrimPrefix(h.Name, "/")] = string(b)
			}
		}
		_ = rc.Close()
	}
	return out
}

func configOf(t *testing.T, img v1.Image) *v1.ConfigFile {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

// names returns the references the cache names, each with its digest.
func names(t *testing.T, c *ocicache.Cache) []string {
	t.Helper()
	es, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Familiar+"@"+e.Digest.String())
	}
	return out
}

// history returns the FrontendAttrs of every finished build the daemon at addr remembers.
func history(ctx context.Context, t *testing.T, addr string) []map[string]string {
	t.Helper()
	c, err := client.New(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stream, err := c.ControlClient().ListenBuildHistory(ctx, &controlapi.BuildHistoryRequest{EarlyExit: true})
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Record != nil && ev.Record.CompletedAt != nil {
			out = append(out, ev.Record.FrontendAttrs)
		}
	}
	return out
}

// builtPlatforms returns the sorted "platform" attributes of the daemon's finished builds.
func builtPlatforms(ctx context.Context, t *testing.T, addr string) []string {
	var out []string
	for _, a := range history(ctx, t, addr) {
		out = append(out, a["platform"])
	}
	sort.Strings(out)
	return out
}

// twoPackages is a repository with package a (a file in scratch) and package b, FROM a, with
// a config and a label. Both build for three architectures.
func twoPackages(t *testing.T) *testRepo {
	return newRepo(t, map[string]string{
		"a/build.yml":  "image: a\narches: [amd64, arm64, s390x]\n",
		"a/Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
		"a/hello.txt":  "hello from a\n",
		"b/build.yml": `image: b
arches: [s390x, amd64, arm64]
config:
  capabilities: [CAP_NET_ADMIN]
labels:
  com.example.test: "yes"
`,
		"b/Dockerfile":  "FROM @pkg:../a\nARG TARGETARCH\nCOPY b-$TARGETARCH.txt /b.txt\n",
		"b/b-amd64.txt": "b on amd64\n",
		"b/b-arm64.txt": "b on arm64\n",
		"b/b-s390x.txt": "b on s390x\n",
	})
}

func TestBuildDependencyOrderCacheAndReproducibility(t *testing.T) {
	ctx := testCtx(t)
	bk := testutil.StartBuildkitd(t, testutil.BuildkitdOptions{})
	r := twoPackages(t)
	commit := r.git("rev-parse", "HEAD")
	refA, refB := r.treeRef("kiln", "a", "a"), r.treeRef("kiln", "b", "b")
	all := []string{"linux/amd64", "linux/arm64", "linux/s390x"}

	var calls atomic.Int32
	o := newOptions(t, connectCounter(t, bk.Unix, &calls), nil)
	dirs := []string{r.path("b"), r.path("a")} // b first: the build must reorder
	res, err := Build(ctx, dirs, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Ref != refA || res[1].Ref != refB {
		t.Fatalf("results %+v, want %s then %s", res, refA, refB)
	}
	for _, x := range res {
		if x.Cached || x.Pushed || !reflect.DeepEqual(x.Built, all) {
			t.Errorf("%s: Built %v, Cached %v, Pushed %v; want all three platforms built now", x.Ref, x.Built, x.Cached, x.Pushed)
		}
		if d, err := o.Cache.Resolve(x.Ref); err != nil || d.Digest != x.Digest || !d.MediaType.IsIndex() {
			t.Errorf("%s: the cache names %v (%v), want the index %s", x.Ref, d.Digest, err, x.Digest)
		}
	}
	if n := calls.Load(); n != 6 {
		t.Errorf("Connect was called %d times, want 6 (3 platforms, 2 packages)", n)
	}

	// The index lists the three platforms, sorted, each child an image of its platform.
	idx, err := o.Cache.Index(refB)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			t.Fatalf("index child %s has no platform", m.Digest)
		}
		listed = append(listed, m.Platform.String())
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if cf := configOf(t, img); cf.OS != m.Platform.OS || cf.Architecture != m.Platform.Architecture {
			t.Errorf("child %s: config says %s/%s", m.Platform, cf.OS, cf.Architecture)
		}
	}
	if !reflect.DeepEqual(listed, all) {
		t.Errorf("index lists %v, want %v", listed, all)
	}

	// b's image is a's layer plus its own, with its labels.
	for _, pl := range all {
		imgA, imgB := cachedImage(t, o.Cache, refA, pl), cachedImage(t, o.Cache, refB, pl)
		la, lb := layerDigests(t, imgA), layerDigests(t, imgB)
		if len(la) != 1 || len(lb) != 2 || lb[0] != la[0] {
			t.Errorf("%s: a has layers %v, b %v; want b = a's layer + one", pl, la, lb)
		}
		arch := v1Platform(t, pl).Architecture
		want := map[string]string{"hello.txt": "hello from a\n", "b.txt": "b on " + arch + "\n"}
		if got := files(t, imgB); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: b's files %v, want %v", pl, got, want)
		}
		labels := configOf(t, imgB).Config.Labels
		wantLabels := map[string]string{
			LabelRevision:      commit,
			LabelConfig:        `{"capabilities":["CAP_NET_ADMIN"]}`,
			"com.example.test": "yes",
		}
		if !reflect.DeepEqual(labels, wantLabels) {
			t.Errorf("%s: b's labels %v, want %v", pl, labels, wantLabels)
		}
		cfA := configOf(t, imgA)
		if cfA.Config.Labels[LabelRevision] != commit || cfA.Config.Labels[LabelConfig] != "" {
			t.Errorf("%s: a's labels %v, want the revision and no config", pl, cfA.Config.Labels)
		}
		if !cfA.Created.Equal(time.Unix(commitEpoch, 0)) {
			t.Errorf("%s: a created %v, want the commit time %v", pl, cfA.Created.Time, time.Unix(commitEpoch, 0).UTC())
		}
	}

	// Built again: everything is cached, and no builder is even contacted.
	calls.Store(0)
	again, err := Build(ctx, dirs, o)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range again {
		if !x.Cached || len(x.Built) != 0 || x.Digest != res[i].Digest {
			t.Errorf("second build of %s: Cached %v, Built %v, digest %s; want cached %s", x.Ref, x.Cached, x.Built, x.Digest, res[i].Digest)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("a build of cached packages called Connect %d times", n)
	}

	// Forced: built again from scratch (no BuildKit cache), to the same digests.
	o.Force = true
	forced, err := Build(ctx, dirs, o)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range forced {
		if x.Cached || !reflect.DeepEqual(x.Built, all) || x.Digest != res[i].Digest {
			t.Errorf("forced build of %s: Cached %v, Built %v, digest %s; want all rebuilt to %s", x.Ref, x.Cached, x.Built, x.Digest, res[i].Digest)
		}
	}

	// A new daemon (no BuildKit state) and an empty cache give the same digests.
	bk2 := testutil.StartBuildkitd(t, testutil.BuildkitdOptions{})
	var calls2 atomic.Int32
	o2 := newOptions(t, connectCounter(t, bk2.Unix, &calls2), nil)
	fresh, err := Build(ctx, dirs, o2)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range fresh {
		if x.Cached || x.Digest != res[i].Digest {
			t.Errorf("clean build of %s: Cached %v, digest %s; want built to %s", x.Ref, x.Cached, x.Digest, res[i].Digest)
		}
	}
	want := []string{"linux/amd64", "linux/amd64", "linux/arm64", "linux/arm64", "linux/s390x", "linux/s390x"}
	if got := builtPlatforms(ctx, t, bk2.Unix); !reflect.DeepEqual(got, want) {
		t.Errorf("the new daemon ran builds for %v, want %v", got, want)
	}
}

func TestBuildSourceDateEpochFromEnvironment(t *testing.T) {
	ctx := testCtx(t)
	bk := testutil.StartBuildkitd(t, testutil.BuildkitdOptions{})
	r := newRepo(t, map[string]string{
		"p/build.yml":  "image: p\n",
		"p/Dockerfile": "FROM scratch\nCOPY f /f\n",
		"p/f":          "f\n",
	})
	const epoch = 1700000000
	t.Setenv("SOURCE_DATE_EPOCH", strconv.Itoa(epoch))
	var calls atomic.Int32
	o := newOptions(t, connectCounter(t, bk.Unix, &calls), nil)
	o.Getenv = nil // the process environment
	res, err := Build(ctx, []string{r.path("p")}, o)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res[0].Built, []string{hostPlatform()}) {
		t.Errorf("Built %v, want the default platform %s", res[0].Built, hostPlatform())
	}
	cf := configOf(t, cachedImage(t, o.Cache, res[0].Ref, hostPlatform()))
	if !cf.Created.Equal(time.Unix(epoch, 0)) {
		t.Errorf("created %v, want SOURCE_DATE_EPOCH %v", cf.Created.Time, time.Unix(epoch, 0).UTC())
	}

	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	o.Force = true
	if _, err := Build(ctx, []string{r.path("p")}, o); err == nil || !strings.Contains(err.Error(), `SOURCE_DATE_EPOCH="yesterday"`) {
		t.Errorf("Build with a bad SOURCE_DATE_EPOCH: %v, want an error naming it", err)
	}
}

// buildProbe compiles testdata/probe for the host, statically.
func buildProbe(t *testing.T, out string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		testenv.SkipOrFail(t, "no go command on PATH to build the probe: %v", err)
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", out, "./testdata/probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the probe: %v\n%s", err, b)
	}
}

func TestBuildIsHermeticUnlessNetwork(t *testing.T) {
	ctx := testCtx(t)
	bk := testutil.StartBuildkitd(t, testutil.BuildkitdOptions{})
	arch := v1Platform(t, hostPlatform()).Architecture
	r := newRepo(t, map[string]string{
		"probe/build.yml":  "image: probe\narches: [" + arch + "]\n",
		"probe/Dockerfile": "FROM scratch\nCOPY probe /probe\n",
		"sealed/build.yml": "image: sealed\nbuildArgs: [PROBE_ADDR]\n",
		"sealed/Dockerfile": `FROM @pkg:../probe
ARG PROBE_ADDR
RUN ["/probe"]
`,
		"open/build.yml":  "image: open\nnetwork: true\nbuildArgs: [PROBE_ADDR]\n",
		"open/Dockerfile": "FROM @pkg:../probe\nARG PROBE_ADDR\nRUN [\"/probe\"]\n",
	})
	// The probe is not committed: a dirty tree builds too (only pushing refuses it).
	buildProbe(t, r.path("probe/probe"))

	// A listener on the host's loopback: RUN steps share the host's network (the daemon
	// runs with --oci-worker-net=host) unless the build cuts it off.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_ = c.Close()
		}
	}()

	var calls atomic.Int32
	o := newOptions(t, connectCounter(t, bk.Unix, &calls), map[string]string{"PROBE_ADDR": l.Addr().String()})
	res, err := Build(ctx, []string{r.path("sealed"), r.path("probe")}, o)
	if err != nil {
		t.Fatal(err)
	}
	if got := files(t, cachedImage(t, o.Cache, res[1].Ref, hostPlatform()))["result"]; got != "isolated\n" {
		t.Errorf("the RUN step of a package without network: true says %q, want isolated", got)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the hermetic build reached the host %d times", n)
	}
	var sealedAttrs map[string]string
	for _, a := range history(ctx, t, bk.Unix) {
		if a["build-arg:PROBE_ADDR"] != "" {
			sealedAttrs = a
		}
	}
	if sealedAttrs["force-network-mode"] != "none" {
		t.Errorf("the daemon got force-network-mode=%q for the hermetic build, want none", sealedAttrs["force-network-mode"])
	}

	res, err = Build(ctx, []string{r.path("open")}, o)
	if err != nil {
		t.Fatal(err)
	}
	// The probe package comes first: open needs it (it is cached, so not built again).
	if len(res) != 2 || !res[0].Cached {
		t.Fatalf("Build(open) = %+v, want the cached probe dependency, then open", res)
	}
	if got := files(t, cachedImage(t, o.Cache, res[1].Ref, hostPlatform()))["result"]; got != "connected\n" {
		t.Errorf("the RUN step of a package with network: true says %q, want connected", got)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("the networked build reached the host %d times, want once", n)
	}
}

func TestBuildDockerfileErrors(t *testing.T) {
	ctx := testCtx(t)
	bk := testutil.StartBuildkitd(t, testutil.BuildkitdOptions{})
	tests := []struct {
		name     string
		yml      string
		df       string
		line     int
		contains string
	}{
		{
			name:     "unknown instruction",
			yml:      "image: bad\n",
			df:       "FROM scratch\nCOPY f /f\nBOGUS x\n",
			line:     3,
			contains: "BOGUS",
		},
		{
			name:     "missing COPY source",
			yml:      "image: bad\n",
			df:       "FROM scratch\nCOPY f /f\nCOPY missing.txt /m\n",
			line:     3,
			contains: "missing.txt",
		},
		{
			name:     "one platform of two fails",
			yml:      "image: bad\narches: [amd64, arm64]\n",
			df:       "FROM scratch\nARG TARGETARCH\nCOPY only-$TARGETARCH /x\n",
			line:     3,
			contains: "only-arm64",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t, map[string]string{
				"good/build.yml":  "image: good\n",
				"good/Dockerfile": "FROM scratch\nCOPY f /f\n",
				"good/f":          "f\n",
				"bad/build.yml":   tc.yml,
				"bad/Dockerfile":  tc.df,
				"bad/f":           "f\n",
				"bad/only-amd64":  "amd64\n",
			})
			var calls atomic.Int32
			o := newOptions(t, connectCounter(t, bk.Unix, &calls), nil)
			o.Platforms = []string{"linux/amd64", "linux/arm64"}
			if _, err := Build(ctx, []string{r.path("good")}, o); err != nil {
				t.Fatal(err)
			}
			before := names(t, o.Cache)
			_, err := Build(ctx, []string{r.path("bad")}, o)
			t.Logf("the error: %v", err)
			var se *builder.SourceError
			if !errors.As(err, &se) {
				t.Fatalf("Build() error = %v (%T), want a *builder.SourceError", err, err)
			}
			if se.File != r.path("bad/Dockerfile") || se.Line != tc.line {
				t.Errorf("SourceError at %s:%d, want %s:%d", se.File, se.Line, r.path("bad/Dockerfile"), tc.line)
			}
			if !strings.Contains(err.Error(), tc.contains) || !strings.Contains(err.Error(), r.path("bad/Dockerfile")+":"+strconv.Itoa(tc.line)+":") {
				t.Errorf("error %q does not name %s:%d and %q", err, r.path("bad/Dockerfile"), tc.line, tc.contains)
			}
			if after := names(t, o.Cache); !reflect.DeepEqual(after, before) {
				t.Errorf("a failed build changed the cache's names from %v to %v", before, after)
			}
		})
	}
}

func TestBuildPushRefusesDirtyTree(t *testing.T) {
	r := newRepo(t, map[string]string{
		"p/build.yml":  "image: p\n",
		"p/Dockerfile": "FROM scratch\nCOPY f /f\n",
		"p/f":          "committed\n",
	})
	r.write("p/f", "changed\n")
	var calls atomic.Int32
	connect := func(context.Context, string) (*client.Client, string, error) {
		calls.Add(1)
		return nil, "", errors.New("no builder in this test")
	}
	o := newOptions(t, connect, nil)
	o.Push = true
	_, err := Build(testCtx(t), []string{r.path("p")}, o)
	if err == nil || !strings.Contains(err.Error(), "uncommitted changes") || !strings.Contains(err.Error(), "-dirty-") {
		t.Fatalf("Build(Push) of a dirty package: %v, want a refusal naming the dirty tag and the uncommitted changes", err)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the refused build called Connect %d times", n)
	}
	if got := names(t, o.Cache); len(got) != 0 {
		t.Errorf("the refused build named %v in the cache", got)
	}
}
