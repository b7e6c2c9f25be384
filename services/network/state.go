package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"
)

// This file is the files the service writes: the lease state, resolv.conf, the NTP servers,
// and the host name. Every file is written beside its final name and renamed into place, so a
// reader (or a container that binds it) sees the old content or the new, never a part.

// leaseFile is /run/network/IFACE.json. The ACK is the source of truth (the renewer rebuilds
// the lease from it); the other fields are for people and other services. Static settings
// have no ACK: "static": true, where they came from, and a lease that never expires; the
// renewer reads them back from the fields, for resolv.conf and the NTP list, and renews nothing.
type leaseFile struct {
	Interface    string      `json:"interface"`
	Static       bool        `json:"static,omitempty"`
	Source       string      `json:"source,omitempty"` // of static settings
	Address      string      `json:"address"`
	Mask         string      `json:"mask"`
	Router       string      `json:"router,omitempty"`
	Routes       []routeJSON `json:"routes,omitempty"`
	DNS          []string    `json:"dns"`
	NTP          []string    `json:"ntp"`
	Search       []string    `json:"search"`
	Hostname     string      `json:"hostname,omitempty"`
	ServerID     string      `json:"server_id"`
	LeaseSeconds int64       `json:"lease_seconds"` // 4294967295: forever
	T1Seconds    int64       `json:"t1_seconds"`
	T2Seconds    int64       `json:"t2_seconds"`
	// When the ACK came: wall-clock time for people, and time since boot (CLOCK_BOOTTIME), which
	// the renewer uses so that a clock set after boot does not move the lease.
	Obtained         time.Time `json:"obtained"`
	ObtainedBoottime float64   `json:"obtained_boottime_seconds"`
	ACK              []byte    `json:"ack,omitempty"` // the raw ACK, base64 in the JSON
}

type routeJSON struct {
	Destination string `json:"destination"`
	Via         string `json:"via"`
}

// boottime is the time since boot, suspend included; unlike the wall clock it never jumps.
func boottime() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, fmt.Errorf("reading CLOCK_BOOTTIME: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}

// encodeLease is the JSON of l.
func encodeLease(l *Lease) ([]byte, error) {
	f := leaseFile{
		Interface: l.Interface, Address: l.Address.String(), Mask: net.IP(l.Mask).String(),
		DNS: ipStrings(l.DNS), NTP: ipStrings(l.NTP), Search: l.Search, Hostname: l.Hostname,
		ServerID: ipString(l.ServerID), LeaseSeconds: int64(l.LeaseTime / time.Second),
		T1Seconds: int64(l.T1 / time.Second), T2Seconds: int64(l.T2 / time.Second),
		Obtained: l.Obtained.UTC().Round(0), Static: l.Static, Source: l.Source,
	}
	if l.ACK != nil {
		f.ACK = l.ACK.ToBytes()
	}
	if f.Search == nil {
		f.Search = []string{}
	}
	if l.Router != nil {
		f.Router = l.Router.String()
	}
	for _, r := range l.Routes {
		f.Routes = append(f.Routes, routeJSON{Destination: r.Dest.String(), Via: r.Router.String()})
	}
	if up, err := boottime(); err == nil {
		// Now since boot, less the time since the ACK (monotonic, as Obtained came from time.Now).
		f.ObtainedBoottime = (up - time.Since(l.Obtained)).Seconds()
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// decodeLease reads a lease file back into the lease the renewer works with, rebuilt from the
// ACK it holds. Obtained comes from the time since boot when the file has it, else from the
// wall clock. Static settings come back from the file's fields.
func decodeLease(data []byte) (*Lease, error) {
	var f leaseFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if f.Static {
		return decodeStatic(f)
	}
	if f.Interface == "" || len(f.ACK) == 0 {
		return nil, errors.New("no interface or no ACK")
	}
	ack, err := dhcpv4.FromBytes(f.ACK)
	if err != nil {
		return nil, fmt.Errorf("the ACK: %w", err)
	}
	obtained := f.Obtained
	if up, err := boottime(); err == nil && f.ObtainedBoottime > 0 {
		if ago := up - time.Duration(f.ObtainedBoottime*float64(time.Second)); ago >= 0 {
			obtained = time.Now().Add(-ago)
		}
	}
	l, err := leaseFromACK(f.Interface, ack, obtained)
	if err != nil {
		return nil, err
	}
	// A renewal ACK may lack the mask; the file keeps the one in use.
	if m := net.ParseIP(f.Mask).To4(); m != nil && ack.SubnetMask() == nil {
		l.Mask = net.IPMask(m)
	}
	return l, nil
}

// decodeStatic is the static settings a file holds.
func decodeStatic(f leaseFile) (*Lease, error) {
	l := &Lease{Interface: f.Interface, Static: true, Source: f.Source, Hostname: f.Hostname, Search: f.Search,
		LeaseTime: infiniteLease, Obtained: f.Obtained}
	l.Address, l.Mask = net.ParseIP(f.Address).To4(), net.IPMask(net.ParseIP(f.Mask).To4())
	if f.Interface == "" || l.Address == nil || l.Mask == nil {
		return nil, errors.New("static settings without an interface, an address or a mask")
	}
	if f.Router != "" {
		if l.Router = net.ParseIP(f.Router).To4(); l.Router == nil {
			return nil, fmt.Errorf("router %q is not an IPv4 address", f.Router)
		}
	}
	var err error
	if l.DNS, err = parseIPs(f.DNS); err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	if l.NTP, err = parseIPs(f.NTP); err != nil {
		return nil, fmt.Errorf("ntp: %w", err)
	}
	return l, nil
}

func parseIPs(s []string) ([]net.IP, error) {
	var ips []net.IP
	for _, a := range s {
		ip := net.ParseIP(a).To4()
		if ip == nil {
			return nil, fmt.Errorf("%q is not an IPv4 address", a)
		}
		ips = append(ips, ip)
	}
	return ips, nil
}

// saveLease writes dir/IFACE.json.
func saveLease(dir string, l *Lease) error {
	b, err := encodeLease(l)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, l.Interface+".json"), b)
}

// loadLeases reads every dir/*.json. Files that cannot be read are reported through warn and
// left out. A missing folder is no lease.
func loadLeases(dir string, warn func(format string, args ...any)) ([]*Lease, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var leases []*Lease
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			warn("%s: %v; left out", name, err)
			continue
		}
		l, err := decodeLease(data)
		if err != nil {
			warn("%s: %v; left out", name, err)
			continue
		}
		leases = append(leases, l)
	}
	return leases, nil
}

// resolvConf is resolv.conf for the leases and static settings, in the order given: their name
// servers and search domains, each once. With neither it is a comment that says so, so the
// file always exists for containers that bind it.
func resolvConf(leases []*Lease) []byte {
	var b bytes.Buffer
	if len(leases) == 0 {
		b.WriteString("# kiln network: no DHCP lease, so no name servers\n")
		return b.Bytes()
	}
	var dhcp, static, search, servers []string
	for _, l := range leases {
		if l.Static {
			static = append(static, l.Interface)
		} else {
			dhcp = append(dhcp, l.Interface)
		}
		for _, s := range l.Search {
			// A name a resolver can use, nothing that would add lines to the file.
			if validHostname(s) && !slices.Contains(search, s) {
				search = append(search, s)
			}
		}
		for _, ip := range l.DNS {
			if s := ip.String(); !slices.Contains(servers, s) {
				servers = append(servers, s)
			}
		}
	}
	var from []string
	if len(dhcp) > 0 {
		from = append(from, fmt.Sprintf("the DHCP %s of %s", plural(len(dhcp), "lease", "leases"), strings.Join(dhcp, ", ")))
	}
	if len(static) > 0 {
		from = append(from, "the static settings of "+strings.Join(static, ", "))
	}
	fmt.Fprintf(&b, "# kiln network: from %s\n", strings.Join(from, " and "))
	switch {
	case len(servers) > 0:
	case len(static) == 0:
		b.WriteString("# the DHCP server named no name servers\n")
	case len(dhcp) == 0:
		b.WriteString("# the static settings name no name servers (dns0-ip, dns1-ip)\n")
	default:
		b.WriteString("# neither the DHCP servers nor the static settings name name servers\n")
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	return b.Bytes()
}

// ntpServers is the NTP servers of the leases and static settings, one a line, each once;
// empty with none.
func ntpServers(leases []*Lease) []byte {
	var b bytes.Buffer
	var seen []string
	for _, l := range leases {
		for _, ip := range l.NTP {
			if s := ip.String(); !slices.Contains(seen, s) {
				seen = append(seen, s)
				b.WriteString(s + "\n")
			}
		}
	}
	return b.Bytes()
}

// writeAtomic replaces path with data (mode 0644): written to a file beside it, then renamed.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".new-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// validHostname reports whether name can be a host name: 1 to 64 bytes of letters, digits,
// '-' and '.', not starting with either.
func validHostname(name string) bool {
	if name == "" || len(name) > hostNameMax || name[0] == '-' || name[0] == '.' {
		return false
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' && r != '.' {
			return false
		}
	}
	return true
}

func ipString(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}

func ipStrings(ips []net.IP) []string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return s
}

// hostNameMax is the kernel's limit on a host name (HOST_NAME_MAX).
const hostNameMax = 64
