package main

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
)

func TestParseSelection(t *testing.T) {
	tests := []struct {
		line string
		want Selection
		err  string
	}{
		{"console=ttyS0 quiet", Selection{}, ""},
		{"kiln.net=eth0", Selection{Names: []string{"eth0"}}, ""},
		{"ro kiln.net=eth1,eth0,eth1 panic=1", Selection{Names: []string{"eth1", "eth0"}}, ""},
		{"kiln.net=none", Selection{None: true}, ""},
		{"kiln.net=none kiln.net=eth0", Selection{Names: []string{"eth0"}}, ""},
		{`foo="a kiln.net=none b" kiln.net=enp0s3`, Selection{Names: []string{"enp0s3"}}, ""},
		{"kiln.net.other=x kiln.netx=y", Selection{}, ""},
		{"kiln.net=", Selection{}, "empty interface name"},
		{"kiln.net=eth0,,eth1", Selection{}, "empty interface name"},
		{"kiln.net=averyveryverylongname", Selection{}, "longer than 15 bytes"},
		{"kiln.net=../x", Selection{}, "is not an interface name"},
	}
	for _, tt := range tests {
		got, err := ParseSelection(tt.line)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseSelection(%q) error %v, want %q", tt.line, err, tt.err)
			}
			continue
		}
		if err != nil || got.None != tt.want.None || !slices.Equal(got.Names, tt.want.Names) {
			t.Errorf("ParseSelection(%q) = %+v, %v; want %+v", tt.line, got, err, tt.want)
		}
	}
}

func TestSplitCmdline(t *testing.T) {
	got := splitCmdline("BOOT_IMAGE=/vmlinuz  a=\"b c\" \"d e\"\tf\n")
	if want := []string{"BOOT_IMAGE=/vmlinuz", "a=b c", "d e", "f"}; !slices.Equal(got, want) {
		t.Errorf("splitCmdline = %q, want %q", got, want)
	}
}

func routeStrings(routes []*netlink.Route) []string {
	var s []string
	for _, r := range routes {
		gw := "link"
		if r.Gw != nil {
			gw = r.Gw.String()
		}
		s = append(s, r.Dst.String()+" "+gw)
	}
	return s
}

func TestKernelRoutes(t *testing.T) {
	link := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "eth0", Index: 2}}
	l := testLease(t, "eth0")
	if got, want := routeStrings(kernelRoutes(link, l)), []string{"0.0.0.0/0 10.0.2.2"}; !slices.Equal(got, want) {
		t.Errorf("router option: %q, want %q", got, want)
	}
	r := kernelRoutes(link, l)[0]
	if r.Priority != 1002 || r.LinkIndex != 2 || r.Protocol != 16 {
		t.Errorf("route %+v", r)
	}

	// Option 121 replaces the router; a gateway outside the subnet gets a route on the link
	// first (a /32 lease, as some clouds give); 0.0.0.0 as the router is a route on the link.
	l = testLease(t, "eth0", dhcpv4.WithNetmask(net.CIDRMask(32, 32)), dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(
		&dhcpv4.Route{Dest: mustCIDR(t, "192.168.7.0/24"), Router: net.IPv4zero},
		&dhcpv4.Route{Dest: mustCIDR(t, "0.0.0.0/0"), Router: net.IPv4(10, 0, 0, 1)},
		&dhcpv4.Route{Dest: mustCIDR(t, "198.51.100.0/24"), Router: net.IPv4(10, 0, 0, 1)})))
	want := []string{"192.168.7.0/24 link", "10.0.0.1/32 link", "0.0.0.0/0 10.0.0.1", "198.51.100.0/24 10.0.0.1"}
	if got := routeStrings(kernelRoutes(link, l)); !slices.Equal(got, want) {
		t.Errorf("option 121: %q, want %q", got, want)
	}

	l = testLease(t, "eth0", dhcpv4.WithoutOption(dhcpv4.OptionRouter))
	if got := kernelRoutes(link, l); len(got) != 0 || !strings.Contains(l.Summary(), "(no router)") {
		t.Errorf("no router: %q, %q", routeStrings(got), l.Summary())
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"-onboot", "-renew"}, {"-bogus"}, {"-onboot", "extra"}, {"-onboot", "-timeout", "0s"}} {
		var out strings.Builder
		if got := runMain(args, &out); got != 2 {
			t.Errorf("network %q: exit %d, want 2", args, got)
		}
		if !strings.Contains(out.String(), "usage: network") && !strings.Contains(out.String(), "flag provided but not defined") {
			t.Errorf("network %q said %q", args, out.String())
		}
	}
}
