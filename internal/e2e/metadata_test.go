package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-os/kiln/internal/fatimg"
	"github.com/kiln-os/kiln/internal/qemu"
)

// TestMetadataBoots boots testdata/metadata.yml on amd64 with a NoCloud config drive written by
// internal/fatimg (as `kiln run qemu -data` writes it) on a virtio disk: services/metadata, an
// onboot container, reads the drive with go-diskfs in the guest and writes /run/config, the
// command line's fields first (kiln.instance_id), the drive's for the rest; the console shell
// reads the files back.
func TestMetadataBoots(t *testing.T) {
	w := setup(t)
	w.pkgBuild(t, minimalPackages...)
	w.must(t, w.kiln, "pkg", "build", "-progress", "plain", "-platforms", "linux/amd64", "services/metadata")
	out := t.TempDir()
	w.must(t, w.kiln, "build", "-arch", "amd64", "-format", "kernel+initrd", "-dir", out, "-name", "metadata",
		"internal/e2e/testdata/metadata.yml")
	var drive bytes.Buffer
	err := fatimg.Write(&drive, "cidata", []fatimg.File{
		{Name: "meta-data", Data: []byte("instance-id: from-drive\nlocal-hostname: e2e-node\npublic-keys:\n  - ssh-ed25519 E2EKEY\n")},
		{Name: "user-data", Data: []byte(`{"motd": {"content": "written from the drive\n"}}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(out, "cidata.img")
	if err := os.WriteFile(img, drive.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	vm, typer := startVMWith(t, filepath.Join(out, "metadata"), "amd64", qemu.Disk{Path: img, Format: "raw", ReadOnly: true})
	want := []string{
		"metadata: wrote /run/config from cmdline,cidata", // onboot output, on the console as it comes
		"kiln-init: onboot metadata exited 0",
		"kiln-init: all services up",
	}
	for _, l := range want {
		waitLine(t, vm, l)
	}
	typeUntil(t, vm, typer, "cat /run/config/hostname /run/config/instance_id /run/config/provider /run/config/motd /run/config/ssh/authorized_keys /var/log/onboot.metadata.log", "e2e-node")
	want = append(want, "e2e-node")
	for _, l := range []string{"from-cmdline", "cmdline,cidata", "written from the drive", "ssh-ed25519 E2EKEY",
		"wrote /run/config from cmdline,cidata"} { // the log file has the line as the program wrote it
		waitLine(t, vm, l)
		want = append(want, l)
	}
	typeUntil(t, vm, typer, "kill -TERM 1", "kiln-init: powering off")
	waitExit(t, vm)
	checkConsole(t, vm, append(want, "kiln-init: powering off"))
}
