package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/services/metadata/internal/testenv"
)

// need stops the test when a tool (name -> Debian package) is missing.
func need(t *testing.T, tools map[string]string) {
	t.Helper()
	for tool, pkg := range tools {
		testenv.NeedTool(t, tool, pkg)
	}
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// makeFAT makes a FAT image labelled label holding files (name -> content; "dir/name" makes
// the folder), with mkfs.vfat and mtools (no mount).
func makeFAT(t *testing.T, label string, files map[string]string, fat32 bool) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fat.img")
	args := []string{"-C", "-n", label, img, "2048"}
	if fat32 {
		args = []string{"-C", "-F", "32", "-n", label, img, "40000"}
	}
	sh(t, "mkfs.vfat", args...)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	src := t.TempDir()
	made := map[string]bool{}
	for _, n := range names {
		if d := filepath.Dir(n); d != "." {
			parts := strings.Split(d, "/")
			for i := range parts {
				p := strings.Join(parts[:i+1], "/")
				if !made[p] {
					sh(t, "mmd", "-i", img, "::"+p)
					made[p] = true
				}
			}
		}
		f := filepath.Join(src, strings.ReplaceAll(n, "/", "_"))
		if err := os.WriteFile(f, []byte(files[n]), 0o644); err != nil {
			t.Fatal(err)
		}
		sh(t, "mcopy", "-i", img, f, "::"+n)
	}
	return img
}

// makeISO makes an ISO9660 image (Joliet and Rock Ridge, as cloud-init's docs make them).
func makeISO(t *testing.T, label string, files map[string]string) string {
	t.Helper()
	src := t.TempDir()
	for n, body := range files {
		p := filepath.Join(src, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "drive.iso")
	sh(t, "xorriso", "-as", "mkisofs", "-quiet", "-V", label, "-J", "-R", "-o", img, src)
	return img
}

var noCloud = map[string]string{
	"meta-data": "instance-id: iid-7\nlocal-hostname: drive-node\npublic-keys:\n  - ssh-ed25519 KEY1\n",
	"user-data": "#cloud-config\n",
}

var openStack = map[string]string{
	"openstack/latest/meta_data.json": `{"uuid": "os-uuid", "hostname": "os-node", "public_keys": {"k": "ssh-rsa OSKEY"}}`,
	"openstack/latest/user_data":      `{"motd": {"content": "from config-2\n"}}`,
}

// The labels of real images: ISO9660 (as xorriso writes it) and FAT12 and FAT32 (as
// mkfs.vfat writes them); a file that is neither has none.
func TestProbeLabels(t *testing.T) {
	need(t, map[string]string{"mkfs.vfat": "dosfstools", "mcopy": "mtools", "xorriso": "xorriso"})
	for _, tc := range []struct {
		img, fstype, label string
	}{
		{makeISO(t, "cidata", noCloud), "iso9660", "cidata"},
		{makeFAT(t, "CIDATA", noCloud, false), "vfat", "CIDATA"},
		{makeFAT(t, "config-2", openStack, true), "vfat", "config-2"},
	} {
		fstype, label, err := probe(tc.img)
		if err != nil || fstype != tc.fstype || label != tc.label {
			t.Errorf("%s: %q %q %v, want %q %q", tc.img, fstype, label, err, tc.fstype, tc.label)
		}
	}
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, make([]byte, 70000), 0o644); err != nil {
		t.Fatal(err)
	}
	if fstype, _, err := probe(plain); fstype != "" || err != nil {
		t.Errorf("zeros: %q, %v", fstype, err)
	}
}

// Config drives made by the tools people make them with (the device is read like a file, so an
// image file stands for the block device): an ISO9660 NoCloud drive, a FAT32 config-2 drive
// whose user data is a tree, a FAT12 NoCloud drive missing its meta-data (broken: reported and
// skipped), and the command line before them all.
func TestConfigDrives(t *testing.T) {
	need(t, map[string]string{"mkfs.vfat": "dosfstools", "mcopy": "mtools", "xorriso": "xorriso"})
	iso := makeISO(t, "cidata", noCloud)
	cfg2 := makeFAT(t, "config-2", openStack, true)
	env := quiet(t)
	env.Devices = []string{iso, cfg2}
	params, err := ParseParams("kiln.hostname=cmdline-node")
	if err != nil {
		t.Fatal(err)
	}
	c := Gather(context.Background(), env, params)
	if c.Hostname != "cmdline-node" || c.InstanceID != "iid-7" || !slices.Equal(c.SSHKeys, []string{"ssh-ed25519 KEY1"}) ||
		string(c.UserData) != "#cloud-config\n" || c.Provider != "cmdline,cidata" {
		t.Errorf("cidata: %+v", c)
	}
	params, _ = ParseParams("kiln.metadata=config-2")
	c = Gather(context.Background(), env, params)
	if c.Hostname != "os-node" || c.InstanceID != "os-uuid" || !slices.Equal(c.SSHKeys, []string{"ssh-rsa OSKEY"}) {
		t.Errorf("config-2: %+v", c)
	}
	out := filepath.Join(t.TempDir(), "config")
	if warns, err := Write(out, c); err != nil || len(warns) != 0 {
		t.Fatal(err, warns)
	}
	if b, err := os.ReadFile(filepath.Join(out, "motd")); err != nil || string(b) != "from config-2\n" {
		t.Errorf("tree from config-2 user data: %q, %v", b, err)
	}

	broken := makeFAT(t, "cidata", map[string]string{"user-data": "x"}, false)
	env.Devices = []string{broken}
	var logged []string
	env.Log = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)); t.Logf(f, a...) }
	params, _ = ParseParams("kiln.hostname=still-boots kiln.metadata=cidata")
	c = Gather(context.Background(), env, params)
	if c.Hostname != "still-boots" || len(logged) != 1 || !strings.Contains(logged[0], "meta-data") {
		t.Errorf("broken drive: %+v, logged %q", c, logged)
	}
	// A FAT12 NoCloud drive that is whole, as `mkfs.vfat -n cidata` makes small ones.
	env.Devices = []string{makeFAT(t, "cidata", noCloud, false)}
	params, _ = ParseParams("kiln.metadata=cidata")
	if c = Gather(context.Background(), env, params); c.InstanceID != "iid-7" || c.Hostname != "drive-node" {
		t.Errorf("FAT12 cidata: %+v", c)
	}
}
