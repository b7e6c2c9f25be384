// Package host sets up the machine's own identity and loopback network: it brings up "lo"
// over netlink and sets the hostname from /etc/hostname. Other interfaces (DHCP, static
// addresses) are left to onboot containers or services.
package host

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DefaultHostname is used when /etc/hostname is missing or empty.
const DefaultHostname = "kiln"

// LoopbackUp sets the "lo" interface up; the kernel then gives it 127.0.0.1 and ::1.
func LoopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find the loopback interface: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	return nil
}

// ReadHostname returns the first line of file, trimmed, or DefaultHostname when the file is
// missing or has no name. A name the kernel would refuse is an error.
func ReadHostname(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	name, _, _ := strings.Cut(string(data), "\n")
	name = strings.TrimSpace(name)
	if name == "" {
		return DefaultHostname, nil
	}
	if err := CheckHostname(name); err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	return name, nil
}

// CheckHostname accepts what sethostname(2) accepts and a resolver can use: 1 to 64
// characters, letters, digits, '-' and '.'.
func CheckHostname(name string) error {
	if len(name) == 0 || len(name) > 64 {
		return fmt.Errorf("hostname %q must be 1 to 64 characters long", name)
	}
	for _, r := range name {
		ok := r == '-' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("hostname %q has %q; use letters, digits, '-' and '.'", name, r)
		}
	}
	return nil
}

// SetHostname sets the kernel's hostname.
func SetHostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("set the hostname to %q: %w", name, err)
	}
	return nil
}
