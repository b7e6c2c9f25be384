package runc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-os/kiln/init/console"
	"github.com/kiln-os/kiln/init/internal/testenv"
	"github.com/kiln-os/kiln/init/reaper"
)

// runcPath finds the runc binary: KILN_RUNC (the Makefile exports it, pointing at bin/runc
// after make tools), else ../../bin/runc. It needs root. Anything missing skips, or fails
// under CI.
func runcPath(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "runc run needs root (run the tests as root)")
	}
	p := os.Getenv("KILN_RUNC")
	if p == "" {
		p, _ = filepath.Abs("../../bin/runc")
	}
	if _, err := os.Stat(p); err != nil {
		testenv.SkipOrFail(t, "no runc: %v (set KILN_RUNC to a runc binary; the Makefile exports it from bin/ after make tools)", err)
	}
	return p
}

var (
	jobOnce sync.Once
	jobBin  string
	jobErr  error
)

// job builds testdata/job once, statically.
func job(t *testing.T) string {
	t.Helper()
	jobOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kiln-runc-job")
		if err != nil {
			jobErr = err
			return
		}
		jobBin = filepath.Join(dir, "job")
		cmd := exec.Command("go", "build", "-o", jobBin, "./testdata/job")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			jobErr = fmt.Errorf("build testdata/job: %w\n%s", err, out)
		}
	})
	if jobErr != nil {
		t.Fatal(jobErr)
	}
	return jobBin
}

type bundleOpts struct {
	args        []string
	optional    bool
	runtimeJSON string
}

// writeBundle makes a bundle like kiln's: `runc spec`'s default config with our command, the
// job binary in rootfs/, and runtime.json when given.
func writeBundle(t *testing.T, runc, dir string, o bundleOpts) {
	t.Helper()
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(job(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "job"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(runc, "spec", "--bundle", dir).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	s.Process.Terminal = false
	s.Process.Args = append([]string{"/job"}, o.args...)
	if o.optional {
		s.Annotations = map[string]string{"kiln.optional": "true"}
	}
	if raw, err = json.Marshal(s); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if o.runtimeJSON != "" {
		if err := os.WriteFile(filepath.Join(dir, "runtime.json"), []byte(o.runtimeJSON), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newRunner(t *testing.T, runc string, out *bytes.Buffer) *Runner {
	r := reaper.New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	logs := filepath.Join(t.TempDir(), "log")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	return &Runner{Runc: runc, Root: t.TempDir(), LogDir: logs, CgroupRoot: t.TempDir(), Console: console.New(out), Reaper: r}
}

func TestRunAll(t *testing.T) {
	runc := runcPath(t)
	tests := []struct {
		name      string
		bundles   map[string]bundleOpts
		keepGoing bool
		wantErr   string
		want      []string // console text, in this order
		also      []string // console text, in any order
		absent    []string
	}{
		{
			name:    "in order, runtime.json mkdir done first",
			bundles: map[string]bundleOpts{"000-first": {args: []string{"0"}}, "001-check": {args: []string{"stat", "/made/by/init"}, runtimeJSON: `{"mkdir": ["made/by/init"], "mounts": [], "cgroups": []}`}},
			want:    []string{"kiln-init: onboot first exited 0", "kiln-init: onboot check exited 0"},
			absent:  []string{"job out"},
		},
		{
			name:    "a failure shows the output and stops the rest",
			bundles: map[string]bundleOpts{"000-fail": {args: []string{"3"}}, "001-after": {args: []string{"0"}}},
			wantErr: "onboot fail: runc run exited with status 3",
			want:    []string{"kiln-init: onboot fail failed: runc run exited with status 3", "kiln-init: onboot fail output:", "fail: job "},
			also:    []string{"fail: job out\n", "fail: job err\n"},
			absent:  []string{"onboot after"},
		},
		{
			name:    "an optional failure goes on",
			bundles: map[string]bundleOpts{"000-fail": {args: []string{"3"}, optional: true}, "001-after": {args: []string{"0"}}},
			want:    []string{"kiln-init: onboot fail failed", "kiln-init: onboot fail is optional (kiln.optional=true); going on", "kiln-init: onboot after exited 0"},
		},
		{
			name:      "keep going runs everything and returns the failures",
			bundles:   map[string]bundleOpts{"000-a": {args: []string{"1"}}, "001-b": {args: []string{"0"}}},
			keepGoing: true,
			wantErr:   "onboot a: runc run exited with status 1",
			want:      []string{"kiln-init: onboot a failed", "kiln-init: onboot b exited 0"},
		},
		{
			name:    "a missing binary is a clear failure",
			bundles: map[string]bundleOpts{"000-nobin": {args: []string{"0"}}},
			wantErr: "onboot nobin",
			want:    []string{"kiln-init: onboot nobin failed", "kiln-init: onboot nobin output:", `exec: \"/job\": stat /job: no such file or directory`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, o := range tt.bundles {
				writeBundle(t, runc, filepath.Join(dir, name), o)
			}
			if _, ok := tt.bundles["000-nobin"]; ok {
				if err := os.Remove(filepath.Join(dir, "000-nobin", "rootfs", "job")); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			r := newRunner(t, runc, &out)
			err := r.RunAll(context.Background(), dir, "onboot", tt.keepGoing)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("RunAll: %v\n%s", err, out.String())
			}
			if tt.wantErr != "" {
				var f *Failure
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &f) {
					t.Fatalf("err = %v, want a *Failure with %q\n%s", err, tt.wantErr, out.String())
				}
			}
			got := out.String()
			at := 0
			for _, w := range tt.want {
				i := strings.Index(got[at:], w)
				if i < 0 {
					t.Fatalf("console lacks %q after position %d:\n%s", w, at, got)
				}
				at += i + len(w)
			}
			for _, a := range tt.also {
				if !strings.Contains(got, a) {
					t.Errorf("console lacks %q:\n%s", a, got)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("console has %q:\n%s", a, got)
				}
			}
		})
	}
}

func TestRunLogsAndTimeout(t *testing.T) {
	runc := runcPath(t)
	dir := t.TempDir()
	writeBundle(t, runc, filepath.Join(dir, "000-talk"), bundleOpts{args: []string{"0"}})
	writeBundle(t, runc, filepath.Join(dir, "001-hang"), bundleOpts{args: []string{"sleep"}})
	var out bytes.Buffer
	r := newRunner(t, runc, &out)
	r.Timeout = 2 * time.Second
	err := r.RunAll(context.Background(), dir, "onshutdown", true)
	if err == nil || !strings.Contains(err.Error(), "onshutdown hang: timed out: still running after 2s") {
		t.Fatalf("err = %v\n%s", err, out.String())
	}
	log, err := os.ReadFile(filepath.Join(r.LogDir, "onshutdown.talk.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "job out\n") || !strings.Contains(string(log), "job err\n") {
		t.Errorf("log: %q", log)
	}
}
