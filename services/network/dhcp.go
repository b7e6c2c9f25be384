package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// This file is the DHCP side: asking for a lease, and the lease as kiln uses it.

// infiniteLease is the lease time option's "forever" (RFC 2131, 0xffffffff seconds).
const infiniteLease = time.Duration(math.MaxUint32) * time.Second

// defaultLeaseTime stands in for a lease time option the server left out.
const defaultLeaseTime = time.Hour

// firstRetransmit is how long the client waits for the first answer; it doubles with every
// retransmission (1s, 2s, 4s, ...) until the caller's deadline.
const firstRetransmit = time.Second

// Lease is the IPv4 configuration of one interface: a DHCP lease, as read from the server's
// ACK, or static settings (Static: from ip= or the network/static file; no ACK, no server, and
// a lease that never expires, which -renew leaves alone).
type Lease struct {
	Interface string
	Address   net.IP     // 4 bytes
	Mask      net.IPMask // 4 bytes
	Router    net.IP     // the first router (option 3); nil when none
	Routes    []*dhcpv4.Route
	DNS       []net.IP
	NTP       []net.IP
	Search    []string // option 119, else option 15
	Hostname  string
	ServerID  net.IP
	LeaseTime time.Duration // infiniteLease when it never expires
	T1, T2    time.Duration // renewing and rebinding times
	Obtained  time.Time     // when the ACK came
	ACK       *dhcpv4.DHCPv4
	Static    bool   // static settings, not a lease from a server
	Source    string // where static settings came from: "the kernel command line", "FILE:LINE"
}

// leaseFromACK reads a lease from a server's ACK, received at obtained. Options the server left
// out get RFC 2131's defaults: the address's class mask, T1 at half the lease, T2 at 7/8.
func leaseFromACK(iface string, ack *dhcpv4.DHCPv4, obtained time.Time) (*Lease, error) {
	addr := ack.YourIPAddr.To4()
	if addr == nil || addr.IsUnspecified() {
		return nil, fmt.Errorf("the server's ACK has no address for us (yiaddr %v)", ack.YourIPAddr)
	}
	l := &Lease{Interface: iface, Address: addr, ServerID: ack.ServerIdentifier(), Obtained: obtained, ACK: ack,
		DNS: ack.DNS(), NTP: ack.NTPServers(), Hostname: strings.TrimSpace(ack.HostName()), Routes: ack.ClasslessStaticRoute()}
	if m := ack.SubnetMask(); len(m) == net.IPv4len {
		l.Mask = m
	} else {
		l.Mask = addr.DefaultMask()
	}
	if r := ack.Router(); len(r) > 0 && r[0].To4() != nil {
		l.Router = r[0].To4()
	}
	if labels := ack.DomainSearch(); labels != nil && len(labels.Labels) > 0 {
		l.Search = labels.Labels
	} else if d := strings.TrimSpace(ack.DomainName()); d != "" {
		l.Search = []string{d}
	}
	l.LeaseTime = ack.IPAddressLeaseTime(defaultLeaseTime)
	if l.LeaseTime <= 0 {
		l.LeaseTime = defaultLeaseTime
	}
	l.T1 = ack.IPAddressRenewalTime(l.LeaseTime / 2)
	l.T2 = ack.IPAddressRebindingTime(l.LeaseTime / 8 * 7)
	if l.T2 <= 0 || l.T2 > l.LeaseTime {
		l.T2 = l.LeaseTime / 8 * 7
	}
	if l.T1 <= 0 || l.T1 > l.T2 {
		l.T1 = l.T2 / 7 * 4
	}
	return l, nil
}

// IPNet is the address with its mask.
func (l *Lease) IPNet() *net.IPNet { return &net.IPNet{IP: l.Address, Mask: l.Mask} }

// Infinite reports whether the lease never expires.
func (l *Lease) Infinite() bool { return l.LeaseTime >= infiniteLease }

// nclient rebuilds the client library's lease from the ACK, for a renewal. The library takes
// the server identifier from the offer, which the ACK repeats (RFC 2131 requires it in both).
func (l *Lease) nclient() *nclient4.Lease {
	return &nclient4.Lease{Offer: l.ACK, ACK: l.ACK, CreationTime: l.Obtained}
}

// lifetimeSeconds is d in whole seconds, as the kernel's address lifetimes want them.
func lifetimeSeconds(d time.Duration) int {
	s := int64(d / time.Second)
	if s < 1 {
		s = 1
	}
	return int(min(s, math.MaxUint32-1))
}

// Summary is the lease in one console line, after "IFACE: ":
// "10.0.2.15/24 via 10.0.2.2, dns 10.0.2.3, lease 24h0m0s", or for static settings
// "10.1.0.11/24 via 10.1.0.1, dns 10.1.0.1 (static, from the kernel command line)".
func (l *Lease) Summary() string {
	var b strings.Builder
	ones, _ := l.Mask.Size()
	fmt.Fprintf(&b, "%s/%d", l.Address, ones)
	switch {
	case len(l.Routes) > 0:
		var gw net.IP
		for _, r := range l.Routes {
			if ones, _ := r.Dest.Mask.Size(); ones == 0 {
				gw = r.Router
			}
		}
		n := len(l.Routes)
		if gw != nil {
			fmt.Fprintf(&b, " via %s", gw)
			n--
		}
		if n > 0 {
			fmt.Fprintf(&b, " and %d %s (option 121)", n, plural(n, "route", "routes"))
		}
	case l.Router != nil:
		fmt.Fprintf(&b, " via %s", l.Router)
	default:
		b.WriteString(" (no router)")
	}
	if len(l.DNS) > 0 {
		fmt.Fprintf(&b, ", dns %s", joinIPs(l.DNS, " "))
	} else {
		b.WriteString(", no dns")
	}
	switch {
	case l.Static:
		fmt.Fprintf(&b, " (static, from %s)", l.Source)
	case l.Infinite():
		b.WriteString(", lease forever")
	default:
		fmt.Fprintf(&b, ", lease %s", l.LeaseTime)
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func joinIPs(ips []net.IP, sep string) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, sep)
}

// requestOptions asks for what kiln uses beyond the library's default list (mask, router,
// domain name, name servers).
func requestOptions() dhcpv4.Modifier {
	return dhcpv4.WithRequestedOptions(dhcpv4.OptionHostName, dhcpv4.OptionNTPServers,
		dhcpv4.OptionDNSDomainSearchList, dhcpv4.OptionClasslessStaticRoute,
		dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue)
}

// client is a DHCP client on one interface, over a raw socket: it works on an interface that
// has no address yet.
type client struct {
	iface string
	c     *nclient4.Client
}

func newClient(iface string) (*client, error) {
	c, err := nclient4.New(iface, nclient4.WithTimeout(firstRetransmit), nclient4.WithRetry(-1))
	if err != nil {
		return nil, fmt.Errorf("opening a DHCP socket: %w", err)
	}
	return &client{iface: iface, c: c}, nil
}

func (c *client) Close() error { return c.c.Close() }

// Request gets a new lease (discover, offer, request, ack), retransmitting until ctx ends. A
// server that refuses with a NAK is asked again a second later.
func (c *client) Request(ctx context.Context) (*Lease, error) {
	for {
		nl, err := c.c.Request(ctx, requestOptions())
		var nak *nclient4.ErrNak
		if errors.As(err, &nak) {
			if err := sleep(ctx, time.Second); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return leaseFromACK(c.iface, nl.ACK, nl.CreationTime)
	}
}

// Renew asks the server of l to extend it (a request naming the lease's address), until ctx
// ends. A NAK is an *nclient4.ErrNak: the lease is gone. An ACK that leaves out the mask keeps
// the one l had.
func (c *client) Renew(ctx context.Context, l *Lease) (*Lease, error) {
	nl, err := c.c.Renew(ctx, l.nclient(), requestOptions())
	if err != nil {
		return nil, err
	}
	next, err := leaseFromACK(c.iface, nl.ACK, nl.CreationTime)
	if err != nil {
		return nil, err
	}
	if nl.ACK.SubnetMask() == nil {
		next.Mask = l.Mask
	}
	return next, nil
}

// sleep waits for d or the end of ctx, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
