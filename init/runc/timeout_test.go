package runc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"90s", 90 * time.Second, ""},
		{" 5m", 0, "is not a duration"},
		{"1h30m", 90 * time.Minute, ""},
		{"0", 0, ""},
		{"", 0, "is not a duration"},
		{"soon", 0, `"soon" is not a duration`},
		{"300", 0, "is not a duration"},
		{"-1s", 0, "is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTimeout(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTimeout(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseTimeout(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestTimeoutErrorMessage(t *testing.T) {
	tests := []struct {
		err  TimeoutError
		want string
	}{
		{TimeoutError{Limit: 5 * time.Minute, Source: "the limit for onboot containers"},
			"timed out: still running after 5m0s (the limit for onboot containers); stopped with SIGTERM"},
		{TimeoutError{Limit: 2 * time.Second, Source: "its kiln.onboot.timeout annotation", Grace: 10 * time.Second},
			"timed out: still running after 2s (its kiln.onboot.timeout annotation); killed with SIGKILL after SIGTERM did not stop it within 10s"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q\nwant      %q", got, tt.want)
		}
	}
}

// annotate adds annotations to the config.json of the bundle in dir.
func annotate(t *testing.T, dir string, a map[string]string) {
	t.Helper()
	path := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	for k, v := range a {
		s.Annotations[k] = v
	}
	if raw, err = json.Marshal(s); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRunTimeout runs hung onboot containers under time limits: the container gets SIGTERM at
// its limit and SIGKILL after the grace period, the failure says so, a container's annotation
// replaces the runner's limit, and an optional container's timeout lets the rest run.
func TestRunTimeout(t *testing.T) {
	runc := runcPath(t)
	const (
		first = "000-hang"
		after = "001-after"
	)
	tests := []struct {
		name        string
		limit       time.Duration // the runner's
		args        []string
		annotations map[string]string
		optional    bool
		wantErr     string // "" for success; else in the error and the console's failed line
		killed      bool   // SIGKILL was needed
		want        []string
		absent      []string
		maxTime     time.Duration // for the whole RunAll
	}{
		{
			name:    "SIGTERM at the limit stops it",
			limit:   3 * time.Second,
			args:    []string{"trap"},
			wantErr: "onboot hang: timed out: still running after 3s (the limit for onboot containers); stopped with SIGTERM",
			want: []string{
				"kiln-init: onboot hang failed: timed out: still running after 3s (the limit for onboot containers); stopped with SIGTERM",
				"kiln-init: onboot hang output:", "hang: job waiting", "hang: job got TERM",
			},
			absent:  []string{"onboot after"},
			maxTime: 20 * time.Second,
		},
		{
			name:    "SIGKILL after the grace when SIGTERM is ignored",
			limit:   2 * time.Second,
			args:    []string{"ignore-term"},
			wantErr: "timed out: still running after 2s (the limit for onboot containers); killed with SIGKILL after SIGTERM did not stop it within 1s",
			killed:  true,
			want:    []string{"kiln-init: onboot hang failed: timed out", "hang: job ignoring TERM"},
			absent:  []string{"onboot after"},
			maxTime: 20 * time.Second,
		},
		{
			name:        "the annotation sets a limit where the runner has none",
			limit:       0,
			args:        []string{"sleep"},
			annotations: map[string]string{AnnotationOnbootTimeout: "2s"},
			wantErr:     "timed out: still running after 2s (its kiln.onboot.timeout annotation)",
			want:        []string{"kiln-init: onboot hang failed: timed out: still running after 2s (its kiln.onboot.timeout annotation)"},
			maxTime:     20 * time.Second,
		},
		{
			name:        "the annotation lifts the runner's limit",
			limit:       time.Second,
			args:        []string{"nap", "3s"},
			annotations: map[string]string{AnnotationOnbootTimeout: "0"},
			want:        []string{"kiln-init: onboot hang exited 0", "kiln-init: onboot after exited 0"},
			absent:      []string{"timed out"},
			maxTime:     30 * time.Second,
		},
		{
			name:        "a bad annotation is reported and the runner's limit used",
			limit:       2 * time.Second,
			args:        []string{"sleep"},
			annotations: map[string]string{AnnotationOnbootTimeout: "soon"},
			wantErr:     "timed out: still running after 2s (the limit for onboot containers)",
			want: []string{
				`kiln-init: onboot hang: annotation kiln.onboot.timeout: "soon" is not a duration`,
				"kiln-init: onboot hang failed: timed out",
			},
			maxTime: 20 * time.Second,
		},
		{
			name:     "an optional container's timeout lets the boot go on",
			limit:    2 * time.Second,
			args:     []string{"sleep"},
			optional: true,
			want: []string{
				"kiln-init: onboot hang failed: timed out: still running after 2s",
				"kiln-init: onboot hang is optional (kiln.optional=true); going on",
				"kiln-init: onboot after exited 0",
			},
			maxTime: 20 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeBundle(t, runc, filepath.Join(dir, first), bundleOpts{args: tt.args, optional: tt.optional})
			if tt.annotations != nil {
				annotate(t, filepath.Join(dir, first), tt.annotations)
			}
			writeBundle(t, runc, filepath.Join(dir, after), bundleOpts{args: []string{"0"}})
			var out bytes.Buffer
			r := newRunner(t, runc, &out)
			r.Timeout, r.TimeoutAnnotation, r.Grace = tt.limit, AnnotationOnbootTimeout, time.Second
			start := time.Now()
			err := r.RunAll(context.Background(), dir, "onboot", false)
			took := time.Since(start)
			got := out.String()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("RunAll: %v\n%s", err, got)
				}
			} else {
				var f *Failure
				var te *TimeoutError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &f) || !errors.As(err, &te) {
					t.Fatalf("err = %v, want a *Failure wrapping a *TimeoutError with %q\n%s", err, tt.wantErr, got)
				}
				if (te.Grace > 0) != tt.killed {
					t.Errorf("killed after the grace = %v, want %v", te.Grace > 0, tt.killed)
				}
			}
			at := 0
			for _, w := range tt.want {
				i := strings.Index(got[at:], w)
				if i < 0 {
					t.Fatalf("console lacks %q after position %d:\n%s", w, at, got)
				}
				at += i + len(w)
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("console has %q:\n%s", a, got)
				}
			}
			if took > tt.maxTime {
				t.Errorf("RunAll took %s, want at most %s", took, tt.maxTime)
			}
			// Nothing of the container is left in runc's state.
			if ents, err := os.ReadDir(r.Root); err != nil || len(ents) != 0 {
				t.Errorf("runc state left behind: %v %v", ents, err)
			}
		})
	}
}
