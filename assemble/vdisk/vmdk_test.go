package vdisk

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/internal/testenv"
)

// qemu-img finds the VMDK consistent and reads it back as the raw image.
func TestVMDK(t *testing.T) {
	testenv.NeedTool(t, "qemu-img", "qemu-utils")
	raw, _ := rawImage(t, 40<<20+512, 0, 70000, 33<<20, 40<<20)
	f, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	if err := VMDK(&out, f, 40<<20+512, "disk.vmdk", []byte("id")); err != nil {
		t.Fatal(err)
	}
	v := filepath.Join(t.TempDir(), "disk.vmdk")
	if err := os.WriteFile(v, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("qemu-img", "check", v).CombinedOutput(); err != nil || !strings.Contains(string(b), "No errors were found") {
		t.Errorf("qemu-img check: %v\n%s", err, b)
	}
	info, _ := exec.Command("qemu-img", "info", v).CombinedOutput()
	if !strings.Contains(string(info), "file format: vmdk") || !strings.Contains(string(info), "create type: monolithicSparse") {
		t.Errorf("qemu-img info:\n%s", info)
	}
	if b, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "vmdk", raw, v).CombinedOutput(); err != nil {
		t.Errorf("qemu-img compare: %v\n%s", err, b)
	}
	if out.Len() > 1<<20 {
		t.Errorf("%d bytes for four data grains", out.Len())
	}
	var again bytes.Buffer
	if err := VMDK(&again, f, 40<<20+512, "disk.vmdk", []byte("id")); err != nil || !bytes.Equal(out.Bytes(), again.Bytes()) {
		t.Errorf("a second write differs (%v)", err)
	}
	if err := VMDK(&bytes.Buffer{}, f, 512, "a\"b", nil); err == nil {
		t.Error("a quote in the name was accepted")
	}
}
