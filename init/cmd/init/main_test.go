package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The binary tells its roles apart by argv[0]. Only arguments that never signal PID 1 are
// used here: the test must not power off the machine it runs on.
func TestArgv0Dispatch(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "init")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, name := range []string{"poweroff", "reboot"} {
		if err := os.Symlink("init", filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"init", nil, 2, "kiln-init: must run as PID 1"},
		{"poweroff", []string{"--help"}, 0, "usage: poweroff [-f]"},
		{"reboot", []string{"-h"}, 0, "usage: reboot [-f]"},
		{"reboot", []string{"now"}, 2, `reboot: unknown argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			cmd := exec.Command(filepath.Join(dir, tt.name), tt.args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.code, tt.stderr)
			}
		})
	}
}
