package spec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kiln-os/kiln/config"
)

// ErrNotFound is wrapped by every error for a user or group name that no lookup knows.
var ErrNotFound = errors.New("not found")

// IDLookup resolves user and group names to numeric ids. User also returns the user's primary
// group. Both return an error wrapping ErrNotFound for an unknown name.
type IDLookup interface {
	User(name string) (uid, gid uint32, err error)
	Group(name string) (gid uint32, err error)
}

// Account is one line of an /etc/passwd file.
type Account struct {
	Name string
	UID  uint32
	GID  uint32
}

// Passwd is a parsed /etc/passwd, in file order. A nil Passwd (no file) knows no user.
type Passwd []Account

// Group is one line of an /etc/group file.
type Group struct {
	Name string
	GID  uint32
}

// Groups is a parsed /etc/group, in file order. A nil Groups (no file) knows no group.
type Groups []Group

// ParsePasswd reads an /etc/passwd file into a Lookup that knows its users (and no group).
// Comments, blank lines, NIS entries ("+", "-") and lines whose ids are not numbers are
// skipped. An empty reader (no file) gives a lookup that knows nobody.
func ParsePasswd(r io.Reader) (IDLookup, error) {
	pw, err := parsePasswd(r)
	if err != nil {
		return nil, err
	}
	return Lookup{Passwd: pw}, nil
}

// ParseGroup reads an /etc/group file into a Lookup that knows its groups (and no user), skipping
// lines as ParsePasswd does.
func ParseGroup(r io.Reader) (IDLookup, error) {
	gr, err := parseGroup(r)
	if err != nil {
		return nil, err
	}
	return Lookup{Groups: gr}, nil
}

func parsePasswd(r io.Reader) (Passwd, error) {
	var out Passwd
	err := eachLine(r, func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return
		}
		out = append(out, Account{Name: f[0], UID: uint32(uid), GID: uint32(gid)})
	})
	if err != nil {
		return nil, fmt.Errorf("read passwd: %w", err)
	}
	return out, nil
}

func parseGroup(r io.Reader) (Groups, error) {
	var out Groups
	err := eachLine(r, func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return
		}
		out = append(out, Group{Name: f[0], GID: uint32(gid)})
	})
	if err != nil {
		return nil, fmt.Errorf("read group: %w", err)
	}
	return out, nil
}

func eachLine(r io.Reader, fn func(fields []string)) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	return sc.Err()
}

// Lookup resolves names against an image's /etc/passwd and /etc/group. Either may be nil when
// the image lacks the file. A name that is all digits also matches an entry by number, so that
// an image's `USER 1000` finds that user's primary group.
type Lookup struct {
	Passwd Passwd
	Groups Groups
}

// User implements IDLookup.
func (l Lookup) User(name string) (uint32, uint32, error) {
	for _, a := range l.Passwd {
		if a.Name == name {
			return a.UID, a.GID, nil
		}
	}
	if n, ok := number(name); ok {
		for _, a := range l.Passwd {
			if a.UID == n {
				return a.UID, a.GID, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("user %q: %w in /etc/passwd", name, ErrNotFound)
}

// Group implements IDLookup.
func (l Lookup) Group(name string) (uint32, error) {
	for _, g := range l.Groups {
		if g.Name == name {
			return g.GID, nil
		}
	}
	if n, ok := number(name); ok {
		for _, g := range l.Groups {
			if g.GID == n {
				return g.GID, nil
			}
		}
	}
	return 0, fmt.Errorf("group %q: %w in /etc/group", name, ErrNotFound)
}

// ContainerIDs is LinuxKit's id allocation: every container of a system gets an id, 100 upwards,
// in the order onboot, onshutdown, services, and a uid or gid may name a container to use that
// id (for both the user and the group).
type ContainerIDs map[string]uint32

// AllocateContainerIDs gives each container of sys its id as LinuxKit does (the rule is
// config.System.ContainerIDs, which validation uses for the files section too).
func AllocateContainerIDs(sys *config.System) ContainerIDs {
	return ContainerIDs(sys.ContainerIDs())
}

// User implements IDLookup.
func (c ContainerIDs) User(name string) (uint32, uint32, error) {
	if id, ok := c[name]; ok {
		return id, id, nil
	}
	return 0, 0, fmt.Errorf("user %q: %w among container names", name, ErrNotFound)
}

// Group implements IDLookup.
func (c ContainerIDs) Group(name string) (uint32, error) {
	if id, ok := c[name]; ok {
		return id, nil
	}
	return 0, fmt.Errorf("group %q: %w among container names", name, ErrNotFound)
}

// Chain asks each lookup in turn and returns the first answer. Only ErrNotFound moves on to the
// next lookup; any other error is returned at once.
type Chain []IDLookup

// User implements IDLookup.
func (c Chain) User(name string) (uint32, uint32, error) {
	err := fmt.Errorf("user %q: %w", name, ErrNotFound)
	for _, l := range c {
		var uid, gid uint32
		uid, gid, err = l.User(name)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return uid, gid, err
		}
	}
	return 0, 0, err
}

// Group implements IDLookup.
func (c Chain) Group(name string) (uint32, error) {
	err := fmt.Errorf("group %q: %w", name, ErrNotFound)
	for _, l := range c {
		var gid uint32
		gid, err = l.Group(name)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return gid, err
		}
	}
	return 0, err
}

func number(s string) (uint32, bool) {
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// resolveUser turns a uid setting into a number: unset, "" and "root" are 0, digits are that
// number, any other name is looked up.
func resolveUser(v *config.IDValue, ids IDLookup) (uint32, error) {
	switch {
	case v == nil:
		return 0, nil
	case v.ID != nil:
		return *v.ID, nil
	case v.Name == "" || v.Name == "root":
		return 0, nil
	}
	if err := config.ValidateIDName(v.Name); err != nil {
		return 0, err
	}
	if n, ok := number(v.Name); ok {
		return n, nil
	}
	if ids == nil {
		return 0, fmt.Errorf("user %q: %w (no lookup)", v.Name, ErrNotFound)
	}
	uid, _, err := ids.User(v.Name)
	return uid, err
}

// resolveGroup is resolveUser for a gid.
func resolveGroup(v *config.IDValue, ids IDLookup) (uint32, error) {
	switch {
	case v == nil:
		return 0, nil
	case v.ID != nil:
		return *v.ID, nil
	case v.Name == "" || v.Name == "root":
		return 0, nil
	}
	if err := config.ValidateIDName(v.Name); err != nil {
		return 0, err
	}
	if n, ok := number(v.Name); ok {
		return n, nil
	}
	if ids == nil {
		return 0, fmt.Errorf("group %q: %w (no lookup)", v.Name, ErrNotFound)
	}
	return ids.Group(v.Name)
}

// resolveImageUser applies Docker's reading of an image's User ("user", "uid", "user:group",
// "uid:gid"): a user given alone runs with its primary group from /etc/passwd, or group 0 when a
// numeric user has no entry.
func resolveImageUser(user string, ids IDLookup) (uid, gid uint32, err error) {
	if user == "" {
		return 0, 0, nil
	}
	name, group, hasGroup := strings.Cut(user, ":")
	n, numeric := number(name)
	switch {
	case name == "":
		// ":group" leaves the user as root.
	case ids != nil:
		uid, gid, err = ids.User(name)
		if err != nil {
			if !errors.Is(err, ErrNotFound) || (!numeric && name != "root") {
				return 0, 0, err
			}
			uid, gid, err = n, 0, nil // n is 0 for root
		}
	case numeric || name == "root":
		uid = n
	default:
		return 0, 0, fmt.Errorf("user %q: %w (no lookup)", name, ErrNotFound)
	}
	if hasGroup {
		gid, err = resolveGroup(&config.IDValue{Name: group}, ids)
	}
	return uid, gid, err
}
