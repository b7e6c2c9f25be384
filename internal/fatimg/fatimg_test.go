package fatimg

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/internal/testenv"
)

func image(t *testing.T, label string, files []File) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, label, files); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "drive.img")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b.Bytes()
}

func out(t *testing.T, name string, args ...string) string {
	t.Helper()
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
	return string(b)
}

// The image is a FAT file system that dosfstools finds clean and mtools reads back: long
// names, an exact 8.3 name, an empty file, a file of several clusters; the label and the
// volume ID are what the boot sector says.
func TestImageReadBack(t *testing.T) {
	testenv.NeedTool(t, "fsck.fat", "dosfstools")
	testenv.NeedTool(t, "mtype", "mtools")
	big := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16000 bytes: 4 clusters
	files := []File{
		{"user-data", []byte("#cloud-config\nhostname: x\n")},
		{"meta-data", []byte("instance-id: i-1\nlocal-hostname: node\n")},
		{"network-config", []byte("version: 2\n")},
		{"README.TXT", []byte("exact 8.3\n")},
		{"empty", nil},
		{"a-rather-long-file-name-of-forty-characters.yaml", big},
	}
	img, data := image(t, "cidata", files)
	if got := out(t, "fsck.fat", "-n", "-v", img); !strings.Contains(got, "12 bit entries") {
		t.Errorf("fsck.fat:\n%s", got)
	}
	if got := out(t, "mlabel", "-s", "-i", img, "::"); !strings.Contains(got, "CIDATA") {
		t.Errorf("label: %s", got)
	}
	for _, f := range files {
		got := out(t, "mtype", "-i", img, "::"+f.Name)
		if got != string(f.Data) {
			t.Errorf("%s: read back %d bytes, want %d", f.Name, len(got), len(f.Data))
		}
	}
	list := out(t, "mdir", "-b", "-i", img, "::")
	for _, f := range files {
		if !strings.Contains(list, f.Name) {
			t.Errorf("mdir lacks %q:\n%s", f.Name, list)
		}
	}
	// Same input, same bytes; any change of content changes the volume ID too.
	_, again := image(t, "cidata", []File{files[5], files[4], files[3], files[2], files[1], files[0]})
	if !bytes.Equal(data, again) {
		t.Error("the same files in another order gave other bytes")
	}
	files[0].Data = []byte("#cloud-config\nhostname: y\n")
	_, other := image(t, "cidata", files)
	if bytes.Equal(data[0x27:0x2B], other[0x27:0x2B]) {
		t.Error("the volume ID does not depend on the content")
	}
}

func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		label string
		files []File
		want  string
	}{
		{"", nil, "want 1 to 11 characters"},
		{"twelve-chars", nil, "want 1 to 11 characters"},
		{"ci data", nil, "only letters, digits"},
		{"ıııı", nil, "only letters, digits"},
		{"cidata", []File{{"a/b", nil}}, "FAT file names cannot hold"},
		{"cidata", []File{{"dot.", nil}}, "FAT file names cannot hold"},
		{"cidata", []File{{"Meta", nil}, {"meta", nil}}, `"meta" appears twice`},
		{"cidata", []File{{"huge", make([]byte, MaxData+1)}}, "a config drive holds at most"},
	} {
		if err := Write(&bytes.Buffer{}, tc.label, tc.files); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %d files: %v, want %q", tc.label, len(tc.files), err, tc.want)
		}
	}
}

// Many short names that collide get distinct ~N aliases, all readable.
func TestShortNameCollisions(t *testing.T) {
	testenv.NeedTool(t, "mtype", "mtools")
	var files []File
	for _, n := range []string{"config-one", "config-two", "config-three", "config-four", "config-five", "config-six", "config-seven", "config-eight", "config-nine", "config-ten"} {
		files = append(files, File{n, []byte(n)})
	}
	img, _ := image(t, "data", files)
	for _, f := range files {
		if got := out(t, "mtype", "-i", img, "::"+f.Name); got != f.Name {
			t.Errorf("%s: %q", f.Name, got)
		}
	}
}
