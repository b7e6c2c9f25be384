package netboot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-os/kiln/internal/testenv"
)

// world writes a folder of systems and of machines.
type world struct {
	dir, machines string
	kernel        []byte
}

func newWorld(t *testing.T, systems ...string) world {
	t.Helper()
	root := t.TempDir()
	w := world{dir: filepath.Join(root, "out"), machines: filepath.Join(root, "machines")}
	for _, d := range []string{w.dir, w.machines} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// 512*3 bytes: a multiple of TFTP's default block, so the transfer ends with an empty block.
	w.kernel = bytes.Repeat([]byte("kernel!\n"), 3*512/8)
	for _, s := range systems {
		write(t, filepath.Join(w.dir, s+"-kernel"), string(w.kernel))
		write(t, filepath.Join(w.dir, s+"-initrd.img"), strings.Repeat("initrd "+s+"\n", 20000))
		write(t, filepath.Join(w.dir, s+"-cmdline"), "console=ttyS0 panic=1 kiln.name="+s+"\n")
	}
	return w
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, tr *Tree, name string) string {
	t.Helper()
	f, err := tr.Open(name, "http://10.0.2.2:8080")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != f.Size {
		t.Errorf("%s: read %d bytes, size says %d", name, len(b), f.Size)
	}
	return string(b)
}

func TestParseMAC(t *testing.T) {
	for in, want := range map[string]string{
		"52-54-00-12-34-56": "52-54-00-12-34-56",
		"52:54:00:AB:cd:EF": "52-54-00-ab-cd-ef",
	} {
		if got, err := ParseMAC(in); err != nil || got != want {
			t.Errorf("ParseMAC(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "52-54-00-12-34", "default", "52-54-00-12-34-56-78-9a", "zz-54-00-12-34-56"} {
		if _, err := ParseMAC(bad); err == nil {
			t.Errorf("ParseMAC(%q) took it", bad)
		}
	}
}

func TestSystems(t *testing.T) {
	w := newWorld(t, "b", "a")
	write(t, filepath.Join(w.dir, "a.efi"), "uki")
	write(t, filepath.Join(w.dir, "half-kernel"), "no initrd beside it")
	got, err := Systems(w.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" || got[0].UKI == "" || got[1].UKI != "" {
		t.Errorf("Systems = %+v, want a (with its UKI) and b", got)
	}
	write(t, filepath.Join(w.dir, "bad name-kernel"), "x")
	write(t, filepath.Join(w.dir, "bad name-initrd.img"), "x")
	write(t, filepath.Join(w.dir, "bad name-cmdline"), "x")
	if _, err := Systems(w.dir); err == nil || !strings.Contains(err.Error(), `"bad name"`) {
		t.Errorf("a name with a space: %v", err)
	}
}

func TestScripts(t *testing.T) {
	w := newWorld(t, "builder")
	tr := &Tree{Dir: w.dir, Machines: w.machines}
	write(t, filepath.Join(w.machines, "52-54-00-12-34-56", "meta-data"), "instance-id: n1\nlocal-hostname: node-1\n")
	write(t, filepath.Join(w.machines, "52-54-00-12-34-56", "cmdline"), "kiln.console=shell\n")

	if got := read(t, tr, "boot.ipxe"); got != "#!ipxe\n# kiln serve: this machine's script, by the MAC address of the NIC it booted from\nchain http://10.0.2.2:8080/ipxe/${mac:hexhyp}\n" {
		t.Errorf("boot.ipxe:\n%s", got)
	}
	want := "#!ipxe\n# kiln serve: system builder for 52-54-00-12-34-56\necho kiln serve: booting builder\n" +
		"kernel http://10.0.2.2:8080/systems/builder/kernel initrd=initrd.img console=ttyS0 panic=1 kiln.name=builder kiln.console=shell kiln.metadata.url=http://10.0.2.2:8080/machines/52-54-00-12-34-56/\n" +
		"initrd --name initrd.img http://10.0.2.2:8080/systems/builder/initrd.img\nboot\n"
	if got := read(t, tr, "ipxe/52:54:00:12:34:56"); got != want {
		t.Errorf("ipxe/MAC:\n%s\nwant:\n%s", got, want)
	}
	want = "# pxelinux configuration: kiln serve, system builder\ndefault kiln\nlabel kiln\n  kernel systems/builder/kernel\n" +
		"  initrd systems/builder/initrd.img\n  append console=ttyS0 panic=1 kiln.name=builder kiln.console=shell kiln.metadata.url=http://10.0.2.2:8080/machines/52-54-00-12-34-56/\n"
	if got := read(t, tr, "pxelinux.cfg/01-52-54-00-12-34-56"); got != want {
		t.Errorf("pxelinux.cfg/01-MAC:\n%s\nwant:\n%s", got, want)
	}
	// Any machine: no metadata URL without a MAC address.
	if got := read(t, tr, "pxelinux.cfg/default"); !strings.Contains(got, "  append console=ttyS0 panic=1 kiln.name=builder\n") {
		t.Errorf("pxelinux.cfg/default:\n%s", got)
	}
	// Metadata: the machine's own, a generated instance-id for others, no user-data.
	if got := read(t, tr, "machines/52-54-00-12-34-56/meta-data"); got != "instance-id: n1\nlocal-hostname: node-1\n" {
		t.Errorf("meta-data %q", got)
	}
	if got := read(t, tr, "machines/52-54-00-12-34-99/meta-data"); got != "instance-id: kiln-525400123499\n" {
		t.Errorf("an unknown machine's meta-data %q", got)
	}
	for _, missing := range []string{"machines/52-54-00-12-34-99/user-data", "machines/52-54-00-12-34-56/cmdline", "ipxe/not-a-mac",
		"systems/builder/other", "systems/nothere/kernel", "../out/builder-kernel", "undionly.kpxe"} {
		if _, err := tr.Open(missing, "http://h"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want not found", missing, err)
		}
	}
	// Without -machines: no metadata URL, no machines/.
	plain := &Tree{Dir: w.dir}
	if got := read(t, plain, "ipxe/52-54-00-12-34-56"); strings.Contains(got, "kiln.metadata.url") || strings.Contains(got, "kiln.console") {
		t.Errorf("without machines:\n%s", got)
	}
	if _, err := plain.Open("machines/52-54-00-12-34-56/meta-data", "http://h"); !errors.Is(err, ErrNotFound) {
		t.Errorf("machines/ without -machines: %v", err)
	}
}

func TestChoices(t *testing.T) {
	w := newWorld(t, "a", "b")
	tr := &Tree{Dir: w.dir, Machines: w.machines}
	// Two systems, no default: a machine without a choice is refused, with the way out.
	if _, err := tr.Open("ipxe/52-54-00-00-00-01", "http://h"); err == nil || !strings.Contains(err.Error(), "-system NAME") {
		t.Errorf("no default: %v", err)
	}
	write(t, filepath.Join(w.machines, "52-54-00-00-00-01", "system"), "b\n")
	if got := read(t, tr, "ipxe/52-54-00-00-00-01"); !strings.Contains(got, "/systems/b/kernel") {
		t.Errorf("a machine that chose b:\n%s", got)
	}
	write(t, filepath.Join(w.machines, "default", "system"), "a\n")
	write(t, filepath.Join(w.machines, "default", "user-data"), "#cloud-config\n")
	if got := read(t, tr, "ipxe/52-54-00-00-00-02"); !strings.Contains(got, "/systems/a/kernel") {
		t.Errorf("the default folder's choice:\n%s", got)
	}
	if got := read(t, tr, "machines/52-54-00-00-00-02/user-data"); got != "#cloud-config\n" {
		t.Errorf("the default folder's user-data %q", got)
	}
	write(t, filepath.Join(w.machines, "52-54-00-00-00-03", "system"), "c\n")
	if _, err := tr.Open("ipxe/52-54-00-00-00-03", "http://h"); err == nil || !strings.Contains(err.Error(), `system "c"`) ||
		!strings.Contains(err.Error(), filepath.Join("52-54-00-00-00-03", "system")) {
		t.Errorf("a machine choosing a system that is not there: %v", err)
	}
	// Parameters iPXE would change are refused, naming the system.
	write(t, filepath.Join(w.machines, "52-54-00-00-00-04", "cmdline"), `kiln.ssh="ssh-ed25519 AAAA me"`)
	write(t, filepath.Join(w.machines, "52-54-00-00-00-04", "system"), "a")
	if _, err := tr.Open("ipxe/52-54-00-00-00-04", "http://h"); err == nil || !strings.Contains(err.Error(), "quote") {
		t.Errorf("a quoted parameter: %v", err)
	}
}

// TestHTTP serves a tree through net/http: ranges, HEAD, the system file's modification time,
// 404 and 405, and one log line a request naming the machine and the system.
func TestHTTP(t *testing.T) {
	w := newWorld(t, "builder")
	var log syncBuffer
	if err := os.Chtimes(filepath.Join(w.dir, "builder-kernel"), time.Unix(1700000000, 0), time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	srv := &Server{Tree: &Tree{Dir: w.dir, Machines: w.machines}, Log: &log}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	get := func(method, path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, ts.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	resp, body := get("GET", "/boot.ipxe")
	if resp.StatusCode != 200 || !strings.Contains(body, "chain "+ts.URL+"/ipxe/${mac:hexhyp}") {
		t.Errorf("boot.ipxe: %s\n%s", resp.Status, body)
	}
	resp, body = get("GET", "/systems/builder/kernel", "Range", "bytes=8-15")
	if resp.StatusCode != http.StatusPartialContent || body != "kernel!\n" {
		t.Errorf("a range of the kernel: %s %q", resp.Status, body)
	}
	if lm := resp.Header.Get("Last-Modified"); lm != "Tue, 14 Nov 2023 22:13:20 GMT" {
		t.Errorf("Last-Modified %q, want the kernel file's", lm)
	}
	resp, body = get("HEAD", "/systems/builder/initrd.img")
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != int64(len("initrd builder\n")*20000) {
		t.Errorf("HEAD initrd: %s, length %d", resp.Status, resp.ContentLength)
	}
	if resp, _ = get("GET", "/systems/builder/nothing"); resp.StatusCode != 404 {
		t.Errorf("a missing file: %s", resp.Status)
	}
	if resp, _ = get("PUT", "/boot.ipxe"); resp.StatusCode != 405 {
		t.Errorf("PUT: %s", resp.Status)
	}
	resp, body = get("GET", "/machines/52-54-00-12-34-56/meta-data")
	if resp.StatusCode != 200 || body != "instance-id: kiln-525400123456\n" {
		t.Errorf("meta-data: %s %q", resp.Status, body)
	}
	got := log.String()
	for _, line := range []string{
		"kiln serve: http 127.0.0.1 GET \"/boot.ipxe\": 200, ",
		"kiln serve: http 127.0.0.1 GET \"/systems/builder/kernel\": 206, 8 bytes",
		"(system builder)",
		"kiln serve: http 127.0.0.1 GET \"/systems/builder/nothing\": 404",
		"kiln serve: http 127.0.0.1 PUT \"/boot.ipxe\": 405",
		"kiln serve: http 127.0.0.1 GET \"/machines/52-54-00-12-34-56/meta-data\": 200, 31 bytes",
		"(machine 52-54-00-12-34-56)",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("the log has no %q:\n%s", line, got)
		}
	}
}

// TestTFTP fetches files with curl, a real TFTP client: the default 512-byte blocks (the
// kernel is three blocks, so the transfer ends with an empty one), a larger blksize, tsize, a
// generated configuration, a missing file and a write request.
func TestTFTP(t *testing.T) {
	testenv.NeedTool(t, "curl", "curl")
	w := newWorld(t, "builder")
	var log syncBuffer
	srv := &Server{Tree: &Tree{Dir: w.dir, Machines: w.machines, Files: map[string][]byte{"undionly.kpxe": []byte("ipxe!")}}, Log: &log, HTTPPort: 8080}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeTFTP(ctx, conn) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		conn.Close()
	}()
	base := "tftp://" + conn.LocalAddr().String() + "/"
	curl := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command("curl", append([]string{"-sS", "--max-time", "20"}, args...)...)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, stderr.String())
		}
		return out.String(), err
	}
	if got, err := curl(base + "systems/builder/kernel"); err != nil || got != string(w.kernel) {
		t.Errorf("the kernel in 512-byte blocks: %d bytes, %v", len(got), err)
	}
	initrd, err := os.ReadFile(filepath.Join(w.dir, "builder-initrd.img"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := curl("--tftp-blksize", "1400", base+"systems/builder/initrd.img"); err != nil || got != string(initrd) {
		t.Errorf("the initrd in 1400-byte blocks: %d bytes of %d, %v", len(got), len(initrd), err)
	}
	if got, err := curl(base + "pxelinux.cfg/01-52-54-00-12-34-56"); err != nil ||
		!strings.Contains(got, "kiln.metadata.url=http://127.0.0.1:8080/machines/52-54-00-12-34-56/") {
		t.Errorf("pxelinux.cfg/01-MAC: %q, %v (want the metadata URL on the address the client reached)", got, err)
	}
	if got, err := curl(base + "undionly.kpxe"); err != nil || got != "ipxe!" {
		t.Errorf("undionly.kpxe: %q, %v", got, err)
	}
	if _, err := curl(base + "nothing"); err == nil {
		t.Error("a missing file came back")
	}
	upload := filepath.Join(t.TempDir(), "up")
	write(t, upload, "data")
	if _, err := curl("-T", upload, base+"up"); err == nil {
		t.Error("a write request was taken")
	}
	got := log.String()
	for _, line := range []string{
		"kiln serve: tftp 127.0.0.1 RRQ \"systems/builder/kernel\": 1.5 KiB in",
		", 512-byte blocks (system builder)",
		", 1400-byte blocks (system builder)",
		"kiln serve: tftp 127.0.0.1 RRQ \"nothing\": nothing: not found",
		"kiln serve: tftp 127.0.0.1: refused: kiln serve is read-only",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("the log has no %q:\n%s", line, got)
		}
	}
}

// TestTFTPRetransmit talks TFTP by hand: a block that is not acknowledged is sent again, an
// old acknowledgement does not make it resend, and an OACK answers blksize and tsize.
func TestTFTPRetransmit(t *testing.T) {
	w := newWorld(t, "builder")
	srv := &Server{Tree: &Tree{Dir: w.dir}}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeTFTP(ctx, conn) }()
	defer func() { cancel(); <-done; conn.Close() }()

	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rrq := []byte("\x00\x01systems/builder/kernel\x00octet\x00blksize\x001024\x00tsize\x000\x00timeout\x001\x00")
	if _, err := c.WriteTo(rrq, conn.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	recv := func() (string, *net.UDPAddr) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n]), from
	}
	oack, peer := recv()
	if oack != "\x00\x06blksize\x001024\x00tsize\x001536\x00timeout\x001\x00" {
		t.Fatalf("OACK %q", oack)
	}
	if peer.Port == conn.LocalAddr().(*net.UDPAddr).Port {
		t.Error("the transfer answered from the listening port, not its own")
	}
	ack := func(n byte) {
		if _, err := c.WriteToUDP([]byte{0, 4, 0, n}, peer); err != nil {
			t.Fatal(err)
		}
	}
	ack(0)
	first, _ := recv()
	if len(first) != 4+1024 || first[:4] != "\x00\x03\x00\x01" {
		t.Fatalf("block 1: %d bytes, header %q", len(first), first[:4])
	}
	// No acknowledgement: the same block again after the timeout (1 s, as asked).
	again, _ := recv()
	if again != first {
		t.Fatal("the resent block differs")
	}
	ack(1)
	second, _ := recv()
	if len(second) != 4+512 || second[:4] != "\x00\x03\x00\x02" {
		t.Fatalf("block 2: %d bytes, header %q", len(second), second[:4])
	}
	ack(1) // a duplicate of an old acknowledgement: nothing is sent for it
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := c.ReadFromUDP(buf); err == nil {
		t.Errorf("an old acknowledgement made it send %q", buf[:n])
	}
	ack(2)
}

// syncBuffer is a bytes.Buffer safe for the servers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTFTPRefuses: packets that are not requests get no answer (answering an error with an
// error lets two servers loop), a timeout option is capped, and requests from outside Allow get
// nothing, over TFTP and HTTP (403).
func TestTFTPRefuses(t *testing.T) {
	w := newWorld(t, "builder")
	var log syncBuffer
	srv := &Server{Tree: &Tree{Dir: w.dir}, Log: &log}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeTFTP(ctx, conn) }()
	defer func() { cancel(); <-done; conn.Close() }()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	quiet := func(what string) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, _, err := c.ReadFromUDP(buf); err == nil {
			t.Errorf("%s: answered %q", what, buf[:n])
		}
	}
	for name, p := range map[string]string{"an error": "\x00\x05\x00\x01nope\x00", "data": "\x00\x03\x00\x01abc", "an ack": "\x00\x04\x00\x01", "opcode 9": "\x00\x09"} {
		if _, err := c.WriteTo([]byte(p), conn.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		quiet(name)
	}
	if _, err := c.WriteTo([]byte("\x00\x01systems/builder/cmdline\x00octet\x00timeout\x0060\x00"), conn.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, peer, err := c.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "\x00\x06timeout\x0010\x00" {
		t.Fatalf("OACK for timeout 60: %q, %v (want it capped at 10)", buf[:n], err)
	}
	_, _ = c.WriteToUDP(errorPacket(0, "enough"), peer) // the client ends it

	srv.Allow = []*net.IPNet{{IP: net.IPv4(10, 0, 0, 0), Mask: net.CIDRMask(8, 32)}}
	if _, err := c.WriteTo([]byte("\x00\x01systems/builder/cmdline\x00octet\x00"), conn.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	quiet("a request from outside -allow")
	ts := httptest.NewServer(srv)
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/boot.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("HTTP from outside -allow: %s", resp.Status)
	}
	if got := log.String(); !strings.Contains(got, "kiln serve: tftp 127.0.0.1: refused: not in -allow") || !strings.Contains(got, `GET "/boot.ipxe": 403`) {
		t.Errorf("the log:\n%s", got)
	}
}
