package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	solvererrdefs "github.com/moby/buildkit/solver/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"
)

// LayoutName is the name under which a build sees the kiln cache as an OCI layout:
// named contexts are "oci-layout://kiln@sha256:...".
const LayoutName = "kiln"

// Request is one build: one package for one platform, with BuildKit's Dockerfile frontend.
type Request struct {
	// Name says what is built in errors, e.g. "kiln/hello:0123abcd for linux/arm64".
	Name string
	// ContextDir is the build context folder.
	ContextDir string
	// Dockerfile is the Dockerfile's text, as the frontend must see it (kiln has already
	// replaced "@pkg:" references). DockerfileName is its path for messages.
	Dockerfile     []byte
	DockerfileName string
	// Platform is the target platform, "linux/arm64".
	Platform string
	// BuildArgs are Dockerfile ARG values; Labels are added to the image config.
	BuildArgs map[string]string
	Labels    map[string]string
	// Contexts maps an image name as a FROM line writes it (familiar form) to the digest of
	// the index or manifest in Layout that stands for it: BuildKit resolves these names from
	// the layout instead of a registry.
	Contexts map[string]digest.Digest
	// Layout is the OCI layout folder (the kiln cache) holding the Contexts, read-only.
	Layout string
	// Locals are named contexts from folders on this machine: a Dockerfile reads them with
	// COPY --from=NAME or RUN --mount=type=bind,from=NAME (e.g. the Go module context).
	Locals map[string]string
	// Network lets RUN steps reach the network; without it they get none.
	Network bool
	// NoCache builds every step again.
	NoCache bool
	// Epoch is SOURCE_DATE_EPOCH: image times and, with timestamp rewriting, every file time
	// in the layers are clamped to it, so the same sources give the same digest.
	Epoch int64
}

// FrontendAttrs returns the Dockerfile frontend options for r. It is what makes a build
// hermetic and reproducible, so it is kept apart from the session plumbing and tested alone.
func (r *Request) FrontendAttrs() map[string]string {
	a := map[string]string{
		"filename": "Dockerfile",
		"platform": r.Platform,
		// The image's creation time and the frontend's own file times come from here.
		"build-arg:SOURCE_DATE_EPOCH": strconv.FormatInt(r.Epoch, 10),
	}
	if !r.Network {
		a["force-network-mode"] = "none"
	}
	if r.NoCache {
		a["no-cache"] = ""
	}
	for k, v := range r.BuildArgs {
		a["build-arg:"+k] = v
	}
	for k, v := range r.Labels {
		a["label:"+k] = v
	}
	for name, d := range r.Contexts {
		a["context:"+name] = "oci-layout://" + LayoutName + "@" + d.String()
	}
	for name := range r.Locals {
		a["context:"+name] = "local:" + name
	}
	return a
}

// ExporterAttrs returns the OCI exporter options: rewrite every layer's file times to the
// epoch (this re-creates layers whose times differ, so two clean builds agree), OCI media
// types, gzip.
func (r *Request) ExporterAttrs() map[string]string {
	return map[string]string{
		"rewrite-timestamp": "true",
		"source-date-epoch": strconv.FormatInt(r.Epoch, 10),
		"oci-mediatypes":    "true",
		"compression":       "gzip",
	}
}

// Solve runs r on c and streams the result, an OCI image layout tar holding one image
// manifest, to out. Progress goes to status, which Solve closes when it returns (status may
// be nil). A Dockerfile error comes back with the file name, line and the offending lines.
func Solve(ctx context.Context, c *client.Client, r Request, out io.Writer, status chan *client.SolveStatus) error {
	if status == nil {
		status = make(chan *client.SolveStatus)
		go func() {
			for range status {
			}
		}()
	}
	opt, cleanup, err := r.solveOpt(out)
	if err != nil {
		close(status)
		return err
	}
	defer cleanup()
	if _, err := c.Solve(ctx, nil, opt, status); err != nil {
		return DockerfileError(r.DockerfileName, err)
	}
	return nil
}

// solveOpt builds the session side of the solve: the context and Dockerfile folders, the
// kiln cache as an OCI store, and the exporter writing to out.
func (r *Request) solveOpt(out io.Writer) (client.SolveOpt, func(), error) {
	dfDir, err := os.MkdirTemp("", "kiln-dockerfile-")
	if err != nil {
		return client.SolveOpt{}, nil, err
	}
	cleanup := func() { os.RemoveAll(dfDir) }
	fail := func(err error) (client.SolveOpt, func(), error) {
		cleanup()
		return client.SolveOpt{}, nil, err
	}
	if err := os.WriteFile(filepath.Join(dfDir, "Dockerfile"), r.Dockerfile, 0o644); err != nil {
		return fail(err)
	}
	ctxFS, err := fsutil.NewFS(r.ContextDir)
	if err != nil {
		return fail(fmt.Errorf("build context %s: %w", r.ContextDir, err))
	}
	dfFS, err := fsutil.NewFS(dfDir)
	if err != nil {
		return fail(err)
	}
	opt := client.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: r.FrontendAttrs(),
		LocalMounts:   map[string]fsutil.FS{"context": ctxFS, "dockerfile": dfFS},
		Exports: []client.ExportEntry{{
			Type:  client.ExporterOCI,
			Attrs: r.ExporterAttrs(),
			Output: func(map[string]string) (io.WriteCloser, error) {
				return nopWriteCloser{out}, nil
			},
		}},
		// Registry credentials from the usual config file, for FROM lines that are not in the
		// kiln cache; a hermetic package has none.
		Session: []session.Attachable{authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{})},
	}
	for name, dir := range r.Locals {
		fs, err := fsutil.NewFS(dir)
		if err != nil {
			return fail(fmt.Errorf("context %s: %w", name, err))
		}
		opt.LocalMounts[name] = fs
	}
	if len(r.Contexts) > 0 {
		opt.OCIStores = map[string]content.Store{LayoutName: layoutStore{root: r.Layout}}
	}
	return opt, cleanup, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// DockerfileError turns BuildKit's error into one a user can act on: when BuildKit points at
// lines of the Dockerfile, the message starts with "FILE:LINE:" and quotes those lines.
func DockerfileError(name string, err error) error {
	for _, s := range solvererrdefs.Sources(err) {
		if s.Info == nil || len(s.Ranges) == 0 {
			continue
		}
		file := s.Info.Filename
		if file == "" || file == "Dockerfile" {
			file = name
		}
		var nums []int
		for _, rg := range s.Ranges {
			for l := rg.Start.Line; l <= rg.End.Line && l > 0; l++ {
				nums = append(nums, int(l))
			}
		}
		if len(nums) == 0 {
			continue
		}
		sort.Ints(nums)
		lines := bytes.Split(s.Info.Data, []byte("\n"))
		var quote strings.Builder
		last := 0
		for _, n := range nums {
			if n == last || n > len(lines) {
				continue
			}
			last = n
			fmt.Fprintf(&quote, "\n  %4d | %s", n, lines[n-1])
		}
		return &SourceError{File: file, Line: nums[0], Quote: quote.String(), Err: err}
	}
	return err
}

// SourceError is a build error that points at lines of a Dockerfile.
type SourceError struct {
	File  string
	Line  int
	Quote string // the lines, numbered, each on its own line
	Err   error
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("%s:%d: %v%s", e.File, e.Line, e.Err, e.Quote)
}

func (e *SourceError) Unwrap() error { return e.Err }
