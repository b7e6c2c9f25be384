package boot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiln-os/kiln/init/console"
)

// fakeClock advances 7ms on every reading, so that step timings are known exactly.
func fakeClock() func() time.Time {
	t := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		t = t.Add(7 * time.Millisecond)
		return t
	}
}

// Real steps that work in a temp dir: each writes a file, and one needs an earlier one's.
func fileSteps(dir string) map[string]func(context.Context, *State) error {
	write := func(name string) func(context.Context, *State) error {
		return func(context.Context, *State) error {
			return os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644)
		}
	}
	return map[string]func(context.Context, *State) error{
		"a": write("a"),
		"b": write("b"),
		"c": write("c"),
		"needs-a": func(context.Context, *State) error {
			_, err := os.Stat(filepath.Join(dir, "a"))
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "after-a"), nil, 0o644)
		},
		"broken": func(context.Context, *State) error {
			return os.Mkdir(filepath.Join(dir, "no/such/parent"), 0o755)
		},
		"panics": func(context.Context, *State) error {
			panic("step broke")
		},
	}
}

func TestRunnerWithFakeClock(t *testing.T) {
	tests := []struct {
		name        string
		steps       []string
		policies    map[string]Policy
		ignoreFatal bool
		wantFiles   []string
		wantLines   []string
		wantErrStep string
	}{
		{
			name:      "all ok, in order",
			steps:     []string{"a", "needs-a", "b"},
			wantFiles: []string{"a", "after-a", "b"},
			wantLines: []string{"step a ok (7ms)", "step needs-a ok (7ms)", "step b ok (7ms)"},
		},
		{
			name:        "fatal failure stops the boot",
			steps:       []string{"a", "broken", "b"},
			wantFiles:   []string{"a"},
			wantLines:   []string{"step a ok (7ms)", "step broken failed (7ms): mkdir"},
			wantErrStep: "broken",
		},
		{
			name:      "continue failure goes on",
			steps:     []string{"a", "broken", "b"},
			policies:  map[string]Policy{"broken": Continue},
			wantFiles: []string{"a", "b"},
			wantLines: []string{"step a ok (7ms)", "step broken failed (7ms): mkdir", "step b ok (7ms)"},
		},
		{
			name:        "a panic is a failure of its step",
			steps:       []string{"panics", "a"},
			wantLines:   []string{"step panics failed (7ms): step panics panicked: step broke"},
			wantErrStep: "panics",
		},
		{
			name:        "kiln.onfail=continue runs the rest and still reports the failure",
			steps:       []string{"broken", "a", "c"},
			ignoreFatal: true,
			wantFiles:   []string{"a", "c"},
			wantLines: []string{"step broken failed (7ms): mkdir", "step broken is needed, but going on (kiln.onfail=continue)",
				"step a ok (7ms)", "step c ok (7ms)"},
			wantErrStep: "broken",
		},
		{
			name:        "order matters: a step that needs an earlier one fails without it",
			steps:       []string{"needs-a", "a"},
			wantLines:   []string{"step needs-a failed (7ms): stat "},
			wantErrStep: "needs-a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			funcs := fileSteps(dir)
			var steps []Step
			for _, n := range tt.steps {
				steps = append(steps, Step{Name: n, Policy: tt.policies[n], Run: funcs[n]})
			}
			var out bytes.Buffer
			r := &Runner{Console: console.New(&out), Now: fakeClock(), IgnoreFatal: tt.ignoreFatal}
			err := r.Run(context.Background(), &State{}, steps)

			var serr *StepError
			switch {
			case tt.wantErrStep == "" && err != nil:
				t.Fatalf("Run: %v", err)
			case tt.wantErrStep != "" && (!errors.As(err, &serr) || serr.Step != tt.wantErrStep):
				t.Fatalf("Run = %v, want a StepError for %s", err, tt.wantErrStep)
			}
			// Only kiln-init's own lines: a panic's stack follows its line unprefixed.
			var lines []string
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(l, "kiln-init: ") {
					lines = append(lines, l)
				}
			}
			if len(lines) != len(tt.wantLines) {
				t.Fatalf("output:\n%s\nwant %d lines", out.String(), len(tt.wantLines))
			}
			for i, want := range tt.wantLines {
				if !strings.HasPrefix(lines[i], "kiln-init: "+want) {
					t.Errorf("line %d = %q, want it to start with %q", i, lines[i], "kiln-init: "+want)
				}
			}
			ents, _ := os.ReadDir(dir)
			var files []string
			for _, e := range ents {
				files = append(files, e.Name())
			}
			if !reflect.DeepEqual(files, tt.wantFiles) {
				t.Errorf("files %q, want %q", files, tt.wantFiles)
			}
		})
	}
}

// With the real clock the marker still has the exact form the boot tests look for.
func TestRunnerMarkerFormat(t *testing.T) {
	var out bytes.Buffer
	r := &Runner{Console: console.New(&out)}
	dir := t.TempDir()
	if err := r.Run(context.Background(), &State{}, []Step{{Name: "a", Run: fileSteps(dir)["a"]}}); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^kiln-init: step a ok \([0-9]+ms\)\n$`).MatchString(out.String()) {
		t.Fatalf("marker %q", out.String())
	}
}

func TestRunnerStopsWhenInterrupted(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	ran := []string{}
	steps := []Step{
		{Name: "first", Run: func(context.Context, *State) error { ran = append(ran, "first"); cancel(); return nil }},
		{Name: "second", Run: func(context.Context, *State) error { ran = append(ran, "second"); return nil }},
	}
	err := (&Runner{Console: console.New(&out)}).Run(ctx, &State{}, steps)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "before step second") {
		t.Fatalf("err = %v", err)
	}
	if !reflect.DeepEqual(ran, []string{"first"}) {
		t.Fatalf("ran %q", ran)
	}
}

func TestRunnerDebugShowsStarts(t *testing.T) {
	var out bytes.Buffer
	con := console.New(&out)
	con.SetDebug(true)
	err := (&Runner{Console: con, Now: fakeClock()}).Run(context.Background(), &State{}, []Step{{Name: "a", Run: fileSteps(t.TempDir())["a"]}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "kiln-init: step a starting\nkiln-init: step a ok (7ms)\n"; out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}

// The system's step list: unique names, and the order the boot needs.
func TestSystemOrder(t *testing.T) {
	var names []string
	seen := map[string]bool{}
	for _, s := range System() {
		if seen[s.Name] || s.Run == nil {
			t.Errorf("step %q is repeated or has no function", s.Name)
		}
		seen[s.Name] = true
		names = append(names, s.Name)
	}
	want := []string{"initramfs", "switch-root", "mount", "cmdline", "cgroups", "modules", "power-button", "loopback", "hostname", "rootfs", "onboot", "containerd", "services"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("steps %q\nwant %q", names, want)
	}
}
