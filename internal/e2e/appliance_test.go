package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-os/kiln/builder"
	"github.com/kiln-os/kiln/internal/fatimg"
	"github.com/kiln-os/kiln/internal/qemu"
	"github.com/kiln-os/kiln/internal/testenv"
)

// appliancePackages are the packages images/builder.yml names besides minimal.yml's. CI
// builds them for amd64 only: BuildKit compiled for three architectures would not fit in
// CI's hour (make appliance-arches boots the others).
var appliancePackages = []string{"system/kiln", "services/metadata", "services/disk", "services/network",
	"services/time", "services/buildkitd", "services/sshd"}

// TestAppliance boots images/builder.yml on amd64 with its node configuration on a NoCloud
// drive (kiln builder certs -node-config, an SSH key), a blank state disk, an NTP server on the
// build machine's loopback (chronyd) named by kiln.ntp=, and the node's BuildKit and SSH ports
// forwarded to loopback ports, then:
//   - waits for the state disk to be formatted and mounted, the network lease, the NTP offset
//     and "buildkitd: ready" with mutual TLS;
//   - logs in over SSH with the key and runs a command;
//   - assembles images/builder.yml on the node, with the node's kiln, from the package images
//     handed over on a disk (an OCI layout tar), and gets the build machine's bytes;
//   - lists the node's workers and builds a Dockerfile through it with buildctl, BuildKit's own
//     client, and the client certificate;
//   - is refused without a client certificate and with one from another CA;
//   - builds a package with a RUN step (examples/greeting) on the node with kiln pkg build
//     --builders and gets the digest the build machine got (the node rebuilds a package bit
//     for bit);
//   - powers the node off from its console, boots it again from the same disks, and sees the
//     state disk mounted as it was (not formatted again), the same SSH host key, and BuildKit's
//     cache: the node builds the package again from its cache;
//   - boots two broken nodes at once in 1 GiB each: one with no NIC and an expired server
//     certificate, one whose user data is a broken tree, neither with a state disk; each says
//     so on the console and comes up with BuildKit on its unix socket only.
func TestAppliance(t *testing.T) {
	w := setup(t)
	buildctl := os.Getenv("KILN_BUILDCTL")
	if buildctl == "" {
		testenv.SkipOrFail(t, "KILN_BUILDCTL is not set (the Makefile sets it; run through make)")
	}
	sshClient, err1 := exec.LookPath("ssh")
	sshKeygen, err2 := exec.LookPath("ssh-keygen")
	if err := errors.Join(err1, err2); err != nil {
		testenv.SkipOrFail(t, "OpenSSH's client: %v (apt-get install openssh-client)", err)
	}
	ntpPort := startChronyd(t)
	w.pkgBuild(t, minimalPackages...)
	w.must(t, w.kiln, append([]string{"pkg", "build", "-progress", "plain", "-platforms", "linux/amd64"}, appliancePackages...)...)
	out := t.TempDir()
	w.must(t, w.kiln, "build", "-arch", "amd64", "-format", "kernel+initrd", "-dir", out, "-name", "builder", "images/builder.yml")

	// The package the node builds later, built here first.
	const pkg = "examples/greeting"
	hostOut := w.must(t, w.kiln, "pkg", "build", "-progress", "plain", "-force", "-platforms", "linux/amd64", pkg)
	hostDigest, greetingRef := digestOf(t, hostOut, "greeting"), refOf(t, hostOut, "greeting")

	// The client's certificates (what kiln and buildctl present) and the node's configuration;
	// a second CA for a client the node must refuse.
	// The node also trusts a CA of the test's (kiln builder certs -trust), as it would a
	// TLS-inspecting proxy's: an HTTPS server on the host's loopback (10.0.2.2 from the VM)
	// with a certificate from it serves a file the node's builds fetch.
	httpsURL, proxyCA, fetched := startHTTPS(t, "fetched over HTTPS by the node\n")
	proxyCAFile := filepath.Join(out, "proxy-ca.pem")
	if err := os.WriteFile(proxyCAFile, proxyCA, 0o644); err != nil {
		t.Fatal(err)
	}
	client := filepath.Join(out, "client")
	w.must(t, w.kiln, "builder", "-root", client, "certs", "-node-config", filepath.Join(out, "node"), "-trust", proxyCAFile)
	foreign := filepath.Join(out, "foreign")
	w.must(t, w.kiln, "builder", "-root", foreign, "certs")
	userData, err := os.ReadFile(filepath.Join(out, "node", "user-data"))
	if err != nil {
		t.Fatal(err)
	}
	sshKey := filepath.Join(out, "ssh-key")
	w.must(t, sshKeygen, "-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f", sshKey)
	pub, err := os.ReadFile(sshKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	var drive bytes.Buffer
	if err := fatimg.Write(&drive, "cidata", []fatimg.File{
		{Name: "meta-data", Data: []byte("instance-id: e2e-builder\nlocal-hostname: e2e-builder\npublic-keys:\n  - " +
			strings.TrimSpace(string(pub)) + "\n")},
		{Name: "user-data", Data: userData},
	}); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(out, "cidata.img")
	if err := os.WriteFile(img, drive.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// The images builder.yml names, for the node to assemble it too: an OCI layout tar that is
	// the node's third disk (vdc), read as a stream. The YAML with every image pinned.
	lock, err := os.ReadFile(filepath.Join(out, "builder.lock.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for l := range strings.Lines(string(lock)) {
		if ref, _, ok := strings.Cut(strings.TrimSpace(l), ": sha256:"); ok && strings.HasPrefix(l, "  ") {
			refs = append(refs, ref)
		}
	}
	images := filepath.Join(out, "images.tar")
	w.must(t, w.kiln, append([]string{"cache", "export", "-o", images}, refs...)...)
	pinned := w.must(t, w.kiln, "build", "-dry-run", "-arch", "amd64", "images/builder.yml")

	// The state disk: blank (sparse) at the first boot. The config drive is vda, so it is vdb.
	state := filepath.Join(out, "state.img")
	if f, err := os.Create(state); err != nil {
		t.Fatal(err)
	} else if err := errors.Join(f.Truncate(4<<30), f.Close()); err != nil {
		t.Fatal(err)
	}
	port, sshPort := loopbackPort(t), loopbackPort(t)
	node := qemu.Config{
		Arch: "amd64", Memory: "2048M", Cmdline: fmt.Sprintf("kiln.console=shell kiln.ntp=10.0.2.2:%d", ntpPort),
		Disks: []qemu.Disk{{Path: img, Format: "raw", ReadOnly: true}, {Path: state, Format: "raw"},
			{Path: images, Format: "raw", ReadOnly: true}},
		PortForwards: []qemu.Forward{
			{HostAddr: "127.0.0.1", Host: port, Guest: 1234},
			{HostAddr: "127.0.0.1", Host: sshPort, Guest: 22},
		},
	}
	vm, typer := startVMConfig(t, filepath.Join(out, "builder"), node)
	want := []string{
		"metadata: wrote /run/config from cidata",
		"disk: formatting /dev/vdb (4.0 GiB, blank) as ext4, label kiln-state",
		"disk: /dev/vdb (label kiln-state) mounted on /var/lib: ",
		"network: eth0: 10.0.2.15/24",
		"kiln-init: onboot network exited 0",
		"buildkitd: mutual TLS on 0.0.0.0:1234",
		"buildkitd: downloads trust /etc/ssl/certs/ca-certificates.crt and 1 more root certificates from /run/config/buildkit/trusted-ca.pem",
		"buildkitd: ready on tcp://0.0.0.0:1234 (mutual TLS)",
	}
	for _, l := range want {
		waitLine(t, vm, l)
	}
	waitAll(t, vm, "kiln-init: all services up", "time: offset ", fmt.Sprintf("from 10.0.2.2:%d (stratum ", ntpPort),
		"sshd: host key SHA256:", "sshd: 1 SSH key in /run/config/ssh/authorized_keys")
	if slices.ContainsFunc(vm.Console(), func(l string) bool { return strings.Contains(l, "/var/lib/buildkit is in memory") }) {
		t.Error("buildkitd says its state is in memory, with a state disk")
	}
	hostKey := lineWith(vm.Console(), "sshd: host key SHA256:")

	// SSH: the key from the meta-data logs in as root and sees the node.
	sshArgs := []string{"-F", "/dev/null", "-p", strconv.Itoa(sshPort), "-i", sshKey, "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=30", "root@127.0.0.1"}
	if got := w.must(t, sshClient, append(sshArgs, "cat /run/config/hostname; echo KILN_CACHE=$KILN_CACHE; cat /proc/1/mountinfo")...); !strings.Contains(got, "e2e-builder") ||
		!strings.Contains(got, " /var/lib ") || !strings.Contains(got, "KILN_CACHE=/var/lib/kiln/cache\n") {
		t.Errorf("over SSH, the node's host name, kiln's cache folder and its mount of /var/lib:\n%s", got)
	}

	// The node assembles its own image from the same package images: the same bytes.
	t.Run("self-assembly", func(t *testing.T) {
		put := exec.Command(sshClient, append(slices.Clone(sshArgs), "cat > /var/lib/kiln/builder.yml")...)
		put.Stdin = strings.NewReader(pinned)
		if b, err := put.CombinedOutput(); err != nil {
			t.Fatalf("copying the pinned builder.yml to the node: %v: %s", err, b)
		}
		epoch := ""
		if v, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok {
			epoch = "SOURCE_DATE_EPOCH=" + v + " "
		}
		sums := w.must(t, sshClient, append(sshArgs, "set -e; kiln cache import /dev/vdc >/dev/null; "+epoch+
			"kiln build -q -arch amd64 -format kernel+initrd -dir /var/lib/kiln/out -name builder /var/lib/kiln/builder.yml; "+
			"cd /var/lib/kiln/out && sha256sum builder-kernel builder-initrd.img builder-cmdline")...)
		for _, f := range []string{"builder-kernel", "builder-initrd.img", "builder-cmdline"} {
			want := fileSHA256(t, filepath.Join(out, f))
			if !strings.Contains(sums, want+"  "+f) {
				t.Errorf("%s: the node assembled other bytes than the build machine (want sha256 %s):\n%s", f, want, sums)
			}
		}
	})

	addr := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	certs := filepath.Join(client, "certs")
	tlsArgs := func(caDir, clientDir string) []string {
		a := []string{"--addr", addr, "--tlscacert", filepath.Join(caDir, "ca.pem"), "--tlsservername", "127.0.0.1"}
		if clientDir != "" {
			a = append(a, "--tlscert", filepath.Join(clientDir, "client.pem"), "--tlskey", filepath.Join(clientDir, "client-key.pem"))
		}
		return a
	}
	workers := w.must(t, buildctl, append(tlsArgs(certs, certs), "debug", "workers", "-v")...)
	if !strings.Contains(workers, "linux/amd64") {
		t.Errorf("the node's workers do not build linux/amd64:\n%s", workers)
	}
	for name, args := range map[string][]string{
		"no client certificate":                tlsArgs(certs, ""),
		"a client certificate from another CA": tlsArgs(certs, filepath.Join(foreign, "certs")),
	} {
		_, err := w.run(t, buildctl, append(slices.Clone(args), "--timeout", "30", "debug", "workers")...)
		var ce *cmdError
		if err == nil {
			t.Errorf("%s: the node served the client", name)
		} else if !errors.As(err, &ce) || !strings.Contains(strings.ToLower(ce.stderr), "certificate") {
			t.Errorf("%s: refused, but not for its certificate: %v", name, err)
		}
	}

	// buildctl, as a user without kiln: a Dockerfile whose result is exported as an OCI tar.
	ctxDir := t.TempDir()
	for name, data := range map[string]string{
		"Dockerfile": "FROM scratch\nCOPY greeting /greeting\n",
		"greeting":   "built on the appliance\n",
	} {
		if err := os.WriteFile(filepath.Join(ctxDir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ociTar := filepath.Join(out, "greeting.tar")
	w.must(t, buildctl, append(tlsArgs(certs, certs), "build", "--frontend", "dockerfile.v0",
		"--local", "context="+ctxDir, "--local", "dockerfile="+ctxDir,
		"--output", "type=oci,dest="+ociTar)...)
	if fi, err := os.Stat(ociTar); err != nil || fi.Size() == 0 {
		t.Errorf("buildctl's OCI tar: %v", err)
	}
	// A build that fetches over HTTPS from a server whose CA only the node configuration's
	// trusted-ca.pem names.
	addDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(addDir, "Dockerfile"), []byte("FROM scratch\nADD "+httpsURL+" /fetched.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.must(t, buildctl, append(tlsArgs(certs, certs), "build", "--frontend", "dockerfile.v0",
		"--local", "context="+addDir, "--local", "dockerfile="+addDir, "--output", "type=oci,dest="+filepath.Join(out, "fetched.tar"))...)
	if fetched.Load() == 0 {
		t.Error("the HTTPS server saw no request from the node's build")
	}

	// kiln with the node as its linux/amd64 builder: the package's digest is the one the build
	// machine got for the same source.
	// The image leaves the local cache first, so that kiln builds it again (-force would also
	// tell BuildKit to use none of its cache, and the reboot below checks that cache).
	nodeWorld := *w
	nodeWorld.env = append(slices.Clone(w.env), "KILN_BUILDER_ROOT="+client)
	w.must(t, w.kiln, "cache", "rm", greetingRef)
	nodeOut := nodeWorld.must(t, w.kiln, "pkg", "build", "-progress", "plain", "-platforms", "linux/amd64",
		"-builders", "linux/amd64="+addr, pkg)
	if nodeDigest := digestOf(t, nodeOut, "greeting"); nodeDigest != hostDigest {
		t.Errorf("%s for linux/amd64: the node built %s, the build machine %s", pkg, nodeDigest, hostDigest)
	}

	if _, err := fmt.Fprintln(typer, "kill -TERM 1"); err != nil {
		t.Fatal(err)
	}
	waitLine(t, vm, "kiln-init: powering off")
	waitExit(t, vm)
	checkConsole(t, vm, append(want, "kiln-init: powering off"))
	noRestarts(t, vm)

	// The same node again, from the same disks: its state is where it was.
	t.Run("reboot", func(t *testing.T) {
		log, err := os.Create(filepath.Join(out, "builder-reboot-console.log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { log.Close() })
		node.Console = log
		vm, typer := startVMConfig(t, filepath.Join(out, "builder"), node)
		waitLine(t, vm, "disk: /dev/vdb (label kiln-state) mounted on /var/lib: ")
		waitAll(t, vm, "kiln-init: all services up", "buildkitd: ready on tcp://0.0.0.0:1234 (mutual TLS)", "sshd: host key SHA256:")
		if slices.ContainsFunc(vm.Console(), func(l string) bool { return strings.Contains(l, "disk: formatting") }) {
			t.Error("the state disk was formatted again")
		}
		if again := lineWith(vm.Console(), "sshd: host key SHA256:"); again != hostKey {
			t.Errorf("the SSH host key changed across the reboot: %q, then %q", hostKey, again)
		}
		// BuildKit's cache survived: the RUN step is not run again.
		w.must(t, w.kiln, "cache", "rm", greetingRef)
		again := nodeWorld.combined(t, w.kiln, "pkg", "build", "-progress", "plain", "-platforms", "linux/amd64",
			"-builders", "linux/amd64="+addr, pkg)
		if d := digestOf(t, again, "greeting"); d != hostDigest {
			t.Errorf("%s after the reboot: %s, want %s", pkg, d, hostDigest)
		}
		if !runCached(again) {
			t.Errorf("the RUN step of %s did not come from the node's cache after the reboot:\n%s", pkg, again)
		}
		if _, err := fmt.Fprintln(typer, "kill -TERM 1"); err != nil {
			t.Fatal(err)
		}
		waitLine(t, vm, "kiln-init: powering off")
		waitExit(t, vm)
		noRestarts(t, vm)
	})

	// Broken nodes, two at once, each in 1 GiB: the node says what is wrong on the console and
	// the rest of it comes up, BuildKit on its unix socket only.
	expired := expiredNodeConfig(t, certs, filepath.Join(out, "expired"))
	t.Run("broken", func(t *testing.T) {
		for _, b := range []struct {
			name     string
			userData []byte
			network  bool
			fwCfg    bool // the node configuration through QEMU's fw_cfg, not a config drive
			want     []string
		}{{
			name: "no network, expired certificate", userData: expired,
			want: []string{
				"disk: WARNING: no state disk (no disk labelled kiln-state, and no blank disk): /var/lib is in memory",
				"network: no network interfaces besides lo; booting without network",
				"buildkitd: not listening on 0.0.0.0:1234: server certificate /run/config/buildkit/server.pem expired on",
			},
		}, {
			name: "corrupt metadata", userData: []byte("{\"buildkit\": {\"entries\": {\"ca.pem\": 7}}}\n"), network: true,
			fwCfg: true,
			want: []string{
				"metadata: read fw_cfg",
				"metadata: user data: a JSON object that is not a tree",
				"network: eth0: 10.0.2.15/24",
				"buildkitd: not listening on 0.0.0.0:1234: no TLS files in /run/config/buildkit",
			},
		}} {
			t.Run(b.name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				files := []fatimg.File{
					{Name: "meta-data", Data: []byte("instance-id: e2e-broken\n")},
					{Name: "user-data", Data: b.userData},
				}
				var disks []qemu.Disk
				var extra []string
				if b.fwCfg {
					// No disk at all: the metadata service finds the files under
					// /sys/firmware/qemu_fw_cfg (builder.yml loads qemu_fw_cfg).
					for _, f := range files {
						path := filepath.Join(dir, f.Name)
						if err := os.WriteFile(path, f.Data, 0o644); err != nil {
							t.Fatal(err)
						}
						extra = append(extra, "-fw_cfg", "name=opt/io.cloud-init/cloud-init/"+f.Name+",file="+path)
					}
				} else {
					var drive bytes.Buffer
					if err := fatimg.Write(&drive, "cidata", files); err != nil {
						t.Fatal(err)
					}
					img := filepath.Join(dir, "cidata.img")
					if err := os.WriteFile(img, drive.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					disks = append(disks, qemu.Disk{Path: img, Format: "raw", ReadOnly: true})
				}
				log, err := os.Create(filepath.Join(out, strings.ReplaceAll(b.name, " ", "-")+"-console.log"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { log.Close() })
				vm, typer := startVMConfig(t, filepath.Join(out, "builder"), qemu.Config{
					Arch: "amd64", Memory: "1024M", Cmdline: "kiln.console=shell", Console: log, Network: b.network,
					Disks: disks, ExtraArgs: extra,
				})
				// Onboot output, kiln-init's lines and the services' output interleave
				// differently from boot to boot: wait until each has been said, in any order.
				waitAll(t, vm, append(b.want, "kiln-init: all services up",
					"buildkitd: ready on unix:///run/buildkit/buildkitd.sock")...)
				noRestarts(t, vm)
				if _, err := fmt.Fprintln(typer, "kill -TERM 1"); err != nil {
					t.Fatal(err)
				}
				waitLine(t, vm, "kiln-init: powering off")
				waitExit(t, vm)
			})
		}
	})
}

// fileSHA256 is the hex SHA-256 of a file's bytes.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// runCached reports whether BuildKit's plain progress has a RUN step ("#7 [pack 2/3] RUN ...")
// whose vertex says "#7 CACHED".
func runCached(progress string) bool {
	lines := strings.Split(progress, "\n")
	for _, l := range lines {
		vertex, rest, ok := strings.Cut(l, " ")
		if !ok || !strings.HasPrefix(vertex, "#") || !strings.HasPrefix(rest, "[") || !strings.Contains(rest, "] RUN ") {
			continue
		}
		if slices.Contains(lines, vertex+" CACHED") {
			return true
		}
	}
	return false
}

// lineWith returns what the first line of console that holds s says from s on (the console
// shell's prompt can share the line), "" when no line holds it.
func lineWith(console []string, s string) string {
	for _, l := range console {
		if i := strings.Index(l, s); i >= 0 {
			return strings.TrimSpace(l[i:])
		}
	}
	return ""
}

// startChronyd runs Debian's chronyd (KILN_CHRONYD; scripts/deps.sh unpacks it) as an NTP
// server on a loopback port, serving its own clock, for the nodes' time service (the guest
// reaches it as 10.0.2.2). It never asks another server and leaves the clock alone (-x).
func startChronyd(t *testing.T) int {
	t.Helper()
	chronyd := os.Getenv("KILN_CHRONYD")
	if chronyd == "" {
		testenv.SkipOrFail(t, "KILN_CHRONYD is not set (the Makefile sets it; scripts/deps.sh unpacks chrony into bin/chrony)")
	}
	dir := t.TempDir()
	port := loopbackUDPPort(t)
	conf := filepath.Join(dir, "chrony.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "port %d\nbindaddress 127.0.0.1\nbindacqaddress 127.0.0.1\n"+
		"allow 127.0.0.1\nlocal stratum 8\ncmdport 0\nbindcmdaddress /\npidfile %s\n", port, filepath.Join(dir, "chronyd.pid")), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "chronyd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chronyd, "-d", "-x", "-f", conf, "-u", "root")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("chronyd: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); log.Close() })
	return port
}

// loopbackUDPPort returns a UDP port free on 127.0.0.1 a moment ago.
func loopbackUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// waitAll waits until each of want is part of a console line, in any order (markerTimeout in
// all), and fails when QEMU ends first.
func waitAll(t *testing.T, vm *qemu.VM, want ...string) {
	t.Helper()
	deadline := time.Now().Add(markerTimeout)
	for {
		missing := missingLines(vm, want)
		if len(missing) == 0 {
			return
		}
		select {
		case <-vm.Done():
			if missing = missingLines(vm, want); len(missing) > 0 {
				t.Fatalf("QEMU ended; the console never said %q; its end:\n%s", missing, strings.Join(vm.Console(), "\n"))
			}
			return
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console did not say %q within %s; its end:\n%s", missing, markerTimeout, strings.Join(vm.Console(), "\n"))
		}
	}
}

// missingLines returns the strings of want that no console line so far contains.
func missingLines(vm *qemu.VM, want []string) []string {
	lines, _ := vm.Transcript()
	var missing []string
	for _, w := range want {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, w) }) {
			missing = append(missing, w)
		}
	}
	return missing
}

// noRestarts checks that no service exited (kiln-init restarts one that does, so a service
// that crashes in a loop would otherwise go unnoticed).
func noRestarts(t *testing.T, vm *qemu.VM) {
	t.Helper()
	lines, _ := vm.Transcript()
	for _, l := range lines {
		if strings.Contains(l, "kiln-init: service ") && strings.Contains(l, " exited") {
			t.Errorf("a service exited: %s", l)
		}
	}
}

// expiredNodeConfig writes a node configuration whose server certificate, signed by the CA in
// certs, expired yesterday, and returns its user-data.
func expiredNodeConfig(t *testing.T, certs, dir string) []byte {
	t.Helper()
	ca, err := tls.LoadX509KeyPair(filepath.Join(certs, builder.CAFile), filepath.Join(certs, builder.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "expired node"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	files := builder.CertFiles{CA: filepath.Join(certs, builder.CAFile),
		ServerCert: filepath.Join(dir, builder.ServerCertFile), ServerKey: filepath.Join(dir, builder.ServerKeyFile)}
	for path, data := range map[string][]byte{
		files.ServerCert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		files.ServerKey:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	userData, err := builder.NodeUserData(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	return userData
}

// startHTTPS serves body over HTTPS on the host's loopback with a certificate from a CA of
// its own, for 10.0.2.2 (the host as QEMU's user network shows it). It returns the file's URL
// as the VM reaches it, the CA's certificate (PEM) and the count of requests.
func startHTTPS(t *testing.T, body string) (string, []byte, *atomic.Int32) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e proxy CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "10.0.2.2"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(10, 0, 2, 2), net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, body)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	return fmt.Sprintf("https://10.0.2.2:%d/fetched.txt", port), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), &hits
}

// loopbackPort returns a loopback TCP port nothing listens on now.
func loopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// digestOf returns the digest kiln pkg build printed for the image named image (its lines are
// "REF DIGEST", the packages it needed included).
// refOf returns the reference kiln pkg build printed for image (kiln/NAME:TAG).
func refOf(t *testing.T, out, image string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.Contains(f[0], "/"+image+":") {
			return f[0]
		}
	}
	t.Fatalf("kiln pkg build printed no reference for %s:\n%s", image, out)
	return ""
}

func digestOf(t *testing.T, out, image string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.Contains(f[0], "/"+image+":") {
			return f[1]
		}
	}
	t.Fatalf("kiln pkg build printed no digest for %s:\n%s", image, out)
	return ""
}
