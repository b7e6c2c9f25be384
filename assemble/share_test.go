package assemble

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// sharedYAML has three containers (one per section) of one image, two of them naming it by
// another tag; a fourth image used once; and a fifth with the same files as the first but
// another config, so another digest.
const sharedYAML = `kernel:
  image: kiln/test-kernel:v1
init:
  - kiln/test-init:v1
onboot:
  - name: setup
    image: kiln/test-app:v1
    command: ["/bin/app", "setup"]
onshutdown:
  - name: bye
    image: kiln/test-app:alias
    readonly: true
services:
  - name: app
    image: kiln/test-app:v1
    runtime:
      mkdir: ["var/lib/app"]
  - name: solo
    image: kiln/test-solo:v1
  - name: twin
    image: kiln/test-twin:v1
`

// seedSharedCache is seedCache plus the images sharedYAML needs; it returns the digest of
// kiln/test-app:v1.
func seedSharedCache(t *testing.T) (string, func() Options) {
	t.Helper()
	c := seedCache(t)
	desc, err := c.Resolve("kiln/test-app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Tag("kiln/test-app:alias", desc); err != nil {
		t.Fatal(err)
	}
	d := desc.Digest
	if _, err := c.WriteImage("kiln/test-solo:v1", testImage(t, "amd64", v1.Config{Entrypoint: []string{"/solo"}},
		[]file{exe("solo", "SOLO")})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteImage("kiln/test-twin:v1", testImage(t, "amd64", v1.Config{Entrypoint: []string{"/bin/app"}, Env: []string{"TWIN=1"}},
		[]file{dir("bin"), exe("bin/app", "APP"), hard("bin/app2", "bin/app"), sym("bin/sh", "app"), dir("etc"),
			reg("etc/passwd", "root:x:0:0::/root:/bin/sh\ndaemon:x:7:8::/:/bin/sh\n"), reg("etc/group", "root:x:0:\nwheel:x:10:\n")})); err != nil {
		t.Fatal(err)
	}
	yml := writeYAML(t, sharedYAML)
	return d.Algorithm + "-" + d.Hex, func() Options { return Options{Files: []string{yml}, Dir: t.TempDir(), Cache: c} }
}

func TestSharedImageOneCopy(t *testing.T) {
	digest, opts := seedSharedCache(t)
	opt := opts()
	if _, err := build(t, opt); err != nil {
		t.Fatal(err)
	}
	names, bodies := listInitrd(t, filepath.Join(opt.Dir, InitrdFile("system")))
	assertParentsFirst(t, names)
	copyDir := "containers/images/" + digest + "/rootfs"
	for _, n := range []string{"5 " + copyDir, "0 " + copyDir + "/bin/app", "1 " + copyDir + "/bin/app2", "2 " + copyDir + "/bin/sh",
		"0 containers/services/solo/rootfs/solo", "0 containers/services/twin/rootfs/bin/app"} {
		if !slices.Contains(names, n) {
			t.Errorf("initrd lacks %q", n)
		}
	}
	// The image's files are in the stream once for the three containers, once for its twin.
	var apps []string
	for _, n := range names {
		if strings.HasSuffix(n, "/bin/app") {
			apps = append(apps, n)
		}
	}
	if want := []string{"0 " + copyDir + "/bin/app", "0 containers/services/twin/rootfs/bin/app"}; !slices.Equal(apps, want) {
		t.Errorf("bin/app written as %q, want %q", apps, want)
	}
	lower := "/" + copyDir
	for _, dir := range []string{"containers/onboot/000-setup", "containers/onshutdown/000-bye", "containers/services/app"} {
		if !slices.Contains(names, "5 "+dir+"/rootfs") {
			t.Errorf("%s has no rootfs/ mount point", dir)
		}
		for _, n := range names {
			if strings.HasPrefix(n[2:], dir+"/rootfs/") {
				t.Errorf("%s: its own copy holds %s", dir, n)
			}
		}
		var rt map[string]json.RawMessage
		mustJSON(t, bodies[dir+"/runtime.json"], &rt)
		for _, k := range []string{"cgroups", "mounts", "mkdir", "interfaces", "bindNS", "namespace"} {
			if _, ok := rt[k]; !ok {
				t.Errorf("%s/runtime.json lacks LinuxKit's key %q", dir, k)
			}
		}
		var from struct{ Lower string }
		mustJSON(t, string(rt["kiln.rootfs"]), &from)
		if from.Lower != lower {
			t.Errorf("%s: kiln.rootfs lower = %q, want %q", dir, from.Lower, lower)
		}
		if !strings.Contains(bodies[dir+"/config.json"], `"path": "rootfs"`) {
			t.Errorf("%s: config.json's root is not its own rootfs/", dir)
		}
	}
	// Each keeps its own spec: readonly, command, runtime.json.
	if !strings.Contains(bodies["containers/onshutdown/000-bye/config.json"], `"readonly": true`) {
		t.Error("bye lost readonly")
	}
	if !strings.Contains(bodies["containers/onboot/000-setup/config.json"], `"setup"`) {
		t.Error("setup lost its command")
	}
	if !strings.Contains(bodies["containers/services/app/runtime.json"], `"var/lib/app"`) {
		t.Error("app lost its runtime mkdir")
	}
	for _, dir := range []string{"containers/services/solo", "containers/services/twin"} {
		if strings.Contains(bodies[dir+"/runtime.json"], "kiln.rootfs") {
			t.Errorf("%s has its own files, yet its runtime.json names a shared copy", dir)
		}
	}
	// The tar format holds the same layout.
	tarNames, _ := listTar(t, filepath.Join(opt.Dir, TarFile("system")))
	if !slices.Contains(tarNames, "0 "+copyDir+"/bin/app") || slices.Contains(tarNames, "0 containers/services/app/rootfs/bin/app") {
		t.Error("the tar output does not share the copy")
	}
}

// TestSharedImageReproducible: two builds of a system with a shared copy, from one cache into
// two folders, give the same bytes.
func TestSharedImageReproducible(t *testing.T) {
	_, opts := seedSharedCache(t)
	var outs [][]byte
	for range 2 {
		opt := opts()
		opt.Formats, _ = LookupFormats("kernel+initrd,tar")
		if _, err := build(t, opt); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{InitrdFile("system"), TarFile("system")} {
			data, err := os.ReadFile(filepath.Join(opt.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, data)
		}
	}
	if !bytes.Equal(outs[0], outs[2]) || !bytes.Equal(outs[1], outs[3]) {
		t.Error("two builds of one system differ")
	}
}

// TestSharedImageNeedsInit: with an init image that does not declare InitSharedRootfsLabel
// (LinuxKit's init, say), every container gets its own copy, as LinuxKit lays it out.
func TestSharedImageNeedsInit(t *testing.T) {
	_, opts := seedSharedCache(t)
	opt := opts()
	if _, err := opt.Cache.WriteImage("kiln/test-init:v1", testImage(t, "amd64", v1.Config{},
		[]file{exe("init", "#!linuxkit-init")})); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	opt.Log = &log
	if _, err := build(t, opt); err != nil {
		t.Fatal(err)
	}
	names, _ := listInitrd(t, filepath.Join(opt.Dir, InitrdFile("system")))
	for _, n := range names {
		if strings.Contains(n, "containers/images/") {
			t.Errorf("shared copy written for an init that cannot mount it: %s", n)
		}
	}
	for _, n := range []string{"0 containers/onboot/000-setup/rootfs/bin/app", "0 containers/onshutdown/000-bye/rootfs/bin/app",
		"0 containers/services/app/rootfs/bin/app"} {
		if !slices.Contains(names, n) {
			t.Errorf("initrd lacks %q", n)
		}
	}
	if !strings.Contains(log.String(), InitSharedRootfsLabel) {
		t.Errorf("the build did not say why it copied each image:\n%s", log.String())
	}
}
