package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
)

// reacquireWindow is how long a client without a lease asks before it pauses; reacquirePause
// is the pause. Each ask starts again at the first retransmission time, so a server that
// comes back is found within about a minute.
const (
	reacquireWindow = 2 * time.Minute
	reacquirePause  = 30 * time.Second
)

// Renew keeps the leases in env.RunDir until ctx ends (SIGTERM). Static settings are left as
// they are; they only keep their part of resolv.conf and the NTP list. It only returns an
// error when the folder cannot be listed; everything else is said on the console. It returns
// when ctx ends, also when there is nothing to renew, as a service that exited would be
// started again.
func Renew(ctx context.Context, env Env) error {
	leases, err := loadLeases(env.RunDir, env.Log)
	if err != nil {
		return err
	}
	k := &keeper{env: env, live: map[string]*Lease{}}
	var renewed []*Lease
	for _, l := range leases {
		k.live[l.Interface] = l
		if l.Static {
			env.Log("%s: %s is static (from %s); nothing to renew", l.Interface, l.IPNet(), l.Source)
		} else {
			renewed = append(renewed, l)
		}
	}
	if len(renewed) == 0 {
		env.Log("no leases to renew")
		<-ctx.Done()
		return nil
	}
	k.resolv, _ = os.ReadFile(env.Resolv)
	k.ntp, _ = os.ReadFile(filepath.Join(env.RunDir, "ntp"))
	var wg sync.WaitGroup
	for _, l := range renewed {
		wg.Go(func() { k.keep(ctx, l) })
	}
	wg.Wait()
	<-ctx.Done() // no lease is kept: each never expires, or its interface is gone
	return nil
}

// keeper holds the leases of all interfaces, for the files they share.
type keeper struct {
	env         Env
	mu          sync.Mutex
	live        map[string]*Lease // by interface, static settings too; nil once expired
	resolv, ntp []byte            // as last written
}

// keep renews one interface's lease for as long as ctx lasts: RENEWING from T1, REBINDING
// from T2, and when the lease runs out, a new one.
func (k *keeper) keep(ctx context.Context, l *Lease) {
	name := l.Interface
	log := func(format string, args ...any) { k.env.Log(""+name+": "+format, args...) }
	if l.Infinite() {
		log("the lease on %s never expires; nothing to renew", l.IPNet())
		return
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		log("%v; the lease on %s is not renewed", err, l.IPNet())
		return
	}
	if until := time.Until(l.Obtained.Add(l.T1)); until > 0 {
		log("keeping %s from %s; renewing in %s", l.IPNet(), l.ServerID, until.Round(time.Second))
	}
	cur := l // nil while there is no lease
	for ctx.Err() == nil {
		if cur == nil {
			start := time.Now()
			actx, cancel := context.WithTimeout(ctx, reacquireWindow)
			next, err := request(actx, name)
			cancel()
			if err != nil {
				_ = sleep(ctx, reacquirePause)
				continue
			}
			k.update(link, nil, next)
			log("%s (new lease, %s)", next.Summary(), took(start))
			cur = next
			continue
		}
		if cur.Infinite() {
			log("the lease on %s never expires; nothing to renew", cur.IPNet())
			return
		}
		t1, t2, end := cur.Obtained.Add(cur.T1), cur.Obtained.Add(cur.T2), cur.Obtained.Add(cur.LeaseTime)
		now := time.Now()
		switch {
		case now.Before(t1):
			_ = sleep(ctx, t1.Sub(now))
		case now.Before(t2):
			// RENEWING: ask the lease's server until T2.
			actx, cancel := context.WithDeadline(ctx, t2)
			next, err := withClient(name, func(c *client) (*Lease, error) { return c.Renew(actx, cur) })
			cancel()
			var nak *nclient4.ErrNak
			switch {
			case err == nil:
				k.update(link, cur, next)
				log("renewed %s%s, lease %s", next.IPNet(), changes(cur, next), next.LeaseTime)
				cur = next
			case errors.As(err, &nak):
				k.expire(link, cur, "was refused by its server (NAK)")
				cur = nil
			case ctx.Err() != nil:
			case errors.Is(err, context.DeadlineExceeded):
				log("no answer from %s to renew %s; asking any server (rebinding)", cur.ServerID, cur.IPNet())
			default:
				wait := retryWait(time.Until(t2))
				log("renewing %s: %v; trying again in %s", cur.IPNet(), err, wait)
				_ = sleep(ctx, wait)
			}
		case now.Before(end):
			// REBINDING: a new request to any server, until the lease ends.
			actx, cancel := context.WithDeadline(ctx, end)
			next, err := request(actx, name)
			cancel()
			switch {
			case err == nil:
				k.update(link, cur, next)
				log("%s (rebound)", next.Summary())
				cur = next
			case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded):
			default:
				wait := retryWait(time.Until(end))
				log("rebinding %s: %v; trying again in %s", cur.IPNet(), err, wait)
				_ = sleep(ctx, wait)
			}
		default:
			k.expire(link, cur, "expired")
			cur = nil
		}
	}
}

// withClient runs fn with a DHCP client on the interface, open only meanwhile: its raw socket
// sees every IPv4 packet of the interface, which a client left open would copy all day long.
func withClient(iface string, fn func(*client) (*Lease, error)) (*Lease, error) {
	c, err := newClient(iface)
	if err != nil {
		return nil, err
	}
	defer func() { _ = c.Close() }()
	return fn(c)
}

// request gets a new lease on the interface, until ctx ends.
func request(ctx context.Context, iface string) (*Lease, error) {
	return withClient(iface, func(c *client) (*Lease, error) { return c.Request(ctx) })
}

// retryWait is how long to wait before asking again, with remaining time left in the state:
// half of it, but at least a minute (RFC 2131, 4.4.5), and never past its end.
func retryWait(remaining time.Duration) time.Duration {
	return max(remaining/2, min(remaining, time.Minute))
}

// changes says what a renewal changed that matters to other services: ", dns now ...".
func changes(old, next *Lease) string {
	var s []string
	if !slices.EqualFunc(old.DNS, next.DNS, func(a, b net.IP) bool { return a.Equal(b) }) {
		s = append(s, "dns now "+joinIPs(next.DNS, " "))
	}
	if !slices.Equal(old.Search, next.Search) {
		s = append(s, "search now "+strings.Join(next.Search, " "))
	}
	if len(s) == 0 {
		return ""
	}
	return ", " + strings.Join(s, ", ")
}

// update puts a new or renewed lease in the kernel and the files. old is the lease it
// replaces, nil when there was none.
func (k *keeper) update(link netlink.Link, old, next *Lease) {
	if err := Apply(link, next, old); err != nil {
		k.env.Log("%s: %v", next.Interface, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.live[next.Interface] = next
	if err := saveLease(k.env.RunDir, next); err != nil {
		k.env.Log("%s: saving the lease: %v", next.Interface, err)
	}
	k.writeShared()
}

// expire takes a lease that ended out of the kernel. Its file stays, as the record of the
// interface the service looks after; resolv.conf and the NTP list drop it.
func (k *keeper) expire(link netlink.Link, l *Lease, why string) {
	msg := "address removed"
	if err := Remove(link, l); err != nil {
		msg = err.Error()
	}
	k.env.Log("%s: the lease on %s %s; %s; asking for a new one", l.Interface, l.IPNet(), why, msg)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.live[l.Interface] = nil
	k.writeShared()
}

// writeShared rewrites resolv.conf and the NTP list when the live leases change them. k.mu is
// held.
func (k *keeper) writeShared() {
	var leases []*Lease
	for _, l := range k.live {
		if l != nil {
			leases = append(leases, l)
		}
	}
	slices.SortFunc(leases, func(a, b *Lease) int { return strings.Compare(a.Interface, b.Interface) })
	if b := resolvConf(leases); !bytes.Equal(b, k.resolv) {
		if err := writeAtomic(k.env.Resolv, b); err != nil {
			k.env.Log("%v", err)
		} else {
			k.resolv = b
		}
	}
	if b := ntpServers(leases); !bytes.Equal(b, k.ntp) {
		if err := writeAtomic(filepath.Join(k.env.RunDir, "ntp"), b); err != nil {
			k.env.Log("%v", err)
		} else {
			k.ntp = b
		}
	}
}
