package qemu

import (
	"strings"
	"testing"
)

func TestParseForward(t *testing.T) {
	cases := []struct {
		in   string
		want Forward
		err  string
	}{
		{in: "8080:80", want: Forward{Proto: "tcp", Host: 8080, Guest: 80}},
		{in: "2222:22/tcp", want: Forward{Proto: "tcp", Host: 2222, Guest: 22}},
		{in: "127.0.0.1:5353:53/udp", want: Forward{Proto: "udp", HostAddr: "127.0.0.1", Host: 5353, Guest: 53}},
		{in: "80", err: "want [ADDR:]HOST:GUEST"},
		{in: "a:b:c:d", err: "want [ADDR:]HOST:GUEST"},
		{in: "0:80", err: "host port"},
		{in: "80:65536", err: "guest port"},
		{in: "x:80", err: "host port"},
		{in: "80:80/sctp", err: `protocol "sctp"`},
	}
	for _, tc := range cases {
		got, err := ParseForward(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseForward(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseForward(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if again, err := ParseForward(got.String()); err != nil || again != got {
			t.Errorf("ParseForward(%q.String() = %q) = %+v, %v", tc.in, got.String(), again, err)
		}
	}
}

func TestParseDisk(t *testing.T) {
	cases := []struct {
		in   string
		want Disk
		err  string
	}{
		{in: "disk.img", want: Disk{Path: "disk.img"}},
		{in: "out/a.qcow2,format=qcow2", want: Disk{Path: "out/a.qcow2", Format: "qcow2"}},
		{in: "a.img,readonly,format=raw", want: Disk{Path: "a.img", Format: "raw", ReadOnly: true}},
		{in: "a.img,ro", want: Disk{Path: "a.img", ReadOnly: true}},
		{in: ",format=raw", err: "no file name"},
		{in: "a.img,format=vmdk", err: `format "vmdk"`},
		{in: "a.img,cache=none", err: `unknown option "cache=none"`},
	}
	for _, tc := range cases {
		got, err := ParseDisk(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseDisk(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDisk(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestCompleteCmdline(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "console=ttyS0 panic=-1"},
		{"quiet", "quiet console=ttyS0 panic=-1"},
		{"console=tty0 quiet", "console=tty0 quiet panic=-1"},
		{"panic=10", "panic=10 console=ttyS0"},
		{"  console=hvc0   panic=0 ", "console=hvc0   panic=0"},
		{"kiln.console=x", "kiln.console=x console=ttyS0 panic=-1"},
	}
	for _, tc := range cases {
		if got := completeCmdline(tc.in, "ttyS0"); got != tc.want {
			t.Errorf("completeCmdline(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestConsoleDevice(t *testing.T) {
	want := map[string]string{"amd64": "ttyS0", "arm64": "ttyAMA0", "s390x": "ttysclp0", "riscv64": ""}
	for arch, dev := range want {
		if got := ConsoleDevice(arch); got != dev {
			t.Errorf("ConsoleDevice(%s) = %q, want %q", arch, got, dev)
		}
	}
	for _, a := range Arches() {
		if ConsoleDevice(a) == "" {
			t.Errorf("Arches lists %s, which has no console", a)
		}
	}
}
