package main

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// settingString is a setting in one comparable line.
func settingString(s Setting) string {
	if s.DHCP {
		return s.Device + " dhcp"
	}
	ones, _ := s.Mask.Size()
	return fmt.Sprintf("%s %s/%d gw %v host %q dns %v ntp %v", s.Device, s.Address, ones, s.Gateway, s.Hostname, s.DNS, s.NTP)
}

func TestParseSetting(t *testing.T) {
	tests := []struct {
		value string
		want  string // settingString, or the device the error leaves (with err)
		err   string
	}{
		// Static: autoconf off, none, static, or empty with a client-ip.
		{"10.1.0.11::10.1.0.1:255.255.255.0:node-1:eth1:off:10.1.0.53:10.1.0.54:10.1.0.123",
			`eth1 10.1.0.11/24 gw 10.1.0.1 host "node-1" dns [10.1.0.53 10.1.0.54] ntp [10.1.0.123]`, ""},
		{"10.1.0.11:10.1.0.2:10.1.0.1:24::eth1:none", `eth1 10.1.0.11/24 gw 10.1.0.1 host "" dns [] ntp []`, ""},
		{"10.1.0.11:::26:::static::10.1.0.54", `eth0 10.1.0.11/26 gw <nil> host "" dns [10.1.0.54] ntp []`, ""},
		{"10.1.0.11::10.1.0.1:24", `eth0 10.1.0.11/24 gw 10.1.0.1 host "" dns [] ntp []`, ""},
		{"10.1.0.11", `eth0 10.1.0.11/8 gw <nil> host "" dns [] ntp []`, ""},               // the class mask
		{"192.168.4.9::::::off", `eth0 192.168.4.9/24 gw <nil> host "" dns [] ntp []`, ""}, // class C
		{"203.0.113.5::198.51.100.1:32::eth0:off", `eth0 203.0.113.5/32 gw 198.51.100.1 host "" dns [] ntp []`, ""},
		// DHCP: autoconf dhcp, on, any, alone or with a device; no client-ip; empty.
		{"dhcp", "eth0 dhcp", ""},
		{"on", "eth0 dhcp", ""},
		{"any", "eth0 dhcp", ""},
		{":::::eth1:dhcp", "eth1 dhcp", ""},
		{"10.1.0.11::10.1.0.1:24::eth1:dhcp", "eth1 dhcp", ""},
		{"::::node-1:eth1", "eth1 dhcp", ""},
		{"", "eth0 dhcp", ""},
		// Bad values, with the device that falls back to DHCP.
		{"off", "eth0", "autoconf off without a client-ip"},
		{"none", "eth0", "autoconf none without a client-ip"},
		{":::::eth1:static", "eth1", "autoconf static without a client-ip"},
		{"10.1.0.11:::24::eth1:bootp", "eth1", `autoconf "bootp": want off, none or static`},
		{"bogus", "eth0", `client-ip "bogus" is not an IPv4 address`},
		{"10.1.0.300:::24::eth1:off", "eth1", `client-ip "10.1.0.300" is not an IPv4 address`},
		{"10.1.0.011:::24::eth1:off", "eth1", `client-ip "10.1.0.011" is not an IPv4 address`},
		{"0.0.0.0:::24::eth1:off", "eth1", "client-ip 0.0.0.0 is not a unicast address"},
		{"224.0.0.1:::24::eth1:off", "eth1", "client-ip 224.0.0.1 is not a unicast address"},
		{"127.0.0.2:::8::eth1:off", "eth1", "client-ip 127.0.0.2 is not a unicast address"},
		{"10.1.0.11::10.1.0.256:24::eth1:off", "eth1", `gw-ip "10.1.0.256" is not an IPv4 address`},
		{"10.1.0.11::255.255.255.255:24::eth1:off", "eth1", "gw-ip 255.255.255.255 is not a unicast address"},
		{"10.1.0.11:::33::eth1:off", "eth1", `netmask "33": want a dotted mask`},
		{"10.1.0.11:::0::eth1:off", "eth1", `netmask "0": want`},
		{"10.1.0.11:::-24::eth1:off", "eth1", `netmask "-24": want`},
		{"10.1.0.11:::255.0.255.0::eth1:off", "eth1", `netmask "255.0.255.0": want`},
		{"10.1.0.11:::0.0.0.0::eth1:off", "eth1", `netmask "0.0.0.0": want`},
		{"10.1.0.11/24::::::off", "eth0", `client-ip "10.1.0.11/24" is not an IPv4 address`},
		{"10.1.0.11:::24:bad_name:eth1:off", "eth1", `hostname "bad_name" is not a host name`},
		{"10.1.0.11:::24::eth1:off:10.1.0.1:x", "eth1", `dns1-ip "x" is not an IPv4 address`},
		{"10.1.0.11:::24::eth1:off:::fe80::1", "eth1", "12 fields, want at most 10"},
		{"10.1.0.11:::24::eth1:off:::10.1.0.123:1500", "eth1", "11 fields, want at most 10"},
		{"10.1.0.11:::24::../x:off", "", `device: "../x" is not an interface name`},
		{"10.1.0.11:::24::averyveryverylongname:off", "", "device: interface name"},
	}
	for _, tt := range tests {
		got, err := ParseSetting(tt.value, "eth0")
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || got.Device != tt.want {
				t.Errorf("ParseSetting(%q) = device %q, error %v; want device %q, error %q", tt.value, got.Device, err, tt.want, tt.err)
			}
			continue
		}
		if err != nil || settingString(got) != tt.want {
			t.Errorf("ParseSetting(%q) = %s, %v; want %s", tt.value, settingString(got), err, tt.want)
		}
	}
	if s, err := ParseSetting("10.1.0.11", ""); err != nil || s.Device != "" {
		t.Errorf("with no interface: device %q, %v", s.Device, err)
	}
}

func TestSettingTexts(t *testing.T) {
	content := "# eth1 and eth2\n\n  10.1.0.12:::24::eth1:off   # the storage network\n\t10.1.0.13:::24::eth2\n#10.1.0.14:::24::eth3\n"
	got := settingTexts(`console=ttyS0 ip=dhcp vip=1 "ip=10.1.0.11:::24::eth0:off" ip`, "/run/config/network/static", content)
	var lines []string
	for _, s := range got {
		lines = append(lines, s.value+" | "+s.from+" | "+s.where)
	}
	want := []string{
		"dhcp | the kernel command line | kernel command line ip=dhcp",
		"10.1.0.11:::24::eth0:off | the kernel command line | kernel command line ip=10.1.0.11:::24::eth0:off",
		`10.1.0.12:::24::eth1:off | /run/config/network/static:3 | /run/config/network/static:3: "10.1.0.12:::24::eth1:off"`,
		`10.1.0.13:::24::eth2 | /run/config/network/static:4 | /run/config/network/static:4: "10.1.0.13:::24::eth2"`,
	}
	if !slices.Equal(lines, want) {
		t.Errorf("settingTexts:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestStaticLeases(t *testing.T) {
	const file = "/run/config/network/static"
	tests := []struct {
		name, cmdline, file string
		names               []string
		want                []string // Summary of each static interface, by name
		said                []string
	}{
		{name: "nothing", names: []string{"eth0"}},
		{
			name: "command line", cmdline: "ip=10.1.0.11::10.1.0.1:24:node-1::off:10.1.0.1", names: []string{"eth0", "eth1"},
			want: []string{"eth0: 10.1.0.11/24 via 10.1.0.1, dns 10.1.0.1 (static, from the kernel command line)"},
		},
		{
			name: "both sources, several interfaces", names: []string{"eth0", "eth1", "eth2"},
			cmdline: "ip=10.1.0.11:::24::eth1:off",
			file:    "# farm B\n10.2.0.11::10.2.0.1:16::eth2\n",
			want: []string{"eth1: 10.1.0.11/24 (no router), no dns (static, from the kernel command line)",
				"eth2: 10.2.0.11/16 via 10.2.0.1, no dns (static, from " + file + ":2)"},
		},
		{
			name: "the command line wins", names: []string{"eth0", "eth1"},
			cmdline: "ip=10.1.0.11:::24::eth1:off ip=10.1.0.99:::24::eth1:off",
			file:    "10.2.0.11:::16::eth1\n10.2.0.10:::16::eth0:off",
			want: []string{"eth0: 10.2.0.10/16 (no router), no dns (static, from " + file + ":2)",
				"eth1: 10.1.0.11/24 (no router), no dns (static, from the kernel command line)"},
			said: []string{
				"kernel command line ip=10.1.0.99:::24::eth1:off: eth1 already has its setting from the kernel command line; ignored",
				file + `:1: "10.2.0.11:::16::eth1": eth1 already has its setting from the kernel command line; ignored`,
			},
		},
		{
			name: "ip=dhcp keeps DHCP", names: []string{"eth0"}, cmdline: "ip=dhcp", file: "10.2.0.11:::16::eth0:off",
			said: []string{file + `:1: "10.2.0.11:::16::eth0:off": eth0 already has its setting from the kernel command line; ignored`},
		},
		{
			name: "a bad setting is DHCP and still counts", names: []string{"eth0", "eth1"},
			cmdline: "ip=10.1.0.11:::33::eth1:off", file: "10.2.0.11:::16::eth1:off\n10.2.0.12:::16::eth0:of\n",
			said: []string{
				`kernel command line ip=10.1.0.11:::33::eth1:off: netmask "33": want a dotted mask (255.255.255.0) or a prefix length from 1 to 32; DHCP on eth1`,
				file + `:1: "10.2.0.11:::16::eth1:off": eth1 already has its setting from the kernel command line; ignored`,
				file + `:2: "10.2.0.12:::16::eth0:of": autoconf "of": want off, none or static (a static address), or dhcp, on or any; DHCP on eth0`,
			},
		},
		{
			name: "interfaces not configured", names: []string{"eth0"},
			cmdline: "ip=10.1.0.11:::24::eth9:off ip=10.1.0.12:::24::../x:off",
			said: []string{
				"kernel command line ip=10.1.0.11:::24::eth9:off: eth9 is not an interface this node configures (kiln.net=, else its ethernet links); ignored",
				`kernel command line ip=10.1.0.12:::24::../x:off: device: "../x" is not an interface name; ignored`,
			},
		},
		{
			name: "no interface at all", cmdline: "ip=10.1.0.11:::24:::off",
			said: []string{"kernel command line ip=10.1.0.11:::24:::off: no interface to configure; ignored"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var said []string
			log := func(format string, args ...any) { said = append(said, fmt.Sprintf(format, args...)) }
			leases := StaticLeases(settingTexts(tt.cmdline, file, tt.file), tt.names, log)
			var got []string
			for _, name := range slices.Sorted(maps.Keys(leases)) {
				l := leases[name]
				if !l.Static || !l.Infinite() || l.Interface != name || l.ACK != nil {
					t.Errorf("%s: %+v is not static settings", name, l)
				}
				got = append(got, name+": "+l.Summary())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("static:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if !slices.Equal(said, tt.said) {
				t.Errorf("said:\n%s\nwant:\n%s", strings.Join(said, "\n"), strings.Join(tt.said, "\n"))
			}
		})
	}
}

// staticLease is static settings as StaticLeases makes them.
func staticLease(t *testing.T, iface, value string) *Lease {
	t.Helper()
	leases := StaticLeases([]settingText{{value: value, from: "the kernel command line"}}, []string{iface},
		func(format string, args ...any) { t.Errorf(format, args...) })
	if leases[iface] == nil {
		t.Fatalf("%q is not a static setting", value)
	}
	return leases[iface]
}

func TestStaticRoutes(t *testing.T) {
	link := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "eth1", Index: 3}}
	l := staticLease(t, "eth1", "10.1.0.11::10.1.0.1:24::eth1:off")
	routes := kernelRoutes(link, l)
	if got := routeStrings(routes); !slices.Equal(got, []string{"0.0.0.0/0 10.1.0.1"}) {
		t.Errorf("routes %q", got)
	}
	if r := routes[0]; r.Protocol != 4 || r.Priority != 1003 { // RTPROT_STATIC
		t.Errorf("route %+v", r)
	}
	// A /32 with a gateway outside it: a route on the link to the gateway first.
	l = staticLease(t, "eth1", "203.0.113.5::198.51.100.1:32::eth1:off")
	if got := routeStrings(kernelRoutes(link, l)); !slices.Equal(got, []string{"198.51.100.1/32 link", "0.0.0.0/0 198.51.100.1"}) {
		t.Errorf("routes %q", got)
	}
	if l := staticLease(t, "eth1", "10.1.0.11:::24::eth1:off"); len(kernelRoutes(link, l)) != 0 {
		t.Errorf("routes without a gateway: %q", routeStrings(kernelRoutes(link, l)))
	}
	if !net.IP(l.Mask).Equal(net.IPv4(255, 255, 255, 255)) {
		t.Errorf("mask %v", l.Mask)
	}
}
