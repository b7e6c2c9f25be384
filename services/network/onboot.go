package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Onboot configures the interfaces and writes the files (see the command's doc). Only a file
// that cannot be written is an error: the node boots without network otherwise.
func Onboot(ctx context.Context, env Env) error {
	if _, err := linkUp("lo"); err != nil {
		env.Log("lo: %v", err)
	}
	cmdline, err := os.ReadFile(env.Cmdline)
	if err != nil {
		env.Log("the kernel command line: %v; not read", err)
	}
	if env.IfCmdline != "" && !hasParam(string(cmdline), env.IfCmdline) {
		return nil
	}
	earlier := map[string]*Lease{}
	if env.IfCmdline == "" {
		old, err := loadLeases(env.RunDir, env.Log)
		if err != nil {
			env.Log("the leases of an earlier step: %v; asking again", err)
		}
		for _, l := range old {
			if !l.Static {
				earlier[l.Interface] = l
			}
		}
	}
	names := pickInterfaces(env, string(cmdline))
	staticFile := filepath.Join(env.ConfigDir, "network", "static")
	static := StaticLeases(settingTexts(string(cmdline), staticFile, readStaticFile(staticFile, env.Log)), names, env.Log)
	leases := make([]*Lease, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		switch l := earlier[name]; {
		case static[name] != nil:
			// The early step's DHCP address, if any, goes: the static one replaces it.
			wg.Go(func() { leases[i] = configureStatic(env, static[name], earlier[name]) })
		case l != nil:
			env.Log("%s: %s (kept from the earlier onboot step)", name, l.Summary())
			leases[i] = l
		default:
			wg.Go(func() { leases[i] = configure(ctx, env, name) })
		}
	}
	wg.Wait()
	var got []*Lease
	var errs []error
	for i, l := range leases {
		if l != nil {
			got = append(got, l)
			errs = append(errs, saveLease(env.RunDir, l))
		} else if err := os.Remove(filepath.Join(env.RunDir, names[i]+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, writeAtomic(env.Resolv, resolvConf(got)), writeAtomic(filepath.Join(env.RunDir, "ntp"), ntpServers(got)))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("writing the network state: %w", err)
	}
	setHostname(env, got)
	return nil
}

// hasParam reports whether the command line has the parameter name, alone or as name=VALUE.
func hasParam(cmdline, name string) bool {
	for _, f := range strings.Fields(cmdline) {
		if f == name || strings.HasPrefix(f, name+"=") {
			return true
		}
	}
	return false
}

// pickInterfaces is the interfaces to configure, as kiln.net= on the kernel command line says
// or every ethernet link, and says so on the console when there is none.
func pickInterfaces(env Env, cmdline string) []string {
	sel, err := ParseSelection(cmdline)
	if err != nil {
		env.Log("%v; configuring every ethernet interface", err)
	}
	switch {
	case sel.None:
		env.Log("kiln.net=none; no interface configured")
		return nil
	case sel.Names != nil:
		return sel.Names
	}
	names, err := ethernetLinks()
	if err != nil {
		env.Log("%v; booting without network", err)
		return nil
	}
	if len(names) == 0 {
		env.Log("no network interfaces besides lo; booting without network")
	}
	return names
}

// configure sets one interface up, gets a lease within the timeout and applies it. It says
// what happened in one console line, and returns the lease, or nil.
func configure(ctx context.Context, env Env, name string) *Lease {
	fail := func(format string, args ...any) *Lease {
		env.Log("%s: %s; booting without network on %s", name, fmt.Sprintf(format, args...), name)
		return nil
	}
	start := time.Now()
	link, err := linkUp(name)
	if err != nil {
		return fail("%v", err)
	}
	c, err := newClient(name)
	if err != nil {
		return fail("%v", err)
	}
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(ctx, env.Timeout)
	defer cancel()
	l, err := c.Request(ctx)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fail("no DHCP lease within %s", env.Timeout)
	case errors.Is(err, context.Canceled):
		return fail("stopped while waiting for a DHCP lease")
	case err != nil:
		return fail("DHCP: %v", err)
	}
	if err := Apply(link, l, nil); err != nil {
		return fail("the lease for %s: %v", l.IPNet(), err)
	}
	env.Log("%s: %s (%s)", name, l.Summary(), took(start))
	return l
}

// configureStatic sets one interface up and puts its static settings into the kernel, in
// place of old (an earlier step's lease), when given. It says
// what happened in one console line, and returns the settings, or nil.
func configureStatic(env Env, l, old *Lease) *Lease {
	fail := func(err error) *Lease {
		env.Log("%s: %s (static, from %s): %v; booting without network on %s", l.Interface, l.IPNet(), l.Source, err, l.Interface)
		return nil
	}
	link, err := linkUp(l.Interface)
	if err != nil {
		return fail(err)
	}
	l.Obtained = time.Now()
	if err := Apply(link, l, old); err != nil {
		return fail(err)
	}
	env.Log("%s: %s", l.Interface, l.Summary())
	return l
}

// took is the time since start for a console line: "1.2s", or "40ms" under a second.
func took(start time.Time) time.Duration {
	d := time.Since(start)
	if d >= time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// setHostname sets the host name from the metadata service's file, else from the first static
// settings that name one, else from the first lease that does, and writes it to
// env.HostnameFile when that is set. Failures are reported and the boot goes on.
func setHostname(env Env, leases []*Lease) {
	var name, from string
	file := filepath.Join(env.ConfigDir, "hostname")
	if b, err := os.ReadFile(file); err == nil {
		name, from = strings.TrimSpace(string(b)), file
	} else if !errors.Is(err, os.ErrNotExist) {
		env.Log("%v; not used", err)
	}
	if name == "" {
		var named *Lease
		for _, l := range leases {
			if l.Hostname != "" && (named == nil || l.Static && !named.Static) {
				named = l
			}
		}
		switch {
		case named == nil:
		case named.Static:
			name, from = named.Hostname, named.Source
		default:
			name, from = named.Hostname, "DHCP on "+named.Interface
		}
	}
	if name == "" {
		return
	}
	if !validHostname(name) {
		env.Log("host name %q (from %s) is not a valid host name; not set", name, from)
		return
	}
	if err := unix.Sethostname([]byte(name)); err != nil {
		env.Log("setting the host name %s (from %s): %v", name, from, err)
		return
	}
	if env.HostnameFile != "" {
		if err := writeAtomic(env.HostnameFile, []byte(name+"\n")); err != nil {
			env.Log("writing the host name: %v", err)
		}
	}
	env.Log("host name %s (from %s)", name, from)
}
