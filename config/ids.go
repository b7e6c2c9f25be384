package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// The rules in this file are shared by validation and by the build: `kiln validate` and
// `kiln build` accept exactly the same modes, uids and gids, with the same messages.

// ParseMode parses the mode of a files entry or a device: octal digits only, as LinuxKit reads
// it ("0644", "755"), at most 07777. Go's "0o" prefix, signs and underscores are refused, as
// LinuxKit refuses them.
func ParseMode(s string) (uint32, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("invalid mode %q; expected an octal number such as \"0644\"", s)
	}
	return uint32(m), nil
}

// ContainerIDs is LinuxKit's id allocation: every container of the system gets an id, 100
// upwards, in the order onboot, onshutdown, services, and a uid or gid may name a container to
// mean its id. A name used twice keeps its later id.
func (s *System) ContainerIDs() map[string]uint32 {
	ids := map[string]uint32{}
	next := uint32(100)
	for _, section := range [][]*Image{s.Onboot, s.Onshutdown, s.Services} {
		for _, img := range section {
			if img != nil {
				ids[img.Name] = next
			}
			next++
		}
	}
	return ids
}

// ValidateIDName checks a user or group name written as uid, gid or additionalGids: it must be
// a name that an /etc/passwd or /etc/group line can hold (no ':', no white space or control
// characters).
func ValidateIDName(name string) error {
	if name == "" {
		return fmt.Errorf("empty user or group name")
	}
	if strings.ContainsFunc(name, func(r rune) bool { return r == ':' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("invalid user or group name %q: /etc/passwd and /etc/group names have no ':', white space or control characters", name)
	}
	return nil
}

// FileID resolves the uid or gid of a files entry. A files entry has no image whose
// /etc/passwd could name users, so, as in LinuxKit, it takes a number, "root" (0), or the name
// of a container of the system (its id, see System.ContainerIDs); a name written as digits is
// that number. Nil is 0.
func FileID(v *IDValue, containers map[string]uint32) (uint32, error) {
	switch {
	case v == nil:
		return 0, nil
	case v.ID != nil:
		return *v.ID, nil
	case v.Name == "root":
		return 0, nil
	}
	if err := ValidateIDName(v.Name); err != nil {
		return 0, err
	}
	if n, err := strconv.ParseUint(v.Name, 10, 32); err == nil {
		return uint32(n), nil
	}
	if id, ok := containers[v.Name]; ok {
		return id, nil
	}
	return 0, fmt.Errorf("unknown user or group %q: a files entry has no image to look names up in; use a number, \"root\" or the name of a container of this system", v.Name)
}
