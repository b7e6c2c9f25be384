package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

var testMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// testACK is an ACK with every option kiln reads, as a server would send it.
func testACK(t *testing.T, extra ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithHwAddr(testMAC),
		dhcpv4.WithYourIP(net.IPv4(10, 0, 2, 15)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 2, 2))),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(10, 0, 2, 2))),
		dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(10, 0, 2, 3), net.IPv4(10, 0, 2, 4))),
		dhcpv4.WithOption(dhcpv4.OptNTPServers(net.IPv4(10, 0, 2, 123))),
		dhcpv4.WithOption(dhcpv4.OptHostName("node-7")),
		dhcpv4.WithDomainSearchList("kiln.test", "example.org"),
		dhcpv4.WithLeaseTime(86400),
	}
	ack, err := dhcpv4.New(append(mods, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

func testLease(t *testing.T, iface string, extra ...dhcpv4.Modifier) *Lease {
	t.Helper()
	l, err := leaseFromACK(iface, testACK(t, extra...), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLeaseFromACK(t *testing.T) {
	l := testLease(t, "eth0")
	if l.IPNet().String() != "10.0.2.15/24" || !l.Router.Equal(net.IPv4(10, 0, 2, 2)) || !l.ServerID.Equal(net.IPv4(10, 0, 2, 2)) {
		t.Errorf("address %s router %s server %s", l.IPNet(), l.Router, l.ServerID)
	}
	if l.LeaseTime != 24*time.Hour || l.T1 != 12*time.Hour || l.T2 != 21*time.Hour {
		t.Errorf("times %s %s %s; want RFC 2131's defaults for T1 and T2", l.LeaseTime, l.T1, l.T2)
	}
	if l.Hostname != "node-7" || !slices.Equal(l.Search, []string{"kiln.test", "example.org"}) || len(l.NTP) != 1 {
		t.Errorf("host name %q search %q ntp %v", l.Hostname, l.Search, l.NTP)
	}
	if got := l.Summary(); got != "10.0.2.15/24 via 10.0.2.2, dns 10.0.2.3 10.0.2.4, lease 24h0m0s" {
		t.Errorf("summary %q", got)
	}

	// No mask: the class mask. No search list: the domain name. Option 121 wins over the router.
	ack := testACK(t, dhcpv4.WithoutOption(dhcpv4.OptionSubnetMask), dhcpv4.WithoutOption(dhcpv4.OptionDNSDomainSearchList),
		dhcpv4.WithOption(dhcpv4.OptDomainName("corp.test")), dhcpv4.WithoutOption(dhcpv4.OptionDomainNameServer),
		dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(
			&dhcpv4.Route{Dest: mustCIDR(t, "0.0.0.0/0"), Router: net.IPv4(10, 0, 2, 1)},
			&dhcpv4.Route{Dest: mustCIDR(t, "198.51.100.0/24"), Router: net.IPv4(10, 0, 2, 254)})),
		dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(time.Hour)), dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(2*time.Hour)))
	l, err := leaseFromACK("eth1", ack, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if l.IPNet().String() != "10.0.2.15/8" || !slices.Equal(l.Search, []string{"corp.test"}) || l.T1 != time.Hour || l.T2 != 2*time.Hour {
		t.Errorf("address %s search %q T1 %s T2 %s", l.IPNet(), l.Search, l.T1, l.T2)
	}
	if got := l.Summary(); got != "10.0.2.15/8 via 10.0.2.1 and 1 route (option 121), no dns, lease 24h0m0s" {
		t.Errorf("summary %q", got)
	}

	forever := testLease(t, "eth0", dhcpv4.WithLeaseTime(0xffffffff))
	if !forever.Infinite() || forever.Summary() != "10.0.2.15/24 via 10.0.2.2, dns 10.0.2.3 10.0.2.4, lease forever" {
		t.Errorf("infinite lease: %v %q", forever.Infinite(), forever.Summary())
	}
	if _, err := leaseFromACK("eth0", testACK(t, dhcpv4.WithYourIP(net.IPv4zero)), time.Now()); err == nil {
		t.Error("an ACK without an address was accepted")
	}
}

func mustCIDR(t *testing.T, s string) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestLeaseFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	l := testLease(t, "eth0", dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(
		&dhcpv4.Route{Dest: mustCIDR(t, "198.51.100.0/24"), Router: net.IPv4(10, 0, 2, 254)})))
	l.Obtained = time.Now().Add(-time.Hour)
	if err := saveLease(dir, l); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "eth0.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"interface": "eth0", "address": "10.0.2.15", "mask": "255.255.255.0", "router": "10.0.2.2",
		"server_id": "10.0.2.2", "hostname": "node-7", "lease_seconds": 86400.0, "t1_seconds": 43200.0, "t2_seconds": 75600.0} {
		if f[k] != want {
			t.Errorf("%s = %v, want %v", k, f[k], want)
		}
	}
	got, err := loadLeases(dir, func(format string, args ...any) { t.Errorf(format, args...) })
	if err != nil || len(got) != 1 {
		t.Fatalf("loadLeases: %v, %d leases", err, len(got))
	}
	back := got[0]
	if back.IPNet().String() != l.IPNet().String() || !back.Router.Equal(l.Router) || back.LeaseTime != l.LeaseTime ||
		back.T1 != l.T1 || back.T2 != l.T2 || !slices.Equal(back.Search, l.Search) || len(back.Routes) != 1 ||
		!bytes.Equal(back.ACK.ToBytes(), l.ACK.ToBytes()) {
		t.Errorf("read back %+v\nwrote %+v", back, l)
	}
	if d := back.Obtained.Sub(l.Obtained); d < -time.Second || d > time.Second {
		t.Errorf("obtained %s after the round trip, %s before", back.Obtained, l.Obtained)
	}

	// The rebuilt lease makes the request a renewal needs: from our address, to its server.
	nl := back.nclient()
	req, err := dhcpv4.NewRenewFromAck(nl.ACK)
	if err != nil {
		t.Fatal(err)
	}
	if !req.ClientIPAddr.Equal(net.IPv4(10, 0, 2, 15)) || !bytes.Equal(req.ClientHWAddr, testMAC) || req.MessageType() != dhcpv4.MessageTypeRequest {
		t.Errorf("renewal request %s", req.Summary())
	}
	ack := testACK(t)
	if !nclient4.IsCorrectServer(nl.Offer.ServerIdentifier())(ack) {
		t.Error("the rebuilt lease does not accept its own server's ACK")
	}

	// A broken file is reported and left out.
	if err := os.WriteFile(filepath.Join(dir, "eth1.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	var warned int
	got, _ = loadLeases(dir, func(string, ...any) { warned++ })
	if len(got) != 1 || warned != 1 {
		t.Errorf("with a broken file: %d leases, %d warnings", len(got), warned)
	}
}

func TestResolvConf(t *testing.T) {
	eth0 := testLease(t, "eth0")
	eth1 := testLease(t, "eth1", dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(10, 0, 2, 4), net.IPv4(192, 0, 2, 53))),
		dhcpv4.WithDomainSearchList("example.org", "other.test"))
	bare := testLease(t, "eth2", dhcpv4.WithoutOption(dhcpv4.OptionDomainNameServer), dhcpv4.WithoutOption(dhcpv4.OptionDNSDomainSearchList))
	static := staticLease(t, "eth3", "10.1.0.11::10.1.0.1:24::eth3:off:10.1.0.53:10.0.2.3:10.1.0.123")
	staticBare := staticLease(t, "eth4", "10.1.0.12:::24::eth4:off")
	tests := []struct {
		leases []*Lease
		want   string
	}{
		{nil, "# kiln network: no DHCP lease, so no name servers\n"},
		{[]*Lease{eth0}, "# kiln network: from the DHCP lease of eth0\n" +
			"search kiln.test example.org\n" +
			"nameserver 10.0.2.3\n" +
			"nameserver 10.0.2.4\n"},
		{[]*Lease{eth0, eth1}, "# kiln network: from the DHCP leases of eth0, eth1\n" +
			"search kiln.test example.org other.test\n" +
			"nameserver 10.0.2.3\n" +
			"nameserver 10.0.2.4\n" +
			"nameserver 192.0.2.53\n"},
		{[]*Lease{bare}, "# kiln network: from the DHCP lease of eth2\n" +
			"# the DHCP server named no name servers\n"},
		{[]*Lease{eth0, static}, "# kiln network: from the DHCP lease of eth0 and the static settings of eth3\n" +
			"search kiln.test example.org\n" +
			"nameserver 10.0.2.3\n" +
			"nameserver 10.0.2.4\n" +
			"nameserver 10.1.0.53\n"},
		{[]*Lease{static, staticBare}, "# kiln network: from the static settings of eth3, eth4\n" +
			"nameserver 10.1.0.53\n" +
			"nameserver 10.0.2.3\n"},
		{[]*Lease{staticBare}, "# kiln network: from the static settings of eth4\n" +
			"# the static settings name no name servers (dns0-ip, dns1-ip)\n"},
		{[]*Lease{bare, staticBare}, "# kiln network: from the DHCP lease of eth2 and the static settings of eth4\n" +
			"# neither the DHCP servers nor the static settings name name servers\n"},
	}
	for _, tt := range tests {
		if got := string(resolvConf(tt.leases)); got != tt.want {
			t.Errorf("resolv.conf for %d leases:\n%s\nwant:\n%s", len(tt.leases), got, tt.want)
		}
	}
	eth1.NTP = []net.IP{net.IPv4(10, 0, 2, 123).To4(), net.IPv4(192, 0, 2, 123).To4()}
	if got := string(ntpServers([]*Lease{eth0, eth1})); got != "10.0.2.123\n192.0.2.123\n" {
		t.Errorf("ntp %q", got)
	}
	if got := string(ntpServers([]*Lease{static, eth1})); got != "10.1.0.123\n10.0.2.123\n192.0.2.123\n" {
		t.Errorf("ntp with static settings %q", got)
	}
	if got := ntpServers(nil); len(got) != 0 {
		t.Errorf("ntp with no lease %q", got)
	}
}

// Static settings go to IFACE.json without an ACK and come back from its fields, marked static.
func TestStaticFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	l := staticLease(t, "eth1", "10.1.0.11::10.1.0.1:24:node-1:eth1:off:10.1.0.53:10.1.0.54:10.1.0.123")
	l.Obtained = time.Now()
	if err := saveLease(dir, l); err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "eth1.json"))), &f); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"interface": "eth1", "static": true, "source": "the kernel command line", "address": "10.1.0.11",
		"mask": "255.255.255.0", "router": "10.1.0.1", "hostname": "node-1", "lease_seconds": 4294967295.0} {
		if f[k] != want {
			t.Errorf("%s = %v, want %v", k, f[k], want)
		}
	}
	if _, ok := f["ack"]; ok {
		t.Errorf("static settings with an ACK: %v", f["ack"])
	}
	got, err := loadLeases(dir, func(format string, args ...any) { t.Errorf(format, args...) })
	if err != nil || len(got) != 1 {
		t.Fatalf("loadLeases: %v, %d leases", err, len(got))
	}
	back := got[0]
	if !back.Static || !back.Infinite() || back.ACK != nil || back.Summary() != l.Summary() || back.Hostname != "node-1" ||
		!slices.EqualFunc(back.NTP, l.NTP, net.IP.Equal) || !bytes.Equal(resolvConf(got), resolvConf([]*Lease{l})) {
		t.Errorf("read back %+v\nwrote %+v", back, l)
	}
	for _, bad := range []string{`{"interface": "eth1", "static": true, "address": "10.1.0.11"}`,
		`{"interface": "eth1", "static": true, "address": "10.1.0.11", "mask": "255.255.255.0", "dns": ["x"]}`} {
		if _, err := decodeLease([]byte(bad)); err == nil {
			t.Errorf("decodeLease(%s) worked", bad)
		}
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolvconf", "resolv.conf")
	for _, content := range []string{"one\n", "two\n"} {
		if err := writeAtomic(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("content %q, want %q", b, content)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	if err := writeAtomic(filepath.Join(path, "below-a-file"), nil); err == nil {
		t.Error("writing below a file worked")
	}
}

func TestValidHostname(t *testing.T) {
	for name, want := range map[string]bool{"node-7": true, "a.example.org": true, "": false, "-x": false,
		"has space": false, "x\x00": false, string(make([]byte, 65)): false} {
		if got := validHostname(name); got != want {
			t.Errorf("validHostname(%q) = %v", name, got)
		}
	}
}

func TestRetryWait(t *testing.T) {
	for remaining, want := range map[time.Duration]time.Duration{
		4 * time.Hour: 2 * time.Hour, 90 * time.Second: time.Minute, 30 * time.Second: 30 * time.Second,
	} {
		if got := retryWait(remaining); got != want {
			t.Errorf("retryWait(%s) = %s, want %s", remaining, got, want)
		}
	}
}
