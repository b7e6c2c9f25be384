package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
)

// This file is where the servers come from: kiln.ntp= on the kernel command line, then the
// files, the first source with a good server winning whole (see the package comment).

// Servers is one source's list of servers.
type Servers struct {
	From  string   // the source: "kiln.ntp= on the kernel command line" or a file's path
	Addrs []string // host:port, each once, in the source's order
}

// SyntaxError is a server the source cannot mean: its file (or "kiln.ntp="), its line (or its
// place in the kiln.ntp= list), the text and why.
type SyntaxError struct {
	Source string
	Line   int
	Text   string
	Err    error
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s:%d: %q: %v", e.Source, e.Line, e.Text, e.Err)
}

func (e *SyntaxError) Unwrap() error { return e.Err }

const cmdlineSource = "kiln.ntp= on the kernel command line"

// FindServers returns the servers of the first source that names at least one, and what was
// wrong with the sources it read on the way (bad lines, unreadable files), which it skipped.
// A missing file, and a command line without kiln.ntp=, are not problems. With no server
// anywhere, Servers.Addrs is empty.
func FindServers(cmdline string, files []string) (Servers, []error) {
	var problems []error
	line, err := os.ReadFile(cmdline)
	if err != nil {
		problems = append(problems, fmt.Errorf("the kernel command line: %w", err))
	}
	addrs, errs := ParseCmdline(string(line))
	problems = append(problems, errs...)
	if len(addrs) > 0 {
		return Servers{From: cmdlineSource, Addrs: addrs}, problems
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			problems = append(problems, err)
			continue
		}
		addrs, errs := ParseFile(f, string(b))
		problems = append(problems, errs...)
		if len(addrs) > 0 {
			return Servers{From: f, Addrs: addrs}, problems
		}
	}
	return Servers{}, problems
}

// ParseFile reads a file of servers, one a line; blank lines and text after # are ignored.
// The good lines are returned; each bad one is a *SyntaxError naming the file and line.
func ParseFile(name, content string) ([]string, []error) {
	var addrs []string
	var errs []error
	for i, line := range strings.Split(content, "\n") {
		text, _, _ := strings.Cut(line, "#")
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		addr, err := ParseServer(text)
		if err != nil {
			errs = append(errs, &SyntaxError{Source: name, Line: i + 1, Text: text, Err: err})
			continue
		}
		addrs = appendNew(addrs, addr)
	}
	return addrs, errs
}

// ParseCmdline reads kiln.ntp=host[:port],... from a kernel command line (the last kiln.ntp=
// wins). Each bad item is a *SyntaxError whose Line is its place in the list, from 1.
func ParseCmdline(cmdline string) ([]string, []error) {
	value, found := "", false
	for _, arg := range splitCmdline(cmdline) {
		if k, v, ok := strings.Cut(arg, "="); ok && k == "kiln.ntp" {
			value, found = v, true
		}
	}
	if !found {
		return nil, nil
	}
	var addrs []string
	var errs []error
	for i, item := range strings.Split(value, ",") {
		addr, err := ParseServer(item)
		if err != nil {
			errs = append(errs, &SyntaxError{Source: "kiln.ntp=", Line: i + 1, Text: item, Err: err})
			continue
		}
		addrs = appendNew(addrs, addr)
	}
	return addrs, errs
}

// errOneServer is the complaint about a line that is not a single server.
var errOneServer = errors.New("want one server a line (host or host:port)")

// ParseServer turns host, host:port, [v6]:port or a bare IPv6 address into host:port (port 123
// unless given). The host is an IP address or a DNS name.
func ParseServer(s string) (string, error) {
	if s == "" {
		return "", errors.New("an empty server")
	}
	if strings.ContainsAny(s, " \t\r\"'") {
		return "", errOneServer
	}
	if strings.Contains(s, "://") {
		return "", errors.New("want host or host:port, not a URL")
	}
	if a, err := netip.ParseAddr(s); err == nil { // 10.0.2.2, or ::1 with no port
		return net.JoinHostPort(a.String(), "123"), nil
	}
	host, port := s, "123"
	if strings.HasPrefix(s, "[") || strings.Contains(s, ":") {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			return "", errors.New("want host, host:port or [IPv6]:port")
		}
		host, port = h, p
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port != strconv.Itoa(n) {
			return "", fmt.Errorf("port %q: want a number from 1 to 65535", port)
		}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if strings.HasPrefix(s, "[") && !a.Is6() {
			return "", fmt.Errorf("[%s]: brackets are for IPv6 addresses", host)
		}
		return net.JoinHostPort(a.String(), port), nil
	}
	if strings.HasPrefix(s, "[") {
		return "", fmt.Errorf("[%s]: not an IPv6 address", host)
	}
	if err := checkHostname(host); err != nil {
		return "", err
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

// checkHostname accepts DNS names: labels of letters, digits and hyphens (not at either end),
// 63 bytes at most, 253 in all, an optional final dot; not all digits and dots, which would be
// a mistyped IPv4 address.
func checkHostname(h string) error {
	name := strings.TrimSuffix(h, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%q is not a host name or IP address", h)
	}
	digits := true
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a host name or IP address", h)
		}
		for _, c := range label {
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				digits = false
			default:
				return fmt.Errorf("%q is not a host name or IP address", h)
			}
		}
	}
	if digits {
		return fmt.Errorf("%q is not an IP address", h)
	}
	return nil
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// splitCmdline splits a kernel command line into its parameters. As the kernel does, double
// quotes group words with spaces and are dropped ("a=\"b c\"" is the parameter a=b c).
// (services/network has the same function; each service is a module of its own.)
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
