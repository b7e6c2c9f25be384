package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-os/kiln/internal/qemu"
)

// TestNetboot boots testdata/netboot.yml from the network on amd64: `kiln serve` (the real
// command, on the host's loopback) serves the folder kiln build wrote and a machine folder for
// QEMU's default MAC address; QEMU's user-mode DHCP hands SeaBIOS's iPXE ROM the boot file
// http://10.0.2.2:PORT/boot.ipxe (10.0.2.2 is the host's loopback), which chains to the
// machine's script; iPXE fetches kernel and initrd over HTTP. In the guest, the network comes
// up before the metadata service, which reads the machine's meta-data and user-data from
// kiln serve (kiln.metadata.url=, added by kiln serve), and the usual network step keeps the
// lease. Over TFTP, curl fetches iPXE (undionly.kpxe, from tools/bootloaders' image). kiln
// serve's log must show each file it served.
func TestNetboot(t *testing.T) {
	w := setup(t)
	w.pkgBuild(t, append(minimalPackages, "tools/bootloaders")...)
	w.must(t, w.kiln, "pkg", "build", "-progress", "plain", "-platforms", "linux/amd64", "services/network", "services/metadata")
	out := t.TempDir()
	w.must(t, w.kiln, "build", "-q", "-arch", "amd64", "-format", "kernel+initrd", "-dir", out, "-name", "netboot",
		"internal/e2e/testdata/netboot.yml")
	const mac = "52-54-00-12-34-56" // QEMU's first NIC
	machines := t.TempDir()
	files := map[string]string{
		"meta-data": "instance-id: netboot-1\nlocal-hostname: netboot-node\n",
		"user-data": `{"motd": {"content": "served by kiln serve\n"}}`,
		"cmdline":   "kiln.e2e=netboot",
	}
	for name, data := range files {
		p := filepath.Join(machines, mac, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	port := loopbackPort(t)
	base := fmt.Sprintf("http://10.0.2.2:%d", port)
	serveLog := filepath.Join(out, "serve.log")
	logFile, err := os.Create(serveLog)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	serve := exec.Command(w.kiln, "serve", "-http", fmt.Sprintf("127.0.0.1:%d", port), "-tftp", "127.0.0.1:0", "-url", base, "-machines", machines, out)
	serve.Dir, serve.Env = w.root, w.env
	stderr, err := serve.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder // read once the reader below is done
	tftpAddr := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(logFile, sc.Text())
			all.WriteString(sc.Text() + "\n")
			if a, ok := strings.CutPrefix(sc.Text(), "kiln serve: TFTP on "); ok {
				tftpAddr <- strings.SplitN(a, ": ", 2)[0]
			}
		}
	}()
	stopServe := func() string {
		_ = serve.Process.Signal(os.Interrupt)
		<-done
		_ = serve.Wait()
		return all.String()
	}
	t.Cleanup(func() {
		if serve.ProcessState == nil {
			_ = serve.Process.Kill()
			_ = serve.Wait()
		}
	})
	// Ready when its port answers.
	deadline := time.Now().Add(time.Minute)
	for ready := false; !ready; {
		if time.Now().After(deadline) {
			t.Fatalf("kiln serve did not start (its log: %s)", serveLog)
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			ready = true
			continue
		}
		time.Sleep(100 * time.Millisecond)
	}

	// TFTP hands out iPXE from tools/bootloaders' image, for PXE firmware; curl is the client.
	need(t, "curl")
	var tftp string
	select {
	case tftp = <-tftpAddr:
	case <-time.After(time.Minute):
		t.Fatalf("kiln serve did not say where TFTP listens (its log: %s)", serveLog)
	}
	kpxe, err := exec.Command("curl", "-sS", "--max-time", "60", "tftp://"+tftp+"/undionly.kpxe").Output()
	if err != nil || len(kpxe) < 16<<10 {
		t.Fatalf("undionly.kpxe over TFTP: %d bytes, %v", len(kpxe), err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	console, err := os.Create(filepath.Join(out, "netboot-console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer console.Close()
	stdin, typer := io.Pipe()
	t.Cleanup(func() { typer.Close() })
	start := time.Now()
	vm, err := qemu.Start(ctx, qemu.Config{Arch: "amd64", Netboot: base + "/boot.ipxe", Memory: "1024M", Console: console, Stdin: stdin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vm.Kill)
	want := []string{
		"network-early: eth0: 10.0.2.15/24 via 10.0.2.2",
		"kiln-init: onboot network-early exited 0",
		"metadata: wrote /run/config from http",
		"kiln-init: onboot metadata exited 0",
		"(kept from the earlier onboot step)",
		"kiln-init: all services up",
	}
	for _, l := range want {
		if _, err := vm.WaitFor(ctx, l, 2*markerTimeout); err != nil {
			t.Fatalf("waiting for %q: %v\n(the console is in %s, kiln serve's log in %s)", l, err, console.Name(), serveLog)
		}
	}
	t.Logf("netboot: all services up after %s", time.Since(start).Round(100*time.Millisecond))
	typeUntil(t, vm, typer, "cat /run/config/hostname /run/config/instance_id /run/config/provider /run/config/motd /proc/cmdline", "netboot-node")
	want = append(want, "netboot-node")
	for _, l := range []string{"netboot-1", "served by kiln serve", "kiln.e2e=netboot kiln.metadata.url=" + base + "/machines/" + mac + "/"} {
		waitLine(t, vm, l)
		want = append(want, l)
	}
	typeUntil(t, vm, typer, "kill -TERM 1", "kiln-init: powering off")
	waitExit(t, vm)
	checkConsole(t, vm, append(want, "kiln-init: powering off"))

	log := stopServe()
	for _, l := range []string{
		"kiln serve: systems in " + out + ": netboot (default)",
		`GET "/boot.ipxe": 200`,
		`GET "/ipxe/` + mac + `": 200`,
		"(machine " + mac + ", system netboot)",
		`GET "/systems/netboot/kernel": 200`,
		`GET "/systems/netboot/initrd.img": 200`,
		`GET "/machines/` + mac + `/meta-data": 200`,
		`GET "/machines/` + mac + `/user-data": 200`,
		`tftp 127.0.0.1 RRQ "undionly.kpxe": `,
		"kiln serve: stopped",
	} {
		if !strings.Contains(log, l) {
			t.Errorf("kiln serve's log has no %q:\n%s", l, log)
		}
	}
}
