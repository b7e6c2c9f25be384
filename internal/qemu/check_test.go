package qemu

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestIsFailureLine(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{"kiln-init: step modules failed (12ms): unknown module \"x\"", true},
		{"[    1.234] kiln-init: step onboot failed (3ms): onboot a: runc run exited with status 7", true},
		{"kiln-init: boot failed: step onboot: onboot a: boom", true},
		{"kiln-init: onboot hang failed: timed out: still running after 5s", true},
		{"kiln-init: onshutdown bye failed: runc run exited with status 1", true},
		{"kiln-init: BUG: power button panicked: oops; it has stopped, the rest of the system goes on", true},
		{"kiln-init: step modules ok (3ms)", false},
		{"kiln-init: onboot hello exited 0", false},
		{"kiln-init: onboot hello output:", false},
		{"kiln-init: service crasher exited (status 3), restarting in 1s", false},
		{"hello: the step failed (a service's own output)", false},
		{"step onboot failed (not kiln-init's line)", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsFailureLine(tt.line); got != tt.want {
			t.Errorf("IsFailureLine(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}

func TestCheckConsole(t *testing.T) {
	// A console long enough that the interesting lines are far from its end.
	long := func(lines ...string) []string {
		var out []string
		out = append(out, lines...)
		for i := range 500 {
			out = append(out, fmt.Sprintf("hello: line %d", i))
		}
		return out
	}
	tests := []struct {
		name   string
		lines  []string
		want   []string
		errHas []string // "" for no error
	}{
		{
			name:  "all there, no failures",
			lines: []string{"kiln-init: step onboot ok (1ms)", "kiln-init: onboot a exited 0", "kiln-init: all services up"},
			want:  []string{"onboot a exited 0", "all services up"},
		},
		{
			name:  "an expected failure",
			lines: []string{"kiln-init: step modules failed (1ms): unknown module \"x\"", "kiln-init: all services up"},
			want:  []string{"step modules failed (", "all services up"},
		},
		{
			name:   "an unexpected step failure early in a long console",
			lines:  long("kiln-init: step cgroups failed (1ms): no cgroup2", "kiln-init: all services up"),
			want:   []string{"all services up"},
			errHas: []string{"unexpected failure on console line 1: kiln-init: step cgroups failed (1ms): no cgroup2"},
		},
		{
			name:   "a wanted line far from the end",
			lines:  long("kiln-init: onboot a exited 0"),
			want:   []string{"onboot a exited 0"},
			errHas: nil,
		},
		{
			name:   "missing line",
			lines:  []string{"kiln-init: onboot a exited 0"},
			want:   []string{"all services up"},
			errHas: []string{`no console line anywhere contains "all services up"`},
		},
		{
			name:   "out of order",
			lines:  []string{"kiln-init: all services up", "kiln-init: onboot a exited 0"},
			want:   []string{"onboot a exited 0", "all services up"},
			errHas: []string{`no console line after line 2 contains "all services up"`},
		},
		{
			name:   "two wants cannot share one line",
			lines:  []string{"kiln-init: service a started"},
			want:   []string{"service a", "started"},
			errHas: []string{`no console line after line 1 contains "started"`},
		},
		{
			name:  "every problem is listed",
			lines: []string{"kiln-init: onboot x failed: boom", "kiln-init: boot failed: step onboot: onboot x: boom"},
			want:  []string{"powering off"},
			errHas: []string{
				`no console line anywhere contains "powering off"`,
				"unexpected failure on console line 1: kiln-init: onboot x failed: boom",
				"unexpected failure on console line 2: kiln-init: boot failed: step onboot",
			},
		},
		{
			name:   "an empty want excuses nothing",
			lines:  []string{"kiln-init: step x failed (1ms): y"},
			want:   []string{""},
			errHas: []string{"unexpected failure on console line 1"},
		},
		{
			name:   "an empty console",
			lines:  nil,
			want:   []string{"starting"},
			errHas: []string{"(0 lines)", `"starting"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckConsole(tt.lines, tt.want)
			if len(tt.errHas) == 0 {
				if err != nil {
					t.Fatalf("CheckConsole: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckConsole passed; want an error with %q", tt.errHas)
			}
			for _, h := range tt.errHas {
				if !strings.Contains(err.Error(), h) {
					t.Errorf("error lacks %q:\n%v", h, err)
				}
			}
		})
	}
}

// TestConsoleTranscript: the transcript holds every line, not only the tail, and stops, saying
// so, when the console outgrows its bound.
func TestConsoleTranscript(t *testing.T) {
	c := newConsole()
	var want []string
	for i := range 3 * tailLines {
		fmt.Fprintf(c, "line %d\r\n", i)
		want = append(want, fmt.Sprintf("line %d", i))
	}
	c.Write([]byte("prompt # "))
	want = append(want, "prompt # ")
	got, complete := c.transcript()
	if !complete || !reflect.DeepEqual(got, want) {
		t.Fatalf("transcript: complete %v, %d lines, want %d lines from line 0 to the prompt", complete, len(got), len(want))
	}
	// WaitFor's matches do not take lines out of the transcript.
	if _, ok, _ := c.next(contains("line 100")); !ok {
		t.Fatal("next did not find line 100")
	}
	if got, _ := c.transcript(); len(got) != len(want) {
		t.Errorf("transcript after next: %d lines, want %d", len(got), len(want))
	}

	big := newConsole()
	chunk := strings.Repeat("x", maxLine-1) + "\n"
	for range maxTranscript/(maxLine-1) + 2 {
		big.Write([]byte(chunk))
	}
	if _, complete := big.transcript(); complete {
		t.Error("a console past maxTranscript says its transcript is complete")
	}
}

func TestVMCheckIncomplete(t *testing.T) {
	vm := &VM{console: newConsole()}
	vm.console.allCut = true
	if err := vm.Check("x"); !errors.Is(err, ErrIncomplete) {
		t.Errorf("Check on a cut transcript = %v, want ErrIncomplete", err)
	}
	vm = &VM{console: newConsole()}
	fmt.Fprintln(vm.console, "kiln-init: step onboot failed (1ms): boom")
	if err := vm.Check("all services up"); err == nil || !strings.Contains(err.Error(), "unexpected failure") {
		t.Errorf("Check = %v, want the unexpected failure", err)
	}
}
