package vdisk

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/internal/testenv"
)

// rawImage is a sparse disk of size bytes with data at the given offsets (a cluster's start,
// its middle, the last sector, across an L2 table's 512 MiB boundary).
func rawImage(t *testing.T, size int64, at ...int64) (string, []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for i, off := range at {
		b := bytes.Repeat([]byte{byte(i + 1)}, 512)
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	return p, nil
}

func TestQCOW2(t *testing.T) {
	testenv.NeedTool(t, "qemu-img", "qemu-utils")
	for _, tc := range []struct {
		name string
		size int64
		at   []int64
	}{
		{"empty", 1 << 20, nil},
		{"small", 3<<20 + 512, []int64{0, 70000, 3 << 20}},
		{"two L2 tables", 1200 << 20, []int64{512, 512<<20 - 512, 512 << 20, 1100 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, _ := rawImage(t, tc.size, tc.at...)
			q := filepath.Join(t.TempDir(), "disk.qcow2")
			toQCOW2(t, raw, q, 1<<20)
			out, err := os.ReadFile(q)
			if err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command("qemu-img", "check", q).CombinedOutput(); err != nil || !strings.Contains(string(b), "No errors were found") {
				t.Errorf("qemu-img check: %v\n%s", err, b)
			}
			if b, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, q).CombinedOutput(); err != nil {
				t.Errorf("qemu-img compare: %v\n%s", err, b)
			}
			info, _ := exec.Command("qemu-img", "info", q).CombinedOutput()
			if !strings.Contains(string(info), "file format: qcow2") || !strings.Contains(string(info), "compat: 1.1") {
				t.Errorf("qemu-img info:\n%s", info)
			}
			// As small as its content: the tables and one 64 KiB cluster per data block.
			if max := int64(len(tc.at)+8) * qcowCluster; int64(len(out)) > max {
				t.Errorf("%d bytes for %d data blocks", len(out), len(tc.at))
			}
			// Written in odd pieces, the raw image makes the same bytes.
			again := filepath.Join(t.TempDir(), "again.qcow2")
			toQCOW2(t, raw, again, 4097)
			if b, err := os.ReadFile(again); err != nil || !bytes.Equal(out, b) {
				t.Errorf("a second conversion, in 4097-byte writes, differs (%v)", err)
			}
		})
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "odd.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	q := NewQCOW2Writer(f)
	if _, err := q.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err == nil || !strings.Contains(err.Error(), "not a whole number of sectors") {
		t.Errorf("odd size: %v", err)
	}
}

// toQCOW2 writes the raw image at raw to a QCOW2Writer, in writes of chunk bytes, that makes
// the image at q.
func toQCOW2(t *testing.T, raw, q string, chunk int) {
	t.Helper()
	in, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(q)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w := NewQCOW2Writer(out)
	if _, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{in}, make([]byte, chunk)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDataClustersSkipsHoles: a sparse file's holes are skipped, and the clusters found are
// those its bytes say, whatever the file system stores: written zeros count as zeros.
func TestDataClustersSkipsHoles(t *testing.T) {
	const cluster = 64 << 10
	f, err := os.Create(filepath.Join(t.TempDir(), "sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := int64(200 * cluster)
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		off  int64
		data []byte
	}{
		{3 * cluster, []byte("data")},
		{50*cluster - 2, []byte("across two clusters")},
		{100 * cluster, make([]byte, 3*cluster)}, // allocated, all zero
		{size - 1, []byte{1}},
	} {
		if _, err := f.WriteAt(w.data, w.off); err != nil {
			t.Fatal(err)
		}
	}
	content, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := dataClusters(f, size, cluster)
	if err != nil {
		t.Fatal(err)
	}
	fromBytes, err := dataClusters(bytes.NewReader(content), size, cluster)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{3, 49, 50, 199}
	if !slices.Equal(fromFile, want) || !slices.Equal(fromBytes, want) {
		t.Errorf("data clusters: from the file %v, from its bytes %v; want %v", fromFile, fromBytes, want)
	}
}
