package main

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// This file is the kernel side: which interfaces to configure (kiln.net= or every ethernet
// link), and a lease or static settings put into the kernel's tables with netlink.

// Selection is what kiln.net= asks for.
type Selection struct {
	None  bool     // kiln.net=none: configure no interface
	Names []string // kiln.net=eth0,eth1; nil: every ethernet link
}

// ParseSelection reads kiln.net= from a kernel command line. Without it every ethernet link is
// configured. The last kiln.net= wins, as with other kernel parameters. A value that cannot
// be an interface list is an error; the caller then configures every ethernet link.
func ParseSelection(cmdline string) (Selection, error) {
	var sel Selection
	for _, arg := range splitCmdline(cmdline) {
		k, v, ok := strings.Cut(arg, "=")
		if !ok || k != "kiln.net" {
			continue
		}
		sel = Selection{}
		if v == "none" {
			sel.None = true
			continue
		}
		for name := range strings.SplitSeq(v, ",") {
			if err := checkLinkName(name); err != nil {
				return Selection{}, fmt.Errorf("kiln.net=%s: %w", v, err)
			}
			if !slices.Contains(sel.Names, name) {
				sel.Names = append(sel.Names, name)
			}
		}
	}
	return sel, nil
}

// checkLinkName rejects what the kernel would never accept as an interface name.
func checkLinkName(name string) error {
	switch {
	case name == "":
		return errors.New("an empty interface name (want kiln.net=eth0,eth1 or kiln.net=none)")
	case len(name) >= unix.IFNAMSIZ:
		return fmt.Errorf("interface name %q is longer than %d bytes", name, unix.IFNAMSIZ-1)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t"):
		return fmt.Errorf("%q is not an interface name", name)
	}
	return nil
}

// splitCmdline splits a kernel command line into its parameters. As the kernel does, double
// quotes group words with spaces and are dropped ("a=\"b c\"" is the parameter a=b c).
func splitCmdline(line string) []string {
	var args []string
	var cur strings.Builder
	inQuote, inArg := false, false
	for _, r := range line {
		switch {
		case r == '"':
			inQuote, inArg = !inQuote, true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

// ethernetLinks lists the links that are not loopback and have an ethernet address, sorted by
// name: the interfaces configured when kiln.net= does not name them.
func ethernetLinks() ([]string, error) {
	links, err := listLinks()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || a.EncapType != "ether" || len(a.HardwareAddr) != 6 {
			continue
		}
		names = append(names, a.Name)
	}
	slices.Sort(names)
	return names, nil
}

// listLinks is netlink.LinkList, asked again when the kernel's dump was interrupted by a change.
func listLinks() ([]netlink.Link, error) {
	var err error
	for range 5 {
		var links []netlink.Link
		if links, err = netlink.LinkList(); err == nil {
			return links, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("listing the network interfaces: %w", err)
}

// linkUp sets the named interface up and returns it.
func linkUp(name string) (netlink.Link, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil, errors.New("no such interface")
		}
		return nil, fmt.Errorf("finding the interface: %w", err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("setting it up: %w", err)
	}
	return link, nil
}

// routeMetric is the metric of the routes a lease installs. The interface index is added so
// that two interfaces with leases each keep their default route (a replace matches routes by
// destination and metric); the interface the kernel found first is preferred.
func routeMetric(link netlink.Link) int { return 1000 + link.Attrs().Index }

// Apply puts a lease into the kernel: the address with the lease's lifetimes, then its
// classless static routes (option 121) when it has them, otherwise a default route through
// its first router (RFC 3442: a client that gets option 121 ignores the router option).
// A router outside the subnet first gets a route of its own on the link. When old is a
// previous lease on the same link with another address, its address is removed first.
// Static settings are a lease that never expires (a permanent address) with at most a router
// (gw-ip); their routes say proto static instead of proto dhcp.
func Apply(link netlink.Link, l, old *Lease) error {
	// Another old address goes first: removed after the new one, a primary address would take
	// a new one of the same subnet with it (the kernel drops secondaries with their primary).
	if old != nil && !old.Address.Equal(l.Address) {
		if err := Remove(link, old); err != nil {
			return fmt.Errorf("removing the previous address: %w", err)
		}
	}
	addr := &netlink.Addr{IPNet: l.IPNet()}
	if !l.Infinite() {
		// The kernel drops the address when the lease runs out without a renewal.
		addr.ValidLft = lifetimeSeconds(l.LeaseTime)
		addr.PreferedLft = addr.ValidLft
	}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("adding the address %s: %w", l.IPNet(), err)
	}
	for _, r := range kernelRoutes(link, l) {
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("adding the %s: %w", describeRoute(r), err)
		}
	}
	return nil
}

// Remove takes a lease's routes and address out of the kernel. Routes already gone (the
// kernel drops them with the address) are not an error.
func Remove(link netlink.Link, l *Lease) error {
	var errs []error
	routes := kernelRoutes(link, l)
	slices.Reverse(routes)
	for _, r := range routes {
		if err := netlink.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("removing the %s: %w", describeRoute(r), err))
		}
	}
	err := netlink.AddrDel(link, &netlink.Addr{IPNet: l.IPNet()})
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		errs = append(errs, fmt.Errorf("removing the address %s: %w", l.IPNet(), err))
	}
	return errors.Join(errs...)
}

// kernelRoutes are the routes a lease asks for, in the order they must be added.
func kernelRoutes(link netlink.Link, l *Lease) []*netlink.Route {
	subnet := &net.IPNet{IP: l.Address.Mask(l.Mask), Mask: l.Mask}
	proto := netlink.RouteProtocol(unix.RTPROT_DHCP)
	if l.Static {
		proto = unix.RTPROT_STATIC
	}
	var routes []*netlink.Route
	onLink := map[string]bool{}
	add := func(dst *net.IPNet, gw net.IP) {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Protocol: proto, Priority: routeMetric(link)}
		if gw == nil || gw.IsUnspecified() {
			r.Scope = netlink.SCOPE_LINK
		} else {
			if !subnet.Contains(gw) && !onLink[gw.String()] {
				onLink[gw.String()] = true
				routes = append(routes, &netlink.Route{LinkIndex: r.LinkIndex, Dst: &net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)},
					Scope: netlink.SCOPE_LINK, Protocol: proto, Priority: r.Priority})
			}
			r.Gw = gw
		}
		routes = append(routes, r)
	}
	if len(l.Routes) > 0 {
		for _, r := range l.Routes {
			add(r.Dest, r.Router)
		}
	} else if l.Router != nil {
		add(&net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, l.Router)
	}
	return routes
}

func describeRoute(r *netlink.Route) string {
	if r.Gw == nil {
		return fmt.Sprintf("route to %s on the link", r.Dst)
	}
	return fmt.Sprintf("route to %s via %s", r.Dst, r.Gw)
}
