package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kernelInitrdFiles are the files -format kernel+initrd writes for NAME.
func kernelInitrdFiles(name string) []string {
	return []string{name + "-kernel", name + "-initrd.img", name + "-cmdline"}
}

// rebuildSame builds the system YAML file again for arch, as NAME, in a new folder with the
// lock file of the build in dir (so every reference resolves to the same digest, as
// scripts/demo.sh does), and checks that the kernel, initrd and command line are the same bytes.
func (w *world) rebuildSame(t *testing.T, dir, name, arch, yml string) {
	t.Helper()
	again := t.TempDir()
	lock, err := os.ReadFile(filepath.Join(dir, name+".lock.yml"))
	if err != nil {
		t.Fatalf("the first build's lock file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(again, name+".lock.yml"), lock, 0o644); err != nil {
		t.Fatal(err)
	}
	w.must(t, w.kiln, "build", "-q", "-arch", arch, "-format", "kernel+initrd", "-dir", again, "-name", name, yml)
	if err := sameFiles(dir, again, kernelInitrdFiles(name)); err != nil {
		t.Fatalf("%s built twice: %v", yml, err)
	}
}

// sameFiles compares the files named in folders a and b byte for byte and names every one
// that differs or is missing.
func sameFiles(a, b string, names []string) error {
	var problems []error
	for _, n := range names {
		x, err := os.ReadFile(filepath.Join(a, n))
		if err != nil {
			problems = append(problems, err)
			continue
		}
		y, err := os.ReadFile(filepath.Join(b, n))
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if !bytes.Equal(x, y) {
			problems = append(problems, fmt.Errorf("%s differs: %s", n, firstDifference(x, y)))
		}
	}
	return errors.Join(problems...)
}

// firstDifference describes where two different byte strings first differ.
func firstDifference(x, y []byte) string {
	n := min(len(x), len(y))
	for i := range n {
		if x[i] != y[i] {
			return fmt.Sprintf("at byte %d of %d and %d", i, len(x), len(y))
		}
	}
	return fmt.Sprintf("one is a prefix of the other (%d and %d bytes)", len(x), len(y))
}

func TestSameFiles(t *testing.T) {
	write := func(dir string, files map[string]string) string {
		for n, body := range files {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	names := kernelInitrdFiles("minimal")
	base := map[string]string{"minimal-kernel": "KERNEL", "minimal-initrd.img": "INITRD", "minimal-cmdline": "panic=1"}
	tests := []struct {
		name    string
		b       map[string]string // changes to base for the second folder; "" deletes
		wantErr []string
		notIn   []string
	}{
		{name: "same", b: nil},
		{name: "initrd differs", b: map[string]string{"minimal-initrd.img": "INITRd"},
			wantErr: []string{"minimal-initrd.img differs: at byte 5 of 6 and 6"}, notIn: []string{"minimal-kernel", "minimal-cmdline"}},
		{name: "cmdline longer", b: map[string]string{"minimal-cmdline": "panic=1 quiet"},
			wantErr: []string{"minimal-cmdline differs: one is a prefix of the other (7 and 13 bytes)"}, notIn: []string{"minimal-kernel", "initrd"}},
		{name: "two differ", b: map[string]string{"minimal-kernel": "kernel", "minimal-cmdline": "x"},
			wantErr: []string{"minimal-kernel differs: at byte 0", "minimal-cmdline differs"}, notIn: []string{"initrd"}},
		{name: "missing", b: map[string]string{"minimal-kernel": ""},
			wantErr: []string{"minimal-kernel: no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := write(t.TempDir(), base)
			files := map[string]string{}
			for n, body := range base {
				files[n] = body
			}
			for n, body := range tt.b {
				if body == "" {
					delete(files, n)
				} else {
					files[n] = body
				}
			}
			b := write(t.TempDir(), files)
			err := sameFiles(a, b, names)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("sameFiles: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("sameFiles passed; want %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, n := range tt.notIn {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error names %q, which is the same:\n%v", n, err)
				}
			}
		})
	}
}
