package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
)

// This file is the static settings: ip= on the kernel command line and the lines of the
// metadata service's network/static file, both in the kernel's ip= syntax, read into the
// configuration of the interfaces they name. Putting them into the kernel is Apply's work, as
// for a lease.

// Setting is one ip= value, in Linux's nfsroot syntax (Documentation/admin-guide/nfs/nfsroot.rst):
//
//	<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>
//
// Trailing fields may be left out, and autoconf may stand alone (ip=dhcp).
type Setting struct {
	Device   string     // the interface; "" when the setting names none that could be configured
	DHCP     bool       // autoconf dhcp, on or any, or no client-ip: the device gets DHCP
	Address  net.IP     // client-ip, 4 bytes
	Mask     net.IPMask // netmask, else the address's class mask (as the kernel does)
	Gateway  net.IP     // gw-ip; nil when none
	Hostname string     // may be ""
	DNS      []net.IP   // dns0-ip, dns1-ip
	NTP      []net.IP   // ntp0-ip
}

// The fields of an ip= value, in order.
const (
	fieldClient = iota
	fieldServer // the NFS server: not used
	fieldGateway
	fieldNetmask
	fieldHostname
	fieldDevice
	fieldAutoconf
	fieldDNS0
	fieldDNS1
	fieldNTP0
	ipFields
)

const ipSyntax = "client-ip:server-ip:gw-ip:netmask:hostname:device:autoconf:dns0-ip:dns1-ip:ntp0-ip"

// ParseSetting reads one ip= value (without "ip="). An empty device field is first, the first
// interface configured ("" when there is none). A static setting is autoconf off, none or
// static, or autoconf left empty with a client-ip. On an error the setting has its Device when
// the device field is good, so that the caller knows which interface falls back to DHCP.
func ParseSetting(value, first string) (Setting, error) {
	f := strings.Split(value, ":")
	if len(f) == 1 && isAutoconf(value) {
		f = []string{fieldAutoconf: value}
	}
	f = append(f, make([]string, max(0, ipFields-len(f)))...)
	s := Setting{Device: first}
	if dev := f[fieldDevice]; dev != "" {
		if err := checkLinkName(dev); err != nil {
			return Setting{}, fmt.Errorf("device: %w", err)
		}
		s.Device = dev
	}
	if len(f) > ipFields {
		return s, fmt.Errorf("%d fields, want at most %d (%s)", len(f), ipFields, ipSyntax)
	}
	auto := f[fieldAutoconf]
	switch {
	case !isAutoconf(auto):
		return s, fmt.Errorf("autoconf %q: want off, none or static (a static address), or dhcp, on or any", auto)
	case auto == "dhcp" || auto == "on" || auto == "any" || (auto == "" && f[fieldClient] == ""):
		s.DHCP = true
		return s, nil
	case f[fieldClient] == "":
		return s, fmt.Errorf("autoconf %s without a client-ip: a static setting needs an address (%s)", auto, ipSyntax)
	}
	var err error
	if s.Address, err = parseUnicast("client-ip", f[fieldClient]); err != nil {
		return s, err
	}
	if f[fieldGateway] != "" {
		if s.Gateway, err = parseUnicast("gw-ip", f[fieldGateway]); err != nil {
			return s, err
		}
	}
	if f[fieldNetmask] == "" {
		s.Mask = s.Address.DefaultMask()
	} else if s.Mask, err = parseNetmask(f[fieldNetmask]); err != nil {
		return s, err
	}
	if h := f[fieldHostname]; h != "" {
		if !validHostname(h) {
			return s, fmt.Errorf("hostname %q is not a host name (letters, digits, - and ., at most %d bytes)", h, hostNameMax)
		}
		s.Hostname = h
	}
	for _, o := range []struct {
		name string
		i    int
		to   *[]net.IP
	}{{"dns0-ip", fieldDNS0, &s.DNS}, {"dns1-ip", fieldDNS1, &s.DNS}, {"ntp0-ip", fieldNTP0, &s.NTP}} {
		if f[o.i] == "" {
			continue
		}
		ip, err := parseUnicast(o.name, f[o.i])
		if err != nil {
			return s, err
		}
		*o.to = append(*o.to, ip)
	}
	return s, nil
}

// isAutoconf reports whether s is an autoconf value kiln knows ("" is the kernel's default).
func isAutoconf(s string) bool {
	switch s {
	case "", "off", "none", "static", "dhcp", "on", "any":
		return true
	}
	return false
}

// parseUnicast reads an IPv4 address that can be an interface's or a server's.
func parseUnicast(field, s string) (net.IP, error) {
	ip := net.ParseIP(s).To4()
	switch {
	case ip == nil:
		return nil, fmt.Errorf("%s %q is not an IPv4 address", field, s)
	case ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() || ip.Equal(net.IPv4bcast):
		return nil, fmt.Errorf("%s %s is not a unicast address", field, s)
	}
	return ip, nil
}

// parseNetmask reads a netmask, dotted (255.255.255.0) or a prefix length (24).
func parseNetmask(s string) (net.IPMask, error) {
	bad := fmt.Errorf("netmask %q: want a dotted mask (255.255.255.0) or a prefix length from 1 to 32", s)
	if n, err := strconv.ParseUint(s, 10, 8); err == nil {
		if n < 1 || n > 32 {
			return nil, bad
		}
		return net.CIDRMask(int(n), 32), nil
	}
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return nil, bad
	}
	m := net.IPMask(ip)
	if ones, bits := m.Size(); bits == 0 || ones == 0 {
		return nil, bad // not contiguous, or 0.0.0.0
	}
	return m, nil
}

// settingText is one ip= value as it came: from the kernel command line or a line of the file.
type settingText struct {
	value string
	from  string // for the interface's console line: "the kernel command line", "FILE:2"
	where string // for a problem: "kernel command line ip=VALUE", "FILE:2: \"VALUE\""
}

const cmdlineSource = "the kernel command line"

// settingTexts is the ip= parameters of a kernel command line, then the lines of file (its
// name and content). In the file, text after # is a comment, and blank lines are skipped.
func settingTexts(cmdline, file, content string) []settingText {
	var texts []settingText
	for _, arg := range splitCmdline(cmdline) {
		if k, v, ok := strings.Cut(arg, "="); ok && k == "ip" {
			texts = append(texts, settingText{value: v, from: cmdlineSource, where: "kernel command line ip=" + v})
		}
	}
	for i, line := range strings.Split(content, "\n") {
		text, _, _ := strings.Cut(line, "#")
		if text = strings.TrimSpace(text); text != "" {
			at := fmt.Sprintf("%s:%d", file, i+1)
			texts = append(texts, settingText{value: text, from: at, where: fmt.Sprintf("%s: %q", at, text)})
		}
	}
	return texts
}

// StaticLeases reads the settings in texts for the interfaces in names (the first is the one
// an empty device field means) and returns the static ones, by interface, as leases that never
// expire (Static set). The first setting for an interface wins, a bad one included: that
// interface gets DHCP. Every setting that is bad or not used is said through log.
func StaticLeases(texts []settingText, names []string, log func(format string, args ...any)) map[string]*Lease {
	first := ""
	if len(names) > 0 {
		first = names[0]
	}
	claimed := map[string]string{} // interface: the setting's from
	leases := map[string]*Lease{}
	for _, t := range texts {
		s, err := ParseSetting(t.value, first)
		dev := s.Device
		switch {
		case dev == "" && err != nil:
			log("%s: %v; ignored", t.where, err)
			continue
		case dev == "":
			log("%s: no interface to configure; ignored", t.where)
			continue
		case !slices.Contains(names, dev):
			log("%s: %s is not an interface this node configures (kiln.net=, else its ethernet links); ignored", t.where, dev)
			continue
		case claimed[dev] != "":
			log("%s: %s already has its setting from %s; ignored", t.where, dev, claimed[dev])
			continue
		}
		claimed[dev] = t.from
		switch {
		case err != nil:
			log("%s: %v; DHCP on %s", t.where, err, dev)
		case !s.DHCP:
			leases[dev] = &Lease{Interface: dev, Address: s.Address, Mask: s.Mask, Router: s.Gateway, DNS: s.DNS, NTP: s.NTP,
				Hostname: s.Hostname, LeaseTime: infiniteLease, Static: true, Source: t.from}
		}
	}
	return leases
}

// readStaticFile is the content of the metadata service's file of static settings; "" when
// there is none. A file that cannot be read is said through log.
func readStaticFile(path string, log func(format string, args ...any)) string {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log("%v; not read", err)
	}
	return string(b)
}
