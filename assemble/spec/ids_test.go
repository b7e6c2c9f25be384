package spec

import (
	"errors"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/config"
)

func TestParsePasswd(t *testing.T) {
	in := "# comment\n\nroot:x:0:0:root:/root:/bin/sh\n+::::::\nbroken:x:notanumber:1\nshort:x\n daemon:x:1:2::/:/bin/false \nuser:x:1000:1000\n"
	l, err := ParsePasswd(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	pw := l.(Lookup).Passwd
	if uid, gid, err := l.User("daemon"); err != nil || uid != 1 || gid != 2 {
		t.Errorf("User(daemon): got %d:%d %v", uid, gid, err)
	}
	if _, err := l.Group("root"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a passwd lookup knows no group, got %v", err)
	}
	want := Passwd{{"root", 0, 0}, {"daemon", 1, 2}, {"user", 1000, 1000}}
	if len(pw) != len(want) {
		t.Fatalf("got %v, want %v", pw, want)
	}
	for i := range want {
		if pw[i] != want[i] {
			t.Errorf("entry %d: got %v, want %v", i, pw[i], want[i])
		}
	}
}

func TestParseMissingFile(t *testing.T) {
	l, err := ParsePasswd(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.User("root"); !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v, want ErrNotFound", err)
	}
	// Without /etc/passwd, numbers and root still resolve.
	s, _, err := Generate(Input{Name: "n", YAML: &config.Image{UID: ptr(name("1000")), GID: ptr(num(5))}, Image: testImage(), IDs: l})
	if err != nil || s.Process.User.UID != 1000 || s.Process.User.GID != 5 {
		t.Fatalf("got %+v %v", s, err)
	}
}

func TestParseGroup(t *testing.T) {
	l, err := ParseGroup(strings.NewReader("root:x:0:\nwheel:x:10:root,admin\n-nis\nbad:x:\nstaff:x:50\n"))
	if err != nil {
		t.Fatal(err)
	}
	gr := l.(Lookup).Groups
	if gid, err := l.Group("wheel"); err != nil || gid != 10 {
		t.Errorf("Group(wheel): got %d %v", gid, err)
	}
	want := Groups{{"root", 0}, {"wheel", 10}, {"staff", 50}}
	if len(gr) != len(want) {
		t.Fatalf("got %v, want %v", gr, want)
	}
	for i := range want {
		if gr[i] != want[i] {
			t.Errorf("entry %d: got %v, want %v", i, gr[i], want[i])
		}
	}
}

func TestLookup(t *testing.T) {
	l := Lookup{
		Passwd: Passwd{{"root", 0, 0}, {"app", 1000, 1001}, {"1234", 5, 5}},
		Groups: Groups{{"root", 0}, {"appgrp", 1001}},
	}
	cases := []struct {
		name     string
		user     bool
		in       string
		uid, gid uint32
		notFound bool
	}{
		{"user by name", true, "app", 1000, 1001, false},
		{"user by number", true, "1000", 1000, 1001, false},
		{"name that looks like a number wins", true, "1234", 5, 5, false},
		{"unknown user", true, "ghost", 0, 0, true},
		{"unknown user number", true, "4242", 0, 0, true},
		{"group by name", false, "appgrp", 0, 1001, false},
		{"group by number", false, "1001", 0, 1001, false},
		{"unknown group", false, "ghost", 0, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var uid, gid uint32
			var err error
			if c.user {
				uid, gid, err = l.User(c.in)
			} else {
				gid, err = l.Group(c.in)
			}
			if c.notFound {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("got %v, want ErrNotFound", err)
				}
				return
			}
			if err != nil || uid != c.uid || gid != c.gid {
				t.Errorf("got %d:%d %v, want %d:%d", uid, gid, err, c.uid, c.gid)
			}
		})
	}
}

func TestAllocateContainerIDsAndChain(t *testing.T) {
	sys := &config.System{
		Onboot:     []*config.Image{{Name: "sysctl"}, {Name: "dhcpcd"}},
		Onshutdown: []*config.Image{{Name: "shutdown"}},
		Services:   []*config.Image{{Name: "sshd"}},
	}
	ids := AllocateContainerIDs(sys)
	want := ContainerIDs{"sysctl": 100, "dhcpcd": 101, "shutdown": 102, "sshd": 103}
	if len(ids) != len(want) {
		t.Fatalf("got %v, want %v", ids, want)
	}
	for k, v := range want {
		if ids[k] != v {
			t.Errorf("%s: got %d, want %d", k, ids[k], v)
		}
	}
	// Container names first (LinuxKit), then the image's files.
	chain := Chain{ids, Lookup{Passwd: Passwd{{"sshd", 22, 22}, {"nobody", 65534, 65534}}, Groups: Groups{{"nogroup", 65534}}}}
	if uid, gid, err := chain.User("sshd"); err != nil || uid != 103 || gid != 103 {
		t.Errorf("sshd: got %d:%d %v, want the container id 103", uid, gid, err)
	}
	if uid, _, err := chain.User("nobody"); err != nil || uid != 65534 {
		t.Errorf("nobody: got %d %v", uid, err)
	}
	if gid, err := chain.Group("nogroup"); err != nil || gid != 65534 {
		t.Errorf("nogroup: got %d %v", gid, err)
	}
	if _, _, err := chain.User("ghost"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ghost: got %v, want ErrNotFound", err)
	}
	if _, err := (Chain{}).Group("ghost"); !errors.Is(err, ErrNotFound) {
		t.Errorf("empty chain: got %v, want ErrNotFound", err)
	}
}

// failing is a lookup whose errors are not "not found": a chain must stop at them.
type failing struct{}

var errBroken = errors.New("broken")

func (failing) User(string) (uint32, uint32, error) { return 0, 0, errBroken }
func (failing) Group(string) (uint32, error)        { return 0, errBroken }

func TestChainStopsOnOtherErrors(t *testing.T) {
	chain := Chain{failing{}, ContainerIDs{"x": 100}}
	if _, _, err := chain.User("x"); !errors.Is(err, errBroken) {
		t.Errorf("got %v, want errBroken", err)
	}
}

func TestResolveIDs(t *testing.T) {
	full := Lookup{
		Passwd: Passwd{{"root", 0, 0}, {"app", 1000, 1001}, {"num", 2000, 2002}},
		Groups: Groups{{"root", 0}, {"appgrp", 1001}, {"wheel", 10}},
	}
	none := Lookup{} // an image without /etc/passwd or /etc/group
	cases := []struct {
		name     string
		user     string
		ids      IDLookup
		uid, gid uint32
		notFound bool
	}{
		{"empty is root", "", full, 0, 0, false},
		{"name takes primary group", "app", full, 1000, 1001, false},
		{"number finds its entry", "2000", full, 2000, 2002, false},
		{"number without entry", "3000", full, 3000, 0, false},
		{"user and group names", "app:wheel", full, 1000, 10, false},
		{"numbers only", "5:6", full, 5, 6, false},
		{"group only", ":wheel", full, 0, 10, false},
		{"unknown name", "ghost", full, 0, 0, true},
		{"unknown group", "app:ghost", full, 0, 0, true},
		{"no passwd: number", "42", none, 42, 0, false},
		{"no passwd: numbers", "42:43", none, 42, 43, false},
		{"no passwd: root", "root", none, 0, 0, false},
		{"no passwd: name", "app", none, 0, 0, true},
		{"no lookup: number", "7:8", nil, 7, 8, false},
		{"no lookup: name", "app", nil, 0, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			uid, gid, err := resolveImageUser(c.user, c.ids)
			if c.notFound {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("got %d:%d %v, want ErrNotFound", uid, gid, err)
				}
				return
			}
			if err != nil || uid != c.uid || gid != c.gid {
				t.Errorf("got %d:%d %v, want %d:%d", uid, gid, err, c.uid, c.gid)
			}
		})
	}

	// YAML and label values: numbers need no lookup, "root" and "" are 0, digits in a string
	// are a number, names need a lookup.
	for _, c := range []struct {
		v        config.IDValue
		ids      IDLookup
		want     uint32
		notFound bool
	}{
		{num(12), nil, 12, false},
		{name("root"), nil, 0, false},
		{name(""), nil, 0, false},
		{name("77"), none, 77, false},
		{name("app"), full, 1000, false},
		{name("app"), none, 0, true},
		{name("app"), nil, 0, true},
	} {
		got, err := resolveUser(&c.v, c.ids)
		if c.notFound != errors.Is(err, ErrNotFound) || (!c.notFound && (err != nil || got != c.want)) {
			t.Errorf("resolveUser(%+v): got %d %v, want %d (not found %v)", c.v, got, err, c.want, c.notFound)
		}
	}
	if gid, err := resolveGroup(&config.IDValue{Name: "appgrp"}, full); err != nil || gid != 1001 {
		t.Errorf("resolveGroup(appgrp): got %d %v", gid, err)
	}
}
