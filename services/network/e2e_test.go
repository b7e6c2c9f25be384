package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/kiln-os/kiln/services/network/internal/testenv"
)

// The tests below run the command itself, as a child process of the test binary (TestMain
// runs runMain when this variable is set), inside network namespaces of their own, so that
// nothing touches the machine's network, and in a UTS namespace of its own, so that setting the
// host name touches nothing either. They need root.
const runMainEnv = "KILN_NETWORK_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(runMain(os.Args[1:], os.Stderr))
	}
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "network namespaces, veth pairs and a DHCP server need root (run the tests as root)")
	}
}

// inNS runs fn on a thread inside ns, and puts the thread back. A thread that cannot be put
// back is never used again: its goroutine exits locked, and Go ends the thread.
func inNS(t *testing.T, ns netns.NsHandle, fn func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err)
			return // still locked: the thread goes
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// newNS makes a network namespace, with lo down as in a fresh boot, and a netlink handle in it.
func newNS(t *testing.T) (netns.NsHandle, *netlink.Handle) {
	t.Helper()
	ns := make(chan netns.NsHandle, 1)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// netns.New moves this thread into the new namespace; it is not put back, so the
		// goroutine exits locked and the thread goes with it.
		h, err := netns.New()
		ns <- h
		errc <- err
	}()
	h, err := <-ns, <-errc
	if err != nil {
		t.Fatalf("a new network namespace: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	return h, nh
}

// syncBuffer collects a child's output while the test reads it.
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

// start runs the command with args in ns and a new UTS namespace.
func start(t *testing.T, ns netns.NsHandle, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUTS}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// The child gets the namespaces of the thread that forks it.
	if err := inNS(t, ns, cmd.Start); err != nil {
		t.Fatalf("starting network %q: %v", args, err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, out
}

// run runs the command to its end and returns its output; it must exit 0.
func run(t *testing.T, ns netns.NsHandle, args ...string) string {
	t.Helper()
	cmd, out := start(t, ns, args...)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("network %q: %v; it said:\n%s", args, err, out)
	}
	t.Logf("network %q said:\n%s", args, out)
	return out.String()
}

// waitFor waits until the output has the text, or fails.
func waitFor(t *testing.T, out *syncBuffer, text string, limit time.Duration) {
	t.Helper()
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(out.String(), text) {
			return
		}
	}
	t.Fatalf("no %q within %s; the output:\n%s", text, limit, out)
}

// stop sends SIGTERM and wants exit status 0.
// exited reports whether cmd's process has ended (a zombie not yet waited for), from its state
// in /proc, without reaping it.
func exited(t *testing.T, cmd *exec.Cmd) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return true
	}
	// pid (comm) state ...: the state follows the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) == 0 || f[0] == "Z" || f[0] == "X"
}

func stop(t *testing.T, cmd *exec.Cmd, out *syncBuffer) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGTERM: %v; it said:\n%s", err, out)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("still running 10s after SIGTERM; it said:\n%s", out)
	}
}

// paths are the files a run writes, under a test's folder.
type paths struct{ cmdline, run, config, resolv, hostname string }

func newPaths(t *testing.T, cmdline string) paths {
	dir := t.TempDir()
	p := paths{filepath.Join(dir, "cmdline"), filepath.Join(dir, "run", "network"), filepath.Join(dir, "run", "config"),
		filepath.Join(dir, "run", "resolvconf", "resolv.conf"), filepath.Join(dir, "etc", "hostname")}
	if err := os.WriteFile(p.cmdline, []byte(cmdline+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p paths) args(mode string, extra ...string) []string {
	return append([]string{mode, "-cmdline", p.cmdline, "-run-dir", p.run, "-config-dir", p.config,
		"-resolv", p.resolv, "-hostname-file", p.hostname}, extra...)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testServer is a DHCP server for one client: 192.0.2.10/24 with every option kiln reads.
type testServer struct {
	lease, t1, t2 time.Duration
	mode          atomic.Int32 // answer, ignoreRenewals or silent
	renewals      atomic.Int32 // requests from a client that has the address (ciaddr set)
}

const (
	answer         = iota
	ignoreRenewals // answers new clients only: a renewal fails, a rebinding works
	silent
)

func (s *testServer) handle(t *testing.T) server4.Handler {
	return func(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
		mode := s.mode.Load()
		renewal := m.MessageType() == dhcpv4.MessageTypeRequest && !m.ClientIPAddr.IsUnspecified()
		if renewal {
			s.renewals.Add(1)
		}
		if mode == silent || (mode == ignoreRenewals && renewal) {
			return
		}
		var kind dhcpv4.MessageType
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			kind = dhcpv4.MessageTypeOffer
		case dhcpv4.MessageTypeRequest:
			kind = dhcpv4.MessageTypeAck
		default:
			return
		}
		reply, err := dhcpv4.NewReplyFromRequest(m,
			dhcpv4.WithMessageType(kind),
			dhcpv4.WithYourIP(net.IPv4(192, 0, 2, 10)),
			dhcpv4.WithServerIP(net.IPv4(192, 0, 2, 1)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 0, 2, 1))),
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(192, 0, 2, 1))),
			dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(
				&dhcpv4.Route{Dest: mustCIDR(t, "0.0.0.0/0"), Router: net.IPv4(192, 0, 2, 1)},
				&dhcpv4.Route{Dest: mustCIDR(t, "198.51.100.0/24"), Router: net.IPv4(192, 0, 2, 254)})),
			dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(192, 0, 2, 53), net.IPv4(192, 0, 2, 54))),
			dhcpv4.WithDomainSearchList("kiln.test"),
			dhcpv4.WithOption(dhcpv4.OptHostName("node-7")),
			dhcpv4.WithOption(dhcpv4.OptNTPServers(net.IPv4(192, 0, 2, 123))),
			dhcpv4.WithLeaseTime(uint32(s.lease/time.Second)),
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(s.t1)),
			dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(s.t2)),
		)
		if err != nil {
			t.Errorf("reply: %v", err)
			return
		}
		if _, err := conn.WriteTo(reply.ToBytes(), peer); err != nil {
			t.Logf("server: sending to %s: %v", peer, err)
		}
	}
}

// serve starts ts on one end of a veth pair, in a namespace of its own, and returns a client
// namespace that has the other end as eth0.
func serve(t *testing.T, ts *testServer) (netns.NsHandle, *netlink.Handle) {
	t.Helper()
	srvNS, srvH := newNS(t)
	cliNS, cliH := newNS(t)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "srv0"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(cliNS))}
	if err := srvH.LinkAdd(veth); err != nil {
		testenv.SkipOrFail(t, "a veth pair: %v (the kernel needs veth)", err)
	}
	srv0, err := srvH.LinkByName("srv0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srvH.AddrAdd(srv0, &netlink.Addr{IPNet: mustCIDR4(t, "192.0.2.1/24")}); err != nil {
		t.Fatal(err)
	}
	if err := srvH.LinkSetUp(srv0); err != nil {
		t.Fatal(err)
	}
	var conn net.PacketConn
	if err := inNS(t, srvNS, func() (err error) {
		conn, err = server4.NewIPv4UDPConn("srv0", &net.UDPAddr{Port: dhcpv4.ServerPort})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv, err := server4.NewServer("", nil, ts.handle(t), server4.WithConn(conn))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() { srv.Close() })
	return cliNS, cliH
}

// TestDHCP: a server on one end of a veth pair, network -onboot on the other end (eth0, found
// as an ethernet link, and eth1 where nobody answers), then network -renew.
func TestDHCP(t *testing.T) {
	needRoot(t)
	ts := &testServer{lease: 60 * time.Second, t1: 2 * time.Second, t2: 50 * time.Second}
	cliNS, cliH := serve(t, ts)
	addSilentLink(t, cliNS, "eth1")

	p := newPaths(t, "console=ttyS0 quiet")
	out := run(t, cliNS, p.args("-onboot", "-timeout", "3s")...)
	for _, line := range []string{
		"eth0: 192.0.2.10/24 via 192.0.2.1 and 1 route (option 121), dns 192.0.2.53 192.0.2.54, lease 1m0s (",
		"eth1: no DHCP lease within 3s; booting without network on eth1\n",
		"host name node-7 (from DHCP on eth0)\n",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("no line %q", line)
		}
	}

	// The kernel's side, seen from the client's namespace.
	eth0, err := cliH.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := cliH.AddrList(eth0, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "192.0.2.10/24" || addrs[0].ValidLft <= 0 || addrs[0].ValidLft > 60 {
		t.Errorf("eth0's addresses: %v, %v (want 192.0.2.10/24 valid for at most 10s)", addrs, err)
	}
	routes, err := cliH.RouteList(eth0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range routes {
		if r.Gw != nil {
			dst := "0.0.0.0/0"
			if r.Dst != nil {
				dst = r.Dst.String()
			}
			got = append(got, dst+" via "+r.Gw.String())
		}
	}
	if want := "0.0.0.0/0 via 192.0.2.1,198.51.100.0/24 via 192.0.2.254"; strings.Join(got, ",") != want {
		t.Errorf("eth0's routes %q, want %q", got, want)
	}
	if lo, err := cliH.LinkByName("lo"); err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("lo is not up: %v", err)
	}

	// The files.
	if got, want := readFile(t, p.resolv), "# kiln network: from the DHCP lease of eth0\nsearch kiln.test\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"; got != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, want)
	}
	if got := readFile(t, filepath.Join(p.run, "ntp")); got != "192.0.2.123\n" {
		t.Errorf("ntp %q", got)
	}
	if got := readFile(t, p.hostname); got != "node-7\n" {
		t.Errorf("hostname file %q", got)
	}
	if _, err := os.Stat(filepath.Join(p.run, "eth1.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("eth1.json without a lease: %v", err)
	}
	first := leaseJSON(t, filepath.Join(p.run, "eth0.json"))
	if first.Address != "192.0.2.10" || first.Mask != "255.255.255.0" || first.ServerID != "192.0.2.1" || first.LeaseSeconds != 60 ||
		first.T1Seconds != 2 || first.T2Seconds != 50 || strings.Join(first.NTP, ",") != "192.0.2.123" || len(first.ACK) == 0 {
		t.Errorf("eth0.json %+v", first)
	}

	// The renewal: T1 has passed by now, so it renews at once.
	cmd, rout := start(t, cliNS, p.args("-renew")...)
	waitFor(t, rout, "eth0: renewed 192.0.2.10/24, lease 1m0s\n", 15*time.Second)
	stop(t, cmd, rout)
	t.Logf("network -renew said:\n%s", rout)
	if ts.renewals.Load() == 0 {
		t.Error("the server saw no renewal")
	}
	if next := leaseJSON(t, filepath.Join(p.run, "eth0.json")); next.ObtainedBoottime <= first.ObtainedBoottime {
		t.Errorf("eth0.json not updated by the renewal: obtained %v, then %v", first.ObtainedBoottime, next.ObtainedBoottime)
	}
	if addrs, err := cliH.AddrList(eth0, netlink.FAMILY_V4); err != nil || len(addrs) != 1 {
		t.Errorf("eth0's addresses after the renewal: %v, %v", addrs, err)
	}
}

// TestEarlyStep: -onboot -if-cmdline PARAM does nothing without PARAM on the command line;
// with it, it gets the lease, and the usual -onboot after it keeps that lease (no new request
// to the server) and writes the files again.
func TestEarlyStep(t *testing.T) {
	needRoot(t)
	ts := &testServer{lease: 60 * time.Second, t1: 30 * time.Second, t2: 50 * time.Second}
	cliNS, cliH := serve(t, ts)

	without := newPaths(t, "console=ttyS0")
	if out := run(t, cliNS, without.args("-onboot", "-timeout", "3s", "-if-cmdline", "kiln.metadata.url")...); out != "" {
		t.Errorf("without the parameter it said %q, want nothing", out)
	}
	if _, err := os.Stat(without.resolv); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("without the parameter it wrote %s: %v", without.resolv, err)
	}

	p := newPaths(t, "console=ttyS0 kiln.metadata.url=http://192.0.2.1/seed/")
	out := run(t, cliNS, p.args("-onboot", "-timeout", "3s", "-if-cmdline", "kiln.metadata.url")...)
	if !strings.Contains(out, "eth0: 192.0.2.10/24 via 192.0.2.1") {
		t.Errorf("the early step said %q, want eth0's lease", out)
	}
	if err := os.Remove(p.resolv); err != nil {
		t.Fatal(err)
	}
	ts.mode.Store(silent) // a second request would get no answer
	out = run(t, cliNS, p.args("-onboot", "-timeout", "3s")...)
	if !strings.Contains(out, "eth0: 192.0.2.10/24 via 192.0.2.1") || !strings.Contains(out, "(kept from the earlier onboot step)") {
		t.Errorf("the usual step said %q, want eth0's lease kept", out)
	}
	if got := readFile(t, p.resolv); !strings.Contains(got, "nameserver 192.0.2.53") {
		t.Errorf("resolv.conf after the usual step:\n%s", got)
	}

	// Static settings from the metadata for the same interface replace the early lease's
	// address: one address, the static one.
	static := filepath.Join(p.config, "network", "static")
	if err := os.MkdirAll(filepath.Dir(static), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(static, []byte("192.0.2.50::192.0.2.1:24::eth0:off\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, cliNS, p.args("-onboot", "-timeout", "3s")...)
	eth0, err := cliH.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := cliH.AddrList(eth0, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "192.0.2.50/24" {
		t.Errorf("eth0's addresses after static settings replaced the early lease: %v, %v", addrs, err)
	}
}

// TestRebindAndExpiry: a server that ignores renewals makes the renewer rebind at T2; a server
// that is gone makes the lease run out, and the address goes with it.
func TestRebindAndExpiry(t *testing.T) {
	needRoot(t)
	ts := &testServer{lease: 4 * time.Second, t1: time.Second, t2: 3 * time.Second}
	ts.mode.Store(ignoreRenewals)
	cliNS, cliH := serve(t, ts)
	p := newPaths(t, "kiln.net=eth0")
	run(t, cliNS, p.args("-onboot", "-timeout", "3s")...)
	cmd, out := start(t, cliNS, p.args("-renew")...)
	waitFor(t, out, "eth0: no answer from 192.0.2.1 to renew 192.0.2.10/24; asking any server (rebinding)\n", 10*time.Second)
	waitFor(t, out, "eth0: 192.0.2.10/24 via 192.0.2.1 and 1 route (option 121), dns 192.0.2.53 192.0.2.54, lease 4s (rebound)\n", 5*time.Second)
	ts.mode.Store(silent)
	waitFor(t, out, "eth0: the lease on 192.0.2.10/24 expired; address removed; asking for a new one\n", 15*time.Second)
	eth0, err := cliH.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if addrs, err := cliH.AddrList(eth0, netlink.FAMILY_V4); err != nil || len(addrs) != 0 {
		t.Errorf("eth0's addresses after the lease ran out: %v, %v", addrs, err)
	}
	if got := readFile(t, p.resolv); got != "# kiln network: no DHCP lease, so no name servers\n" {
		t.Errorf("resolv.conf after the lease ran out: %q", got)
	}
	if got := readFile(t, filepath.Join(p.run, "ntp")); got != "" {
		t.Errorf("ntp after the lease ran out: %q", got)
	}
	stop(t, cmd, out)
	t.Logf("network -renew said:\n%s", out)
}

// addSilentLink adds an ethernet link to ns where nobody answers: one end of a veth pair whose
// other end is up, alone in a namespace of its own. (A dummy link would do, but not every
// kernel has the driver.)
func addSilentLink(t *testing.T, ns netns.NsHandle, name string) {
	t.Helper()
	_, voidH := newNS(t)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "void0"}, PeerName: name, PeerNamespace: netlink.NsFd(int(ns))}
	if err := voidH.LinkAdd(veth); err != nil {
		testenv.SkipOrFail(t, "a veth pair: %v (the kernel needs veth)", err)
	}
	void0, err := voidH.LinkByName("void0")
	if err != nil {
		t.Fatal(err)
	}
	if err := voidH.LinkSetUp(void0); err != nil {
		t.Fatal(err)
	}
}

func mustCIDR4(t *testing.T, s string) *net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip.To4()
	return n
}

func leaseJSON(t *testing.T, path string) leaseFile {
	t.Helper()
	var f leaseFile
	if err := json.Unmarshal([]byte(readFile(t, path)), &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestNoLease: the node boots without network, exit 0, and says why.
func TestNoLease(t *testing.T) {
	needRoot(t)
	t.Run("no server", func(t *testing.T) {
		ns, _ := newNS(t)
		addSilentLink(t, ns, "eth0")
		p := newPaths(t, "kiln.net=eth0")
		if err := os.MkdirAll(p.config, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p.config, "hostname"), []byte("meta-node\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		out := run(t, ns, p.args("-onboot", "-timeout", "2s")...)
		if took := time.Since(begin); took > 8*time.Second {
			t.Errorf("took %s with -timeout 2s", took)
		}
		want := "eth0: no DHCP lease within 2s; booting without network on eth0\n" +
			"host name meta-node (from " + filepath.Join(p.config, "hostname") + ")\n"
		if out != want {
			t.Errorf("said:\n%s\nwant:\n%s", out, want)
		}
		if got := readFile(t, p.resolv); got != "# kiln network: no DHCP lease, so no name servers\n" {
			t.Errorf("resolv.conf %q", got)
		}
		if got := readFile(t, filepath.Join(p.run, "ntp")); got != "" {
			t.Errorf("ntp %q", got)
		}
		if got := readFile(t, p.hostname); got != "meta-node\n" {
			t.Errorf("hostname file %q", got)
		}
		// The renewer has nothing to do: it says so and waits for SIGTERM.
		cmd, rout := start(t, ns, p.args("-renew")...)
		waitFor(t, rout, "no leases to renew\n", 10*time.Second)
		time.Sleep(200 * time.Millisecond)
		if exited(t, cmd) {
			t.Fatalf("the renewer exited; it said:\n%s", rout)
		}
		stop(t, cmd, rout)
	})
	t.Run("no interface", func(t *testing.T) {
		ns, _ := newNS(t)
		p := newPaths(t, "")
		out := run(t, ns, p.args("-onboot")...)
		if out != "no network interfaces besides lo; booting without network\n" {
			t.Errorf("said %q", out)
		}
		if got := readFile(t, p.resolv); got != "# kiln network: no DHCP lease, so no name servers\n" {
			t.Errorf("resolv.conf %q", got)
		}
	})
	t.Run("kiln.net=none", func(t *testing.T) {
		ns, _ := newNS(t)
		addSilentLink(t, ns, "eth0")
		p := newPaths(t, "kiln.net=none")
		if out := run(t, ns, p.args("-onboot")...); out != "kiln.net=none; no interface configured\n" {
			t.Errorf("said %q", out)
		}
		if _, err := os.Stat(p.resolv); err != nil {
			t.Errorf("resolv.conf: %v", err)
		}
	})
	t.Run("missing interface", func(t *testing.T) {
		ns, _ := newNS(t)
		p := newPaths(t, "kiln.net=eth9")
		if out := run(t, ns, p.args("-onboot")...); out != "eth9: no such interface; booting without network on eth9\n" {
			t.Errorf("said %q", out)
		}
	})
	t.Run("run not writable", func(t *testing.T) {
		ns, _ := newNS(t)
		p := newPaths(t, "")
		p.run = filepath.Join(p.cmdline, "network") // below a file
		cmd, out := start(t, ns, p.args("-onboot")...)
		err := cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out.String(), "writing the network state: ") {
			t.Errorf("exit %v, said %q; want status 1 and the reason", err, out)
		}
	})
}

// TestStatic: ip= on the kernel command line sets the first ethernet link's address, route,
// name server, NTP server and host name without DHCP; the renewer leaves it alone.
func TestStatic(t *testing.T) {
	needRoot(t)
	ns, h := newNS(t)
	addSilentLink(t, ns, "eth0")
	p := newPaths(t, "console=ttyS0 ip=10.1.0.11::10.1.0.1:24:static-node::off:10.1.0.53::10.1.0.123")
	out := run(t, ns, p.args("-onboot", "-timeout", "30s")...)
	if want := "eth0: 10.1.0.11/24 via 10.1.0.1, dns 10.1.0.53 (static, from the kernel command line)\n" +
		"host name static-node (from the kernel command line)\n"; out != want {
		t.Errorf("said:\n%s\nwant:\n%s", out, want)
	}
	checkStatic(t, h, "eth0", "10.1.0.11/24", "10.1.0.1")
	if got, want := readFile(t, p.resolv), "# kiln network: from the static settings of eth0\nnameserver 10.1.0.53\n"; got != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, want)
	}
	if got := readFile(t, filepath.Join(p.run, "ntp")); got != "10.1.0.123\n" {
		t.Errorf("ntp %q", got)
	}
	if got := readFile(t, p.hostname); got != "static-node\n" {
		t.Errorf("hostname file %q", got)
	}
	if f := leaseJSON(t, filepath.Join(p.run, "eth0.json")); !f.Static || f.Source != "the kernel command line" || f.Address != "10.1.0.11" ||
		f.Router != "10.1.0.1" || len(f.ACK) != 0 {
		t.Errorf("eth0.json %+v", f)
	}

	// The renewer says it has nothing to renew, waits for SIGTERM, and touches nothing.
	before := readFile(t, p.resolv)
	cmd, rout := start(t, ns, p.args("-renew")...)
	waitFor(t, rout, "eth0: 10.1.0.11/24 is static (from the kernel command line); nothing to renew\nno leases to renew\n", 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	if exited(t, cmd) {
		t.Fatalf("the renewer exited; it said:\n%s", rout)
	}
	stop(t, cmd, rout)
	if got := rout.String(); got != "eth0: 10.1.0.11/24 is static (from the kernel command line); nothing to renew\nno leases to renew\n" {
		t.Errorf("network -renew said:\n%s", got)
	}
	checkStatic(t, h, "eth0", "10.1.0.11/24", "10.1.0.1")
	if got := readFile(t, p.resolv); got != before {
		t.Errorf("resolv.conf changed by the renewer:\n%s", got)
	}
}

// TestStaticAndDHCP: eth1 static from the metadata service's file, eth0 with DHCP after a bad
// line for it; resolv.conf and the NTP list merge both, the static host name wins over DHCP's,
// and the renewer renews eth0 and keeps eth1's part of the files.
func TestStaticAndDHCP(t *testing.T) {
	needRoot(t)
	ts := &testServer{lease: 60 * time.Second, t1: 2 * time.Second, t2: 50 * time.Second}
	cliNS, cliH := serve(t, ts)
	addSilentLink(t, cliNS, "eth1")
	p := newPaths(t, "console=ttyS0")
	static := filepath.Join(p.config, "network", "static")
	if err := os.MkdirAll(filepath.Dir(static), 0o755); err != nil {
		t.Fatal(err)
	}
	content := "# the storage network has no DHCP\n10.1.0.11::10.1.0.1:24:static-node:eth1:off:10.1.0.53::10.1.0.123\n" +
		"10.1.0.12:::33::eth0:off  # a typo: eth0 keeps DHCP\n"
	if err := os.WriteFile(static, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(t, cliNS, p.args("-onboot", "-timeout", "10s")...)
	for _, line := range []string{
		static + `:3: "10.1.0.12:::33::eth0:off": netmask "33": want a dotted mask (255.255.255.0) or a prefix length from 1 to 32; DHCP on eth0` + "\n",
		"eth0: 192.0.2.10/24 via 192.0.2.1 and 1 route (option 121), dns 192.0.2.53 192.0.2.54, lease 1m0s (",
		"eth1: 10.1.0.11/24 via 10.1.0.1, dns 10.1.0.53 (static, from " + static + ":2)\n",
		"host name static-node (from " + static + ":2)\n",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("no line %q", line)
		}
	}
	checkStatic(t, cliH, "eth1", "10.1.0.11/24", "10.1.0.1")
	eth0, err := cliH.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if addrs, err := cliH.AddrList(eth0, netlink.FAMILY_V4); err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "192.0.2.10/24" {
		t.Errorf("eth0's addresses: %v, %v", addrs, err)
	}
	wantResolv := "# kiln network: from the DHCP lease of eth0 and the static settings of eth1\n" +
		"search kiln.test\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nnameserver 10.1.0.53\n"
	if got := readFile(t, p.resolv); got != wantResolv {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, wantResolv)
	}
	if got := readFile(t, filepath.Join(p.run, "ntp")); got != "192.0.2.123\n10.1.0.123\n" {
		t.Errorf("ntp %q", got)
	}
	if f := leaseJSON(t, filepath.Join(p.run, "eth1.json")); !f.Static || f.Source != static+":2" {
		t.Errorf("eth1.json %+v", f)
	}
	if f := leaseJSON(t, filepath.Join(p.run, "eth0.json")); f.Static || len(f.ACK) == 0 {
		t.Errorf("eth0.json %+v", f)
	}

	cmd, rout := start(t, cliNS, p.args("-renew")...)
	waitFor(t, rout, "eth0: renewed 192.0.2.10/24, lease 1m0s\n", 15*time.Second)
	stop(t, cmd, rout)
	t.Logf("network -renew said:\n%s", rout)
	if !strings.Contains(rout.String(), "eth1: 10.1.0.11/24 is static (from "+static+":2); nothing to renew\n") {
		t.Errorf("the renewer did not say eth1 is static")
	}
	if got := readFile(t, p.resolv); got != wantResolv {
		t.Errorf("resolv.conf after the renewal:\n%s\nwant:\n%s", got, wantResolv)
	}
	if got := readFile(t, filepath.Join(p.run, "ntp")); got != "192.0.2.123\n10.1.0.123\n" {
		t.Errorf("ntp after the renewal %q", got)
	}
	checkStatic(t, cliH, "eth1", "10.1.0.11/24", "10.1.0.1")
}

// checkStatic wants the interface to have one permanent address, addr, and a default route
// through gw marked static.
func checkStatic(t *testing.T, h *netlink.Handle, name, addr, gw string) {
	t.Helper()
	link, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != addr || addrs[0].Flags&unix.IFA_F_PERMANENT == 0 {
		t.Errorf("%s's addresses: %+v, %v (want %s, permanent)", name, addrs, err, addr)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("%s is not up", name)
	}
	routes, err := h.RouteList(link, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range routes {
		if r.Gw != nil && (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") {
			found = r.Gw.String() == gw && r.Protocol == unix.RTPROT_STATIC
			if !found {
				t.Errorf("%s's default route %+v, want via %s, proto static", name, r, gw)
			}
		}
	}
	if !found {
		t.Errorf("%s has no default route via %s: %+v", name, gw, routes)
	}
}
