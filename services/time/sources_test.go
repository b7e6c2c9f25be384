package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseServer(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "10.0.2.2", want: "10.0.2.2:123"},
		{in: "10.0.2.2:11123", want: "10.0.2.2:11123"},
		{in: "ntp.example.com", want: "ntp.example.com:123"},
		{in: "NTP.Example.com.:4123", want: "ntp.example.com.:4123"},
		{in: "time-1.example", want: "time-1.example:123"},
		{in: "::1", want: "[::1]:123"},
		{in: "2001:db8::1", want: "[2001:db8::1]:123"},
		{in: "[2001:db8::1]:1234", want: "[2001:db8::1]:1234"},
		{in: "[fe80::1%eth0]:123", want: "[fe80::1%eth0]:123"},
		{in: "", err: "an empty server"},
		{in: "a b", err: "want one server a line"},
		{in: "10.0.2.2:0", err: `port "0": want a number from 1 to 65535`},
		{in: "10.0.2.2:65536", err: `port "65536"`},
		{in: "10.0.2.2:ntp", err: `port "ntp"`},
		{in: "10.0.2.2:0123", err: `port "0123"`},
		{in: "10.0.2.2:", err: `port ""`},
		{in: "[10.0.2.2]:123", err: "brackets are for IPv6 addresses"},
		{in: "[example.com]:123", err: "not an IPv6 address"},
		{in: "[::1", err: "want host, host:port or [IPv6]:port"},
		{in: "a:b:c", err: "want host, host:port or [IPv6]:port"},
		{in: "10.0.2.300", err: `"10.0.2.300" is not an IP address`},
		{in: "-bad.example", err: "is not a host name or IP address"},
		{in: "under_score.example", err: "is not a host name or IP address"},
		{in: "a..b", err: "is not a host name or IP address"},
		{in: "http://ntp.example.com", err: "not a URL"},
		{in: "ntp.example.com/x", err: "is not a host name or IP address"},
	} {
		got, err := ParseServer(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseServer(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseServer(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// A bad line is an error that names the file and the line; the good lines are kept.
func TestParseFile(t *testing.T) {
	content := "# servers from the user data\n10.0.2.2\n\n  ntp.example.com:4123  # the second\na b\n10.0.2.2:123\n[::1\n"
	addrs, errs := ParseFile("/run/config/ntp", content)
	if want := []string{"10.0.2.2:123", "ntp.example.com:4123"}; !slices.Equal(addrs, want) {
		t.Errorf("servers %q, want %q (each once)", addrs, want)
	}
	want := []string{
		`/run/config/ntp:5: "a b": want one server a line (host or host:port)`,
		`/run/config/ntp:7: "[::1": want host, host:port or [IPv6]:port`,
	}
	if len(errs) != len(want) {
		t.Fatalf("errors %v, want %d", errs, len(want))
	}
	for i, err := range errs {
		if err.Error() != want[i] {
			t.Errorf("error %d: %q, want %q", i, err, want[i])
		}
		var se *SyntaxError
		if !errors.As(err, &se) || se.Source != "/run/config/ntp" {
			t.Errorf("error %d: %#v, want a *SyntaxError of /run/config/ntp", i, err)
		}
	}
	if errors.Is(errs[0], errOneServer) != true {
		t.Errorf("%v does not wrap errOneServer", errs[0])
	}
}

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    []string
		errs    []string
	}{
		{cmdline: "console=ttyS0 panic=1"},
		{cmdline: "kiln.ntp=10.0.2.2:11123", want: []string{"10.0.2.2:11123"}},
		{cmdline: "a kiln.ntp=10.0.2.2,ntp.example.com b", want: []string{"10.0.2.2:123", "ntp.example.com:123"}},
		{cmdline: "kiln.ntp=1.1.1.1 kiln.ntp=10.0.2.2", want: []string{"10.0.2.2:123"}}, // the last wins
		{cmdline: `kiln.ntp="10.0.2.2"`, want: []string{"10.0.2.2:123"}},
		{cmdline: "kiln.ntp=10.0.2.2,bad_name,", want: []string{"10.0.2.2:123"},
			errs: []string{`kiln.ntp=:2: "bad_name": "bad_name" is not a host name or IP address`, `kiln.ntp=:3: "": an empty server`}},
		{cmdline: "kiln.ntp=", errs: []string{`kiln.ntp=:1: "": an empty server`}},
	} {
		got, errs := ParseCmdline(tc.cmdline)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: servers %q, want %q", tc.cmdline, got, tc.want)
		}
		var gotErrs []string
		for _, e := range errs {
			gotErrs = append(gotErrs, e.Error())
		}
		if !slices.Equal(gotErrs, tc.errs) {
			t.Errorf("%q: errors %q, want %q", tc.cmdline, gotErrs, tc.errs)
		}
	}
}

// The first source that names a good server wins whole: kiln.ntp=, then the metadata
// service's file, then the DHCP service's.
func TestFindServersPrecedence(t *testing.T) {
	const none = "\x00" // the file is not there
	for _, tc := range []struct {
		name                string
		cmdline, conf, dhcp string
		from                string // "cmdline", "conf", "dhcp" or "" for none
		want                []string
		problems            []string
	}{
		{name: "all three", cmdline: "panic=1 kiln.ntp=192.0.2.1\n", conf: "192.0.2.2\n", dhcp: "192.0.2.3\n",
			from: "cmdline", want: []string{"192.0.2.1:123"}},
		{name: "no kiln.ntp=", cmdline: "panic=1\n", conf: "192.0.2.2\n192.0.2.4:1234\n", dhcp: "192.0.2.3\n",
			from: "conf", want: []string{"192.0.2.2:123", "192.0.2.4:1234"}},
		{name: "DHCP only", cmdline: "panic=1\n", conf: none, dhcp: "192.0.2.3\n192.0.2.5\n",
			from: "dhcp", want: []string{"192.0.2.3:123", "192.0.2.5:123"}},
		{name: "an empty metadata file", cmdline: "panic=1\n", conf: "# none\n\n", dhcp: "192.0.2.3\n",
			from: "dhcp", want: []string{"192.0.2.3:123"}},
		{name: "metadata file of bad lines", cmdline: "panic=1\n", conf: "what?\n", dhcp: "192.0.2.3\n",
			from: "dhcp", want: []string{"192.0.2.3:123"}, problems: []string{`CONF:1: "what?": "what?" is not a host name or IP address`}},
		{name: "a bad kiln.ntp= item", cmdline: "kiln.ntp=192.0.2.1:99999,192.0.2.9\n", conf: "192.0.2.2\n", dhcp: none,
			from: "cmdline", want: []string{"192.0.2.9:123"}, problems: []string{`kiln.ntp=:1: "192.0.2.1:99999": port "99999": want a number from 1 to 65535`}},
		{name: "no command line", cmdline: none, conf: "192.0.2.2\n", dhcp: none,
			from: "conf", want: []string{"192.0.2.2:123"}, problems: []string{"the kernel command line: open CMDLINE: no such file or directory"}},
		{name: "nothing", cmdline: "panic=1\n", conf: none, dhcp: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			paths := map[string]string{
				"cmdline": filepath.Join(dir, "cmdline"),
				"conf":    filepath.Join(dir, "config", "ntp"),
				"dhcp":    filepath.Join(dir, "network", "ntp"),
			}
			for k, content := range map[string]string{"cmdline": tc.cmdline, "conf": tc.conf, "dhcp": tc.dhcp} {
				if content == none {
					continue
				}
				if err := os.MkdirAll(filepath.Dir(paths[k]), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(paths[k], []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, problems := FindServers(paths["cmdline"], []string{paths["conf"], paths["dhcp"]})
			wantFrom := map[string]string{"cmdline": cmdlineSource, "conf": paths["conf"], "dhcp": paths["dhcp"]}[tc.from]
			if got.From != wantFrom || !slices.Equal(got.Addrs, tc.want) {
				t.Errorf("servers %q from %q, want %q from %q", got.Addrs, got.From, tc.want, wantFrom)
			}
			var gotProblems []string
			for _, p := range problems {
				s := strings.ReplaceAll(p.Error(), paths["conf"], "CONF")
				gotProblems = append(gotProblems, strings.ReplaceAll(s, paths["cmdline"], "CMDLINE"))
			}
			if !slices.Equal(gotProblems, tc.problems) {
				t.Errorf("problems %q, want %q", gotProblems, tc.problems)
			}
		})
	}
}

func TestSplitCmdline(t *testing.T) {
	got := splitCmdline("a  b=\"c d\"\tkiln.ntp=x,y\n")
	if want := []string{"a", "b=c d", "kiln.ntp=x,y"}; !slices.Equal(got, want) {
		t.Errorf("splitCmdline = %q, want %q", got, want)
	}
}
