package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/internal/testenv"
)

// lsMode renders a type and permission bits the way ls, cpio -tv and tar -tv do.
func lsMode(typ byte, perm int64) string {
	b := []byte("?rwxrwxrwx")
	b[0] = map[byte]byte{tar.TypeReg: '-', tar.TypeDir: 'd', tar.TypeSymlink: 'l', tar.TypeChar: 'c',
		tar.TypeBlock: 'b', tar.TypeFifo: 'p', tar.TypeLink: 'h'}[typ]
	for i := range 9 {
		if perm&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(bit int64, pos int, set, unset byte) {
		if perm&bit != 0 {
			if b[pos] == '-' {
				b[pos] = unset
			} else {
				b[pos] = set
			}
		}
	}
	special(0o4000, 3, 's', 'S')
	special(0o2000, 6, 's', 'S')
	special(0o1000, 9, 't', 'T')
	return string(b)
}

func TestLsMode(t *testing.T) {
	for _, tt := range []struct {
		typ  byte
		perm int64
		want string
	}{
		{tar.TypeDir, 0o1777, "drwxrwxrwt"},
		{tar.TypeReg, 0o4755, "-rwsr-xr-x"},
		{tar.TypeReg, 0o2644, "-rw-r-Sr--"},
		{tar.TypeChar, 0o600, "crw-------"},
	} {
		if got := lsMode(tt.typ, tt.perm); got != tt.want {
			t.Errorf("lsMode(%q, %#o) = %q, want %q", tt.typ, tt.perm, got, tt.want)
		}
	}
}

// runTool runs name with args and stdin, skipping the test when the tool is not installed.
func runTool(t *testing.T, stdin []byte, name string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		pkg := map[string]string{"bsdtar": "libarchive-tools"}[name]
		if pkg == "" {
			pkg = name
		}
		testenv.SkipOrFail(t, "%s is not on PATH (apt-get install %s), so the cross-check cannot run", name, pkg)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// listing is one line of a verbose listing: mode string, owner and name (with the link part).
type listing struct{ mode, owner, name string }

// parseListing keeps the mode (first field), owner (the ownerFields joined with "/") and the
// name part of each line; dateFields is the number of date and time fields between the size
// and the name.
func parseListing(t *testing.T, out string, ownerFields []int, sizeField, dateFields int) []listing {
	t.Helper()
	var got []listing
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		nameField := sizeField + 1 + dateFields
		if len(f) > 0 && (f[0][0] == 'c' || f[0][0] == 'b') && strings.HasSuffix(f[sizeField], ",") {
			nameField++ // "maj, min" takes two fields
		}
		if len(f) <= nameField {
			t.Fatalf("cannot parse listing line %q", line)
		}
		var owner []string
		for _, i := range ownerFields {
			owner = append(owner, f[i])
		}
		got = append(got, listing{f[0], strings.Join(owner, "/"), strings.Join(f[nameField:], " ")})
	}
	return got
}

func TestGNUCpioListsOurCpio(t *testing.T) {
	items := sampleItems()
	data := cpioBytes(t, items, WithModTime(testEpoch))
	out := runTool(t, data, "cpio", "-itv", "--quiet", "--numeric-uid-gid")
	// drwxr-xr-x   2 0        0               0 Nov 14  2023 bin
	got := parseListing(t, out, []int{2, 3}, 4, 3)
	targets := map[string]item{}
	for _, it := range items {
		targets[it.e.Name] = it
	}
	var want []listing
	for _, it := range items {
		e := it.e
		typ, mode, name := e.Typeflag, e.Mode, e.Name
		if typ == tar.TypeLink {
			first := targets[e.Linkname]
			for first.e.Typeflag == tar.TypeLink {
				first = targets[first.e.Linkname]
			}
			typ, mode = first.e.Typeflag, first.e.Mode
		}
		if typ == tar.TypeSymlink {
			name += " -> " + e.Linkname
		}
		want = append(want, listing{lsMode(typ, mode), strconv.Itoa(e.Uid) + "/" + strconv.Itoa(e.Gid), name})
	}
	if len(got) != len(want) {
		t.Fatalf("cpio lists %d entries, want %d:\n%s", len(got), len(want), out)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestGNUCpioExtractsLinks extracts with GNU cpio and checks that hard links share an inode.
func TestGNUCpioExtractsLinks(t *testing.T) {
	data := cpioBytes(t, []item{
		dir("bin", 0o755),
		withLinks(reg("bin/busybox", 0o755, "#!busybox\n"), 2),
		hardlink("bin/ls", "bin/busybox"),
		hardlink("bin/cat", "bin/busybox"),
		symlink("bin/sh", "busybox"),
	}, WithModTime(testEpoch))
	dst := t.TempDir()
	runTool(t, data, "cpio", "-idm", "--quiet", "-D", dst)
	first, err := os.Stat(filepath.Join(dst, "bin/busybox"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bin/ls", "bin/cat"} {
		fi, err := os.Stat(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(first, fi) {
			t.Errorf("%s is not a hard link to bin/busybox", name)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dst, "bin/cat")); err != nil || string(b) != "#!busybox\n" {
		t.Errorf("bin/cat holds %q, %v", b, err)
	}
	if target, err := os.Readlink(filepath.Join(dst, "bin/sh")); err != nil || target != "busybox" {
		t.Errorf("bin/sh -> %q, %v", target, err)
	}
	if !first.ModTime().Equal(testEpoch) {
		t.Errorf("mtime %v, want %v", first.ModTime(), testEpoch)
	}
}

func testTarTool(t *testing.T, tool string, args ...string) {
	items := sampleItems()
	data := tarBytes(t, items, WithModTime(testEpoch))
	out := runTool(t, data, tool, args...)
	// GNU tar: drwxr-xr-x 0/0               0 2023-11-14 22:13 bin/
	// bsdtar:  drwxr-xr-x  0 0      0           0 Nov 14  2023 bin/
	var got []listing
	if tool == "tar" {
		got = parseListing(t, out, []int{1}, 2, 2)
	} else {
		got = parseListing(t, out, []int{2, 3}, 4, 3)
	}
	var want []listing
	for _, it := range items {
		e := it.e
		name := e.Name
		switch e.Typeflag {
		case tar.TypeDir:
			name += "/"
		case tar.TypeSymlink:
			name += " -> " + e.Linkname
		case tar.TypeLink:
			name += " link to " + e.Linkname
		}
		want = append(want, listing{lsMode(e.Typeflag, e.Mode), strconv.Itoa(e.Uid) + "/" + strconv.Itoa(e.Gid), name})
	}
	if len(got) != len(want) {
		t.Fatalf("%s lists %d entries, want %d:\n%s", tool, len(got), len(want), out)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestGNUTarListsOurTar(t *testing.T) {
	testTarTool(t, "tar", "--numeric-owner", "-tvf", "-")
}

func TestBSDTarListsOurTar(t *testing.T) {
	testTarTool(t, "bsdtar", "--numeric-owner", "-tvf", "-")
}
