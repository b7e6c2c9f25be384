package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
var appliancePackages = []string{"services/metadata", "services/network", "services/buildkitd"}

// TestAppliance boots images/builder.yml on amd64 with its node configuration on a NoCloud
// drive (kiln builder certs -node-config) and the node's BuildKit port forwarded to a loopback
// port, then:
//   - waits for the network lease and for "buildkitd: ready" with mutual TLS;
//   - lists the node's workers and builds a Dockerfile through it with buildctl, BuildKit's own
//     client, and the client certificate;
//   - is refused without a client certificate and with one from another CA;
//   - builds a package with a RUN step (examples/greeting) on the node with kiln pkg build
//     --builders and gets the digest the build machine got (the node rebuilds a package bit
//     for bit);
//   - powers the node off from its console;
//   - boots two broken nodes at once in 1 GiB each: one with no NIC and an expired server
//     certificate, one whose user data is a broken tree; each says so on the console and comes
//     up with BuildKit on its unix socket only.
func TestAppliance(t *testing.T) {
	w := setup(t)
	buildctl := os.Getenv("KILN_BUILDCTL")
	if buildctl == "" {
		testenv.SkipOrFail(t, "KILN_BUILDCTL is not set (the Makefile sets it; run through make)")
	}
	w.pkgBuild(t, minimalPackages...)
	w.must(t, w.kiln, append([]string{"pkg", "build", "-progress", "plain", "-platforms", "linux/amd64"}, appliancePackages...)...)
	out := t.TempDir()
	w.must(t, w.kiln, "build", "-arch", "amd64", "-format", "kernel+initrd", "-dir", out, "-name", "builder", "images/builder.yml")

	// The package the node builds later, built here first.
	const pkg = "examples/greeting"
	hostDigest := digestOf(t, w.must(t, w.kiln, "pkg", "build", "-progress", "plain", "-force", "-platforms", "linux/amd64", pkg), "greeting")

	// The client's certificates (what kiln and buildctl present) and the node's configuration;
	// a second CA for a client the node must refuse.
	client := filepath.Join(out, "client")
	w.must(t, w.kiln, "builder", "-root", client, "certs", "-node-config", filepath.Join(out, "node"))
	foreign := filepath.Join(out, "foreign")
	w.must(t, w.kiln, "builder", "-root", foreign, "certs")
	userData, err := os.ReadFile(filepath.Join(out, "node", "user-data"))
	if err != nil {
		t.Fatal(err)
	}
	var drive bytes.Buffer
	if err := fatimg.Write(&drive, "cidata", []fatimg.File{
		{Name: "meta-data", Data: []byte("instance-id: e2e-builder\nlocal-hostname: e2e-builder\n")},
		{Name: "user-data", Data: userData},
	}); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(out, "cidata.img")
	if err := os.WriteFile(img, drive.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	port := loopbackPort(t)
	// 3 GiB: without a state disk BuildKit's snapshots live in the root tmpfs (half the
	// memory), and building services/hello unpacks the Go tool image there.
	vm, typer := startVMConfig(t, filepath.Join(out, "builder"), qemu.Config{
		Arch: "amd64", Memory: "3072M", Cmdline: "kiln.console=shell",
		Disks:        []qemu.Disk{{Path: img, Format: "raw", ReadOnly: true}},
		PortForwards: []qemu.Forward{{HostAddr: "127.0.0.1", Host: port, Guest: 1234}},
	})
	want := []string{
		"metadata: wrote /run/config from cidata",
		"network: eth0: 10.0.2.15/24",
		"kiln-init: onboot network exited 0",
		"buildkitd: mutual TLS on 0.0.0.0:1234",
		"buildkitd: WARNING: /var/lib/buildkit is in memory",
		"buildkitd: ready on tcp://0.0.0.0:1234 (mutual TLS)",
	}
	for _, l := range want {
		waitLine(t, vm, l)
	}
	waitAll(t, vm, "kiln-init: all services up")

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

	// kiln with the node as its linux/amd64 builder: the package's digest is the one the build
	// machine got for the same source.
	nodeWorld := *w
	nodeWorld.env = append(slices.Clone(w.env), "KILN_BUILDER_ROOT="+client)
	nodeOut := nodeWorld.must(t, w.kiln, "pkg", "build", "-progress", "plain", "-force", "-platforms", "linux/amd64",
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

	// Broken nodes, two at once, each in 1 GiB: the node says what is wrong on the console and
	// the rest of it comes up, BuildKit on its unix socket only.
	expired := expiredNodeConfig(t, certs, filepath.Join(out, "expired"))
	t.Run("broken", func(t *testing.T) {
		for _, b := range []struct {
			name     string
			userData []byte
			network  bool
			want     []string
		}{{
			name: "no network, expired certificate", userData: expired,
			want: []string{
				"network: no network interfaces besides lo; booting without network",
				"buildkitd: not listening on 0.0.0.0:1234: server certificate /run/config/buildkit/server.pem expired on",
			},
		}, {
			name: "corrupt metadata", userData: []byte("{\"buildkit\": {\"entries\": {\"ca.pem\": 7}}}\n"), network: true,
			want: []string{
				"metadata: user data: a JSON object that is not a tree",
				"network: eth0: 10.0.2.15/24",
				"buildkitd: not listening on 0.0.0.0:1234: no TLS files in /run/config/buildkit",
			},
		}} {
			t.Run(b.name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				var drive bytes.Buffer
				if err := fatimg.Write(&drive, "cidata", []fatimg.File{
					{Name: "meta-data", Data: []byte("instance-id: e2e-broken\n")},
					{Name: "user-data", Data: b.userData},
				}); err != nil {
					t.Fatal(err)
				}
				img := filepath.Join(dir, "cidata.img")
				if err := os.WriteFile(img, drive.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				log, err := os.Create(filepath.Join(out, strings.ReplaceAll(b.name, " ", "-")+"-console.log"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { log.Close() })
				vm, typer := startVMConfig(t, filepath.Join(out, "builder"), qemu.Config{
					Arch: "amd64", Memory: "1024M", Cmdline: "kiln.console=shell", Console: log, Network: b.network,
					Disks: []qemu.Disk{{Path: img, Format: "raw", ReadOnly: true}},
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
	userData, err := builder.NodeUserData(files)
	if err != nil {
		t.Fatal(err)
	}
	return userData
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
