package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// errorStrings splits a joined error into its messages, checking each is an *Error.
func errorStrings(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var list []error
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	var out []string
	for _, e := range list {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Errorf("error %q is not a *config.Error", e)
		}
		out = append(out, e.Error())
	}
	return out
}

func encode(t *testing.T, s *System) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Encode(&buf); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return buf.Bytes()
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestGolden loads realistic files, encodes them, compares with golden files and checks that
// the encoding parses back to the same description.
func TestGolden(t *testing.T) {
	for _, name := range []string{"minimal", "sshd", "volumes", "trust"} {
		t.Run(name, func(t *testing.T) {
			res, err := Load(filepath.Join("testdata", name+".yml"))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if wantWarn := name == "trust"; (len(res.Warnings) == 1) != wantWarn || len(res.Warnings) > 1 {
				t.Errorf("warnings = %v", res.Warnings)
			}
			out := encode(t, res.System)
			checkGolden(t, name+".yml", out)

			again, err := Parse("golden.yml", out)
			if err != nil {
				t.Fatalf("Parse of encoded output: %v\n%s", err, out)
			}
			if err := again.Validate(); err != nil {
				t.Fatalf("Validate of encoded output: %v", err)
			}
			if out2 := encode(t, again); !bytes.Equal(out, out2) {
				t.Errorf("round trip changed the encoding:\n--- first\n%s\n--- second\n%s", out, out2)
			}
		})
	}
}

func TestDecodedValues(t *testing.T) {
	res, err := Load("testdata/sshd.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := res.System
	if len(res.Warnings) != 0 {
		t.Errorf("unexpected warnings: %v", res.Warnings)
	}
	if s.Kernel.Tar == nil || *s.Kernel.Tar != "none" || s.Kernel.Binary != "vmlinux" {
		t.Errorf("kernel = %+v", s.Kernel)
	}
	rngd := s.Services[1]
	if r := rngd.Resources; r == nil || r.Memory == nil || *r.Memory.Limit != 67108864 || r.BlockIO == nil || *r.BlockIO.Weight != 100 {
		t.Errorf("resources not decoded: %+v", rngd.Resources)
	}
	if *rngd.OOMScoreAdj != -800 {
		t.Errorf("oomScoreAdj = %d", *rngd.OOMScoreAdj)
	}
	sshd := s.Services[2]
	if sshd.UID.Name != "sshd" || sshd.UID.ID != nil || *sshd.GID.ID != 22 {
		t.Errorf("uid/gid = %+v %+v", sshd.UID, sshd.GID)
	}
	if ag := *sshd.AdditionalGids; len(ag) != 2 || ag[0].Name != "wheel" || *ag[1].ID != 10 {
		t.Errorf("additionalGids = %+v", ag)
	}
	if m := (*sshd.UIDMappings)[0]; m.ContainerID != 0 || m.HostID != 100000 || m.Size != 65536 {
		t.Errorf("uidMappings = %+v", m)
	}
	if m := (*sshd.Mounts)[0]; m.Destination != "/proc" || m.Type != "proc" || !slices.Equal(m.Options, []string{"nosuid", "noexec", "nodev"}) {
		t.Errorf("mounts[0] = %+v", m)
	}
	wg := s.Services[3].Runtime
	if ifs := *wg.Interfaces; !ifs[0].CreateInRoot || ifs[2].Peer != "veth1" {
		t.Errorf("interfaces = %+v", ifs)
	}
	if *wg.BindNS.Net != "/run/netns/wg1" || wg.BindNS.Pid != nil {
		t.Errorf("bindNS = %+v", wg.BindNS)
	}
	if got := *s.Files[2].Contents; got != "Welcome to kiln.\n  Indented line.\n" {
		t.Errorf("contents = %q", got)
	}
	if got := sshd.FieldPos("binds[1]"); got != (Position{"testdata/sshd.yml", 86, 9}) {
		t.Errorf("FieldPos(binds[1]) = %v", got)
	}
	if got, want := sshd.Pos, (Position{"testdata/sshd.yml", 74, 5}); got != want {
		t.Errorf("Pos = %v, want %v", got, want)
	}
	if got := sshd.Path(); got != "services[2]" {
		t.Errorf("Path = %q", got)
	}
}

func TestDecodeFeatures(t *testing.T) {
	src := `
x-common: &common
  image: kiln/base:1
  capabilities: [CAP_NET_ADMIN]
services:
  - <<: *common
    name: a
  - <<: *common
    name: b
    image: kiln/other:2
    capabilities: ~
    command: &cmd ["/bin/sh", "-c", "true"]
    env: []
  - name: c
    image: kiln/c:1
    command: *cmd
    oomScoreAdj: 0x10
    uid: 0o17
`
	// x-common is not a LinuxKit key: expect exactly that one error, and everything else decoded.
	_, err := Parse("f.yml", []byte(src))
	if got := errorStrings(t, err); len(got) != 1 || !strings.HasPrefix(got[0], `f.yml:2:1: unknown key "x-common"`) {
		t.Fatalf("errors = %q", got)
	}

	// The same with the anchor inside a known section.
	src = strings.Replace(src, "x-common: &common\n  image: kiln/base:1\n  capabilities: [CAP_NET_ADMIN]\nservices:\n",
		"services:\n  - &common\n    name: base\n    image: kiln/base:1\n    capabilities: [CAP_NET_ADMIN]\n", 1)
	s, err := Parse("f.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Services) != 4 {
		t.Fatalf("services = %d", len(s.Services))
	}
	a, b, c := s.Services[1], s.Services[2], s.Services[3]
	if a.Name != "a" || a.Image != "kiln/base:1" || a.Capabilities == nil || (*a.Capabilities)[0] != "CAP_NET_ADMIN" {
		t.Errorf("merge key: a = %+v", a)
	}
	if b.Image != "kiln/other:2" || b.Capabilities != nil {
		t.Errorf("override and null: b.image=%q caps=%v", b.Image, b.Capabilities)
	}
	if b.Env == nil || len(*b.Env) != 0 {
		t.Errorf("empty list must be set but empty: %v", b.Env)
	}
	if !slices.Equal(*c.Command, []string{"/bin/sh", "-c", "true"}) {
		t.Errorf("alias: command = %v", *c.Command)
	}
	if *c.OOMScoreAdj != 16 || *c.UID.ID != 15 {
		t.Errorf("integer forms: oomScoreAdj=%d uid=%d", *c.OOMScoreAdj, *c.UID.ID)
	}
	// An empty list survives encoding (it overrides the image's own value).
	if out := encode(t, s); !strings.Contains(string(out), "env: []") {
		t.Errorf("env: [] lost in encoding:\n%s", out)
	}
}

func TestEmptyDocuments(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n", "~\n", "---\n"} {
		s, err := Parse("e.yml", []byte(src))
		if err != nil {
			t.Errorf("Parse(%q): %v", src, err)
			continue
		}
		if err := s.Validate(); err != nil {
			t.Errorf("Validate(%q): %v", src, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	topKeys := "kernel, init, onboot, onshutdown, services, files, volumes, trust"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "unknown top-level key",
			src:  "kernal:\n  image: k\n",
			want: []string{`t.yml:1:1: unknown key "kernal" (did you mean "kernel"?); expected one of ` + topKeys},
		},
		{
			name: "unknown key in an image",
			src:  "services:\n  - name: a\n    image: b\n    capabilites: [CAP_KILL]\n",
			want: []string{`t.yml:4:5: services[0]: unknown key "capabilites" (did you mean "capabilities"?); expected one of name, image, capabilities, capabilities.add, ambient, mounts, binds, binds.add, tmpfs, devices, command, env, cwd, net, pid, ipc, uts, userns, hostname, readonly, maskedPaths, readonlyPaths, uid, gid, additionalGids, noNewPrivileges, oomScoreAdj, rootfsPropagation, cgroupsPath, resources, sysctl, rlimits, uidMappings, gidMappings, annotations, runtime`},
		},
		{
			name: "unknown key in a runtime-spec type",
			src:  "services:\n  - name: a\n    image: b\n    resources:\n      memory:\n        limt: 10\n",
			want: []string{`t.yml:6:9: services[0].resources.memory: unknown key "limt" (did you mean "limit"?); expected one of limit, reservation, swap, kernel, kernelTCP, swappiness, disableOOMKiller, useHierarchy, checkBeforeUpdate`},
		},
		{
			name: "list expected, mapping given",
			src:  "init:\n  a: b\n",
			want: []string{`t.yml:2:3: init: expected a list of strings, got a mapping`},
		},
		{
			name: "list expected, string given",
			src:  "onboot:\n  - name: a\n    image: b\n    command: /bin/true\n",
			want: []string{`t.yml:4:14: onboot[0].command: expected a list of strings, got a string`},
		},
		{
			name: "string expected, integer given",
			src:  "files:\n  - path: etc/x\n    contents: x\n    mode: 0644\n",
			want: []string{`t.yml:4:11: files[0].mode: expected a string, got an integer (quote it: "0644")`},
		},
		{
			name: "mapping expected",
			src:  "kernel: kiln/kernel:1\n",
			want: []string{`t.yml:1:9: kernel: expected a mapping, got a string`},
		},
		{
			name: "boolean expected",
			src:  "services:\n  - name: a\n    image: b\n    readonly: yes\n",
			want: []string{`t.yml:4:15: services[0].readonly: expected a boolean, got a string`},
		},
		{
			name: "integer expected",
			src:  "services:\n  - name: a\n    image: b\n    oomScoreAdj: 1.5\n",
			want: []string{`t.yml:4:18: services[0].oomScoreAdj: expected an integer, got a number`},
		},
		{
			name: "id expected",
			src:  "files:\n  - path: a\n    directory: true\n    uid: [0]\n",
			want: []string{`t.yml:4:10: files[0].uid: expected an integer or a name, got a list`},
		},
		{
			name: "integer overflow beyond int64",
			src:  "services:\n  - name: a\n    image: b\n    oomScoreAdj: 99999999999999999999\n",
			want: []string{`t.yml:4:18: services[0].oomScoreAdj: integer 99999999999999999999 out of range (-9223372036854775808 to 9223372036854775807)`},
		},
		{
			name: "integer overflow of uint32 and negative uid",
			src:  "services:\n  - name: a\n    image: b\n    uid: 4294967296\n    gid: -1\n",
			want: []string{
				`t.yml:4:10: services[0].uid: integer 4294967296 out of range (0 to 4294967295)`,
				`t.yml:5:10: services[0].gid: integer -1 out of range (0 to 4294967295)`,
			},
		},
		{
			name: "duplicate key",
			src:  "services:\n  - name: a\n    image: b\n    name: c\n",
			want: []string{`t.yml:4:5: services[0]: duplicate key "name" (first at line 2, column 5)`},
		},
		{
			name: "duplicate map key",
			src:  "onboot:\n  - name: a\n    image: b\n    sysctl:\n      a.b: \"1\"\n      a.b: \"2\"\n",
			want: []string{`t.yml:6:7: onboot[0].sysctl: duplicate key "a.b" (first at line 5, column 7)`},
		},
		{
			name: "null list element",
			src:  "init:\n  - kiln/init:1\n  - ~\n",
			want: []string{`t.yml:3:5: init[1]: expected a string, got null`},
		},
		{
			name: "map value of wrong type",
			src:  "onboot:\n  - name: a\n    image: b\n    sysctl:\n      net.ipv4.ip_forward: 1\n",
			want: []string{`t.yml:5:28: onboot[0].sysctl["net.ipv4.ip_forward"]: expected a string, got an integer (quote it: "1")`},
		},
		{
			name: "all errors in one pass, sorted by position",
			src:  "services:\n  - name: a\n    image: 1\n    bogus: x\nfiles: {}\ninit: [x, [y]]\n",
			want: []string{
				`t.yml:3:12: services[0].image: expected a string, got an integer (quote it: "1")`,
				`t.yml:4:5: services[0]: unknown key "bogus"; expected one of name, image, capabilities, capabilities.add, ambient, mounts, binds, binds.add, tmpfs, devices, command, env, cwd, net, pid, ipc, uts, userns, hostname, readonly, maskedPaths, readonlyPaths, uid, gid, additionalGids, noNewPrivileges, oomScoreAdj, rootfsPropagation, cgroupsPath, resources, sysctl, rlimits, uidMappings, gidMappings, annotations, runtime`,
				`t.yml:5:8: files: expected a list of mappings, got a mapping`,
				`t.yml:6:11: init[1]: expected a string, got a list`,
			},
		},
		{
			name: "syntax error",
			src:  "kernel:\n  image: a\n cmdline: b\n",
			want: []string{`t.yml:2: invalid YAML: did not find expected key`},
		},
		{
			name: "two documents",
			src:  "init: [a]\n---\ninit: [b]\n",
			want: []string{`t.yml:2:1: more than one YAML document; put one system description per file`},
		},
		{
			name: "root is a list",
			src:  "- a\n- b\n",
			want: []string{`t.yml:1:1: expected a mapping of sections (kernel, init, onboot, ...), got a list`},
		},
		{
			name: "alias cycle",
			src:  "init: &x [*x]\n",
			want: []string{`t.yml:1:11: init[0]: alias *x refers to a value that contains it`},
		},
		{
			name: "empty name",
			src:  "files:\n  - path: a\n    directory: true\n    gid: \"\"\n",
			want: []string{`t.yml:4:10: files[0].gid: empty user or group name`},
		},
		{
			name: "merge key of wrong type",
			src:  "services:\n  - <<: [a]\n    name: a\n    image: b\n",
			want: []string{`t.yml:2:10: services[0]: merge key << needs a mapping or a list of mappings, got a string`},
		},
		{
			name: "non-string key",
			src:  "services:\n  - name: a\n    image: b\n    sysctl:\n      [a]: b\n",
			want: []string{`t.yml:5:7: services[0].sysctl: mapping keys must be strings, got a list`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("t.yml", []byte(tt.src))
			if err == nil {
				t.Fatalf("no error; decoded %+v", s)
			}
			if s != nil {
				t.Errorf("Parse returned a System with an error")
			}
			got := errorStrings(t, err)
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestAliasBombs: small documents whose aliases (or merge keys naming aliases) expand to
// millions of values stop at the alias budget with one clear error.
func TestAliasBombs(t *testing.T) {
	// A few kilobytes that expand to 200 services × 100 mounts × 100 options.
	var nested strings.Builder
	nested.WriteString("services:\n  - &i\n    name: a\n    image: b\n    mounts:\n      - &m\n        destination: /x\n        type: tmpfs\n        options: [&o x")
	nested.WriteString(strings.Repeat(", *o", 99))
	nested.WriteString("]\n")
	for range 99 {
		nested.WriteString("      - *m\n")
	}
	for range 199 {
		nested.WriteString("  - *i\n")
	}
	// 1000 services merging one anchored entry that holds 1000 values: each merge copies the
	// values, a million in all, from a document of two thousand lines.
	var merged strings.Builder
	merged.WriteString("services:\n  - &x\n    name: s\n    image: b\n    command:\n")
	merged.WriteString(strings.Repeat("      - a\n", 1000))
	for i := range 1000 {
		fmt.Fprintf(&merged, "  - {<<: *x, name: s%d}\n", i)
	}
	for name, src := range map[string]string{"nested aliases": nested.String(), "merge keys": merged.String()} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("bomb.yml", []byte(src))
			got := errorStrings(t, err)
			if len(got) != 1 || !strings.Contains(got[0], "aliases expand to too many values (more than 200000)") {
				t.Fatalf("want one 'aliases expand to too many values' error, got %d: %.300q", len(got), got)
			}
		})
	}
}

// TestLargePlainDocument: values written out are not counted against the alias budget, so a
// 40,000-entry files section (about 200,000 values) loads, also when every entry names an
// anchored value once.
func TestLargePlainDocument(t *testing.T) {
	const n = 40_000
	for _, withAlias := range []bool{false, true} {
		var b strings.Builder
		b.WriteString("files:\n")
		for i := range n {
			mode := `"0644"`
			if withAlias {
				mode = "*m"
				if i == 0 {
					mode = `&m "0644"`
				}
			}
			fmt.Fprintf(&b, "  - path: etc/f%d\n    contents: x\n    mode: %s\n    uid: 0\n    gid: 0\n", i, mode)
		}
		path := filepath.Join(t.TempDir(), "big.yml")
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := Load(path)
		if err != nil {
			t.Fatalf("alias=%v: %.300v", withAlias, err)
		}
		if got := len(res.System.Files); got != n || res.System.Files[n-1].Mode != "0644" {
			t.Errorf("alias=%v: %d files, last mode %q", withAlias, got, res.System.Files[got-1].Mode)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	const svc = "services:\n  - name: a\n    image: b\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "kernel without image",
			src:  "kernel:\n  cmdline: console=ttyS0\n",
			want: []string{`t.yml:1:1: kernel.image: required`},
		},
		{
			name: "image without name and image",
			src:  "onboot:\n  - command: [\"true\"]\n",
			want: []string{`t.yml:2:5: onboot[0].image: required`, `t.yml:2:5: onboot[0].name: required`},
		},
		{
			name: "duplicate service name",
			src:  svc + "  - name: a\n    image: c\n",
			want: []string{`t.yml:4:11: services[1].name: duplicate service name "a"; first used by services[0].name at t.yml:2:11`},
		},
		{
			name: "unknown capability",
			src:  svc + "    capabilities.add: [CAP_FOO]\n",
			want: []string{`t.yml:4:24: services[0].capabilities.add[0]: unknown capability "CAP_FOO"; expected one of ` + strings.Join(capabilities[:], ", ") + `, or "all" or "none" alone`},
		},
		{
			name: "capability near miss",
			src:  svc + "    capabilities:\n      - net_admin\n",
			want: []string{`t.yml:5:9: services[0].capabilities[0]: unknown capability "net_admin"; did you mean "CAP_NET_ADMIN"?`},
		},
		{
			name: "all not alone",
			src:  svc + "    ambient: [all, CAP_KILL]\n",
			want: []string{`t.yml:4:15: services[0].ambient[0]: "all" must be the only entry of the list`},
		},
		{
			name: "binds",
			src:  svc + "    binds:\n      - /a\n      - \"/a:\"\n      - /a:/b:ro,\n      - /a:/b:c:d\n      - data:/data\n      - /a:b\n",
			want: []string{
				`t.yml:5:9: services[0].binds[0]: invalid bind "/a"; expected src:dst[:opt,opt]`,
				`t.yml:6:9: services[0].binds[1]: invalid bind "/a:": empty destination`,
				`t.yml:7:9: services[0].binds[2]: invalid bind "/a:/b:ro,": empty mount option`,
				`t.yml:8:9: services[0].binds[3]: invalid bind "/a:/b:c:d"; expected src:dst[:opt,opt]`,
				`t.yml:9:9: services[0].binds[4]: unknown volume "data"; declare it under volumes or use an absolute source path`,
			},
		},
		{
			name: "tmpfs",
			src:  svc + "    tmpfs: [\":size=1m\", \"/a:b:c\", tmp]\n",
			want: []string{
				`t.yml:4:13: services[0].tmpfs[0]: invalid tmpfs ":size=1m": empty destination`,
				`t.yml:4:25: services[0].tmpfs[1]: invalid tmpfs "/a:b:c"; expected dst[:opt,opt]`,
			},
		},
		{
			name: "rlimits",
			src:  svc + "    rlimits:\n      - nofile,10\n      - RLIMIT_FOO,1,2\n      - nproc,x,2\n      - core,10,5\n      - nofile,infinity,unlimited\n",
			want: []string{
				`t.yml:5:9: services[0].rlimits[0]: invalid rlimit "nofile,10"; expected name,soft,hard`,
				`t.yml:6:9: services[0].rlimits[1]: invalid rlimit "RLIMIT_FOO,1,2": unknown limit "RLIMIT_FOO"; expected one of ` + strings.Join(rlimits[:], ", ") + ` (with or without RLIMIT_)`,
				`t.yml:7:9: services[0].rlimits[2]: invalid rlimit "nproc,x,2": "x" is not a number, "unlimited" or "infinity"`,
				`t.yml:8:9: services[0].rlimits[3]: invalid rlimit "core,10,5": soft limit exceeds hard limit`,
			},
		},
		{
			name: "namespaces",
			src:  svc + "    net: bridge\n    pid: none\n    userns: /proc/1/ns/user\n    ipc: new\n",
			want: []string{
				`t.yml:4:10: services[0].net: invalid namespace "bridge"; expected "host", "new", "none" or an absolute path`,
				`t.yml:5:10: services[0].pid: invalid namespace "none"; expected "host", "new" or an absolute path`,
			},
		},
		{
			name: "devices",
			src:  svc + "    devices:\n      - {path: /dev/x, type: z, major: 1, minor: 1, mode: \"0666\"}\n      - {path: dev/y, type: c, major: 1, minor: 1, mode: \"0999\"}\n      - {path: /dev/z, type: a, major: 1, minor: 1}\n      - {path: all, type: a}\n",
			want: []string{
				`t.yml:5:30: services[0].devices[0].type: unknown device type "z"; expected b, c, u, p or a`,
				`t.yml:6:16: services[0].devices[1].path: "dev/y" is not an absolute path`,
				`t.yml:6:58: services[0].devices[1].mode: invalid mode "0999"; expected an octal number such as "0644"`,
				`t.yml:7:9: services[0].devices[2].mode: required (an octal mode such as "0666")`,
				`t.yml:7:30: services[0].devices[2].type: type "a" (all devices) is only valid with path "all"`,
			},
		},
		{
			name: "misc image fields",
			src:  svc + "    cwd: root\n    oomScoreAdj: 2000\n    rootfsPropagation: sideways\n    env: [NOEQUALS]\n    sysctl: {\"\": \"1\"}\n    maskedPaths: [proc]\n",
			want: []string{
				`t.yml:4:10: services[0].cwd: "root" is not an absolute path`,
				`t.yml:5:18: services[0].oomScoreAdj: 2000 out of range (-1000 to 1000)`,
				`t.yml:6:24: services[0].rootfsPropagation: unknown propagation "sideways"; expected shared, slave, private, unbindable or their r- forms`,
				`t.yml:7:11: services[0].env[0]: invalid environment entry "NOEQUALS"; expected NAME=value`,
				`t.yml:8:18: services[0].sysctl[""]: empty sysctl name`,
				`t.yml:9:19: services[0].maskedPaths[0]: "proc" is not an absolute path`,
			},
		},
		{
			name: "runtime",
			src:  svc + "    runtime:\n      mkdir: [var/x, \"\"]\n      interfaces:\n        - peer: p\n      bindNS:\n        net: run/netns/x\n      mounts:\n        - {source: /a, destination: /b}\n",
			want: []string{
				`t.yml:5:22: services[0].runtime.mkdir[1]: empty path`,
				`t.yml:7:11: services[0].runtime.interfaces[0].name: required`,
				`t.yml:7:17: services[0].runtime.interfaces[0].peer: only valid with add`,
				`t.yml:9:14: services[0].runtime.bindNS.net: "run/netns/x" is not an absolute path`,
				`t.yml:11:11: services[0].runtime.mounts[0].type: required (it can only be left out for proc, sysfs, devpts, mqueue, cgroup or /dev)`,
			},
		},
		{
			name: "files",
			src: "files:\n  - contents: x\n  - path: etc/a\n  - path: etc/b\n    contents: x\n    source: b\n" +
				"  - path: etc/c\n    metadata: toml\n    mode: \"rw\"\n  - path: ../etc\n    directory: true\n  - path: etc/d\n    symlink: /x\n    optional: true\n",
			want: []string{
				`t.yml:2:5: files[0].path: required`,
				`t.yml:3:5: files[1]: one of directory, symlink, contents, source or metadata is required`,
				`t.yml:6:13: files[2].source: only one of directory, symlink, contents, source or metadata may be set; got contents and source`,
				`t.yml:8:15: files[3].metadata: unknown metadata format "toml"; expected "json" or "yaml"`,
				`t.yml:9:11: files[3].mode: invalid mode "rw"; expected an octal number such as "0644"`,
				`t.yml:10:11: files[4].path: invalid path "../etc": must not leave the root filesystem`,
				`t.yml:14:15: files[5].optional: only valid with source`,
			},
		},
		{
			name: "volumes",
			src:  "volumes:\n  - name: Data\n  - name: a\n    format: qcow2\n    platforms: [linux]\n  - name: a\n  - image: x\n",
			want: []string{
				`t.yml:2:11: volumes[0].name: invalid volume name "Data"; use lower-case letters, digits, '-' and '_'`,
				`t.yml:4:13: volumes[1].format: unknown format "qcow2"; expected "oci" or "filesystem"`,
				`t.yml:5:17: volumes[1].platforms[0]: invalid platform "linux"; expected os/arch[/variant], e.g. linux/arm64`,
				`t.yml:6:11: volumes[2].name: duplicate volume name "a"; first used by volumes[1].name at t.yml:3:11`,
				`t.yml:7:5: volumes[3].name: required`,
			},
		},
		{
			name: "mount of an undeclared volume",
			src:  svc + "    mounts:\n      - {type: bind, source: data, destination: /data}\n",
			want: []string{`t.yml:5:30: services[0].mounts[0].source: unknown volume "data"; declare it under volumes or use an absolute path`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("t.yml", []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := errorStrings(t, s.Validate())
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	src := "onboot:\n  - name: mount\n    image: m\n  - name: mount\n    image: m\nservices:\n  - name: mount\n    image: s\ntrust:\n  org: [linuxkit]\n"
	s, err := Parse("w.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("duplicate onboot names must not be errors: %v", err)
	}
	var got []string
	for _, w := range s.Warnings() {
		got = append(got, w.Error())
	}
	want := []string{
		`w.yml:4:11: onboot[1].name: container name "mount" is also used by onboot[0].name at w.yml:2:11`,
		`w.yml:7:11: services[0].name: container name "mount" is also used by onboot[0].name at w.yml:2:11`,
		`w.yml:9:1: trust: content trust is not supported and the section is ignored; kiln pins every image by digest instead`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
}

// TestContainerNames: names containerd (services) or runc (onboot, onshutdown) would refuse
// at boot are rejected in every section, with the rule in the message.
func TestContainerNames(t *testing.T) {
	const rule = `: containerd would refuse it at boot; use ASCII letters and digits, joined by single '.', '_' or '-', starting and ending with a letter or digit`
	long := strings.Repeat("a", 300)
	tests := []struct {
		name string
		want string // "" for valid
	}{
		{"getty", ""},
		{"A1", ""},
		{"kube.proxy_v2-x", ""},
		{"9p", ""},
		{strings.Repeat("a", 76), ""},
		{"web:1", `invalid container name "web:1"` + rule},
		{"a b", `invalid container name "a b"` + rule},
		{long, `container name "aaaaaaaaaaaaaaaaaaaa"... is 300 characters long; containerd accepts at most 76`},
		{strings.Repeat("b", 77), `container name "bbbbbbbbbbbbbbbbbbbb"... is 77 characters long; containerd accepts at most 76`},
		{"-a", `invalid container name "-a"` + rule},
		{"a-", `invalid container name "a-"` + rule},
		{"_a", `invalid container name "_a"` + rule},
		{"a..b", `invalid container name "a..b"` + rule},
		{"a_-b", `invalid container name "a_-b"` + rule},
		{".", `invalid container name "."` + rule},
		{"..", `invalid container name ".."` + rule},
		{"a/b", `invalid container name "a/b"` + rule},
		{"a+b", `invalid container name "a+b"` + rule},
		{"café", `invalid container name "café"` + rule},
		{"a\tb", `invalid container name "a\tb"` + rule},
	}
	for _, section := range []string{"onboot", "onshutdown", "services"} {
		for _, tt := range tests {
			t.Run(section+"/"+tt.name, func(t *testing.T) {
				src := fmt.Sprintf("%s:\n  - name: %q\n    image: x\n", section, tt.name)
				s, err := Parse("n.yml", []byte(src))
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				if tt.want != "" {
					want = []string{"n.yml:2:11: " + section + "[0].name: " + tt.want}
				}
				if got := errorStrings(t, s.Validate()); !slices.Equal(got, want) {
					t.Errorf("errors:\n got %q\nwant %q", got, want)
				}
			})
		}
	}
}

// TestRelativeDestinations: LinuxKit accepts relative destinations in mounts, binds and tmpfs
// (its examples/hostmount-writeable-overlay.yml has one) and runc resolves them against the
// container's root, so they are accepted with a warning; in runtime.mounts and runtime.mkdir a
// relative path is the documented way to name a place in the container's root file system and
// is accepted silently.
func TestRelativeDestinations(t *testing.T) {
	src := "services:\n  - name: getty\n    image: g\n" +
		"    mounts:\n      - {type: overlay, source: overlay, destination: writeable-host-etc, options: [rw, lowerdir=/etc]}\n" +
		"    binds: [\"/var/log:logs\"]\n    binds.add: [\"/run:./run/../x:ro\"]\n    tmpfs: [scratch]\n" +
		"    runtime:\n      mounts:\n        - {type: overlay, source: overlay, destination: writeable-host-etc, options: [rw, lowerdir=/etc]}\n" +
		"      mkdir: [var/cache]\n"
	s, err := Parse("r.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("relative destinations must be accepted: %v", err)
	}
	var got []string
	for _, w := range s.Warnings() {
		got = append(got, w.Error())
	}
	want := []string{
		`r.yml:5:55: services[0].mounts[0].destination: destination "writeable-host-etc" is relative; it is resolved against the container's root, as "/writeable-host-etc"`,
		`r.yml:6:13: services[0].binds[0]: destination "logs" is relative; it is resolved against the container's root, as "/logs"`,
		`r.yml:7:17: services[0].binds.add[0]: destination "./run/../x" is relative; it is resolved against the container's root, as "/x"`,
		`r.yml:8:13: services[0].tmpfs[0]: destination "scratch" is relative; it is resolved against the container's root, as "/scratch"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
	for in, want := range map[string]string{"/a/../b": "/a/../b", "a": "/a", "./a/": "/a", "../../a": "/a", "a/../..": "/"} {
		if got := ContainerPath(in); got != want {
			t.Errorf("ContainerPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMergeThreeFiles(t *testing.T) {
	files := []string{"testdata/merge/base.yml", "testdata/merge/services.yml", "testdata/merge/override.yml"}
	res, err := Load(files...)
	if err != nil {
		t.Fatal(err)
	}
	s := res.System
	k := s.Kernel
	if k.Image != "kiln/kernel:6.6.71" || k.Cmdline != "console=ttyS0" || *k.Tar != "kernel.tar" || k.UCode != "intel-ucode.cpio" {
		t.Errorf("kernel = %+v", k)
	}
	if got, want := k.FieldPos("image"), (Position{"testdata/merge/override.yml", 2, 10}); got != want {
		t.Errorf("kernel image position = %v, want %v", got, want)
	}
	if got, want := k.FieldPos("cmdline"), (Position{"testdata/merge/base.yml", 3, 12}); got != want {
		t.Errorf("kernel cmdline position = %v, want %v", got, want)
	}
	if want := []string{"kiln/init:v0.4.0", "kiln/runc:v1.5.2", "kiln/containerd:v2.4.2"}; !slices.Equal(s.Init, want) {
		t.Errorf("init = %v", s.Init)
	}
	if got, want := s.InitPos(2), (Position{"testdata/merge/services.yml", 3, 5}); got != want {
		t.Errorf("init[2] position = %v, want %v", got, want)
	}
	var names []string
	for _, l := range [][]*Image{s.Onboot, s.Onshutdown, s.Services} {
		for _, img := range l {
			names = append(names, img.Name+"@"+img.Pos.String())
		}
	}
	want := []string{
		"sysctl@testdata/merge/base.yml:8:5",
		"sync@testdata/merge/override.yml:5:5",
		"getty@testdata/merge/base.yml:11:5",
		"sshd@testdata/merge/services.yml:5:5",
		"ntpd@testdata/merge/services.yml:7:5",
	}
	if !slices.Equal(names, want) {
		t.Errorf("containers:\n got %q\nwant %q", names, want)
	}
	if len(s.Files) != 2 || *s.Files[0].Contents != "base" || *s.Files[1].Contents != "override" {
		t.Errorf("files not appended in order")
	}
	if len(s.Volumes) != 1 || s.Volumes[0].Name != "cache" {
		t.Errorf("volumes = %v", s.Volumes)
	}
	checkGolden(t, "merged.yml", encode(t, s))

	// A service name repeated in a later file is an error located in that file, naming the
	// earlier entry.
	dup := filepath.Join(t.TempDir(), "dup.yml")
	if err := os.WriteFile(dup, []byte("services:\n  - name: getty\n    image: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(files[0], dup)
	got := errorStrings(t, err)
	wantErr := []string{dup + `:2:11: services[0].name: duplicate service name "getty"; first used by services[0].name at testdata/merge/base.yml:11:11`}
	if !slices.Equal(got, wantErr) {
		t.Errorf("errors:\n got %q\nwant %q", got, wantErr)
	}

	// Merge does not modify its arguments.
	a, _ := Parse("a.yml", []byte("kernel:\n  image: a\ninit: [x]\n"))
	b, _ := Parse("b.yml", []byte("kernel:\n  image: b\ninit: [y]\n"))
	m := Merge(a, b)
	if a.Kernel.Image != "a" || len(a.Init) != 1 || m.Kernel.Image != "b" || len(m.Init) != 2 {
		t.Errorf("Merge modified its argument or merged wrongly: a=%+v m=%+v", a.Kernel, m.Kernel)
	}
}

func TestLoadErrorsFromSeveralFiles(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yml")
	b := filepath.Join(dir, "b.yml")
	os.WriteFile(a, []byte("init: [1]\n"), 0o644)
	os.WriteFile(b, []byte("bogus: 1\n"), 0o644)
	_, err := Load(b, a)
	got := errorStrings(t, err)
	want := []string{
		b + `:1:1: unknown key "bogus"; expected one of kernel, init, onboot, onshutdown, services, files, volumes, trust`,
		a + `:1:8: init[0]: expected a string, got an integer (quote it: "1")`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n got %q\nwant %q", got, want)
	}
	if _, err := Load(filepath.Join(dir, "missing.yml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load(); err == nil {
		t.Errorf("Load() with no files must fail")
	}
}

func TestExpandPkgs(t *testing.T) {
	res, err := Load("testdata/merge/base.yml", "testdata/merge/services.yml", "testdata/volumes.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := res.System
	s.Kernel.Image = "@pkg:kernel/amd64" // written (last) in testdata/volumes.yml
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	var calls []string
	resolve := func(dir string) (string, error) {
		calls = append(calls, dir)
		if strings.HasSuffix(dir, "data") {
			return "", errors.New("no build.yml")
		}
		return "kiln/" + filepath.Base(dir) + ":0123abcd", nil
	}
	err = s.ExpandPkgs(resolve, "")
	got := errorStrings(t, err)
	want := []string{`testdata/volumes.yml:32:12: volumes[2].image: resolve @pkg:../services/data: no build.yml`}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n got %q\nwant %q", got, want)
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Err == nil || ce.Err.Error() != "no build.yml" {
		t.Errorf("resolver error not wrapped: %#v", ce)
	}
	wantCalls := []string{abs("testdata/kernel/amd64"), abs("services/sshd"), abs("services/data")}
	if !slices.Equal(calls, wantCalls) {
		t.Errorf("resolver calls:\n got %q\nwant %q", calls, wantCalls)
	}
	if s.Kernel.Image != "kiln/amd64:0123abcd" || s.Services[1].Image != "kiln/sshd:0123abcd" {
		t.Errorf("not replaced: kernel %q, sshd %q", s.Kernel.Image, s.Services[1].Image)
	}
	if s.Volumes[3].Image != "@pkg:../services/data" {
		t.Errorf("a failed reference must be left as is: %q", s.Volumes[3].Image)
	}

	// A reference without a file is relative to baseDir.
	s2, _ := Parse("-", []byte("init: [\"@pkg:pkg/init\"]\n"))
	var dir string
	if err := s2.ExpandPkgs(func(d string) (string, error) { dir = d; return "x", nil }, "/src/kiln"); err != nil {
		t.Fatal(err)
	}
	if dir != "/src/kiln/pkg/init" || s2.Init[0] != "x" {
		t.Errorf("stdin reference: dir %q, init %q", dir, s2.Init[0])
	}
}

func TestParseImageLabel(t *testing.T) {
	img, err := ParseImageLabel("label", []byte(`{"capabilities":["CAP_NET_ADMIN"],"binds":["/run:/run"],"net":"host","resources":{"memory":{"limit":1000}},"uid":"sshd"}`))
	if err != nil {
		t.Fatal(err)
	}
	if (*img.Capabilities)[0] != "CAP_NET_ADMIN" || img.Net != "host" || *img.Resources.Memory.Limit != 1000 || img.UID.Name != "sshd" {
		t.Errorf("label = %+v", img)
	}
	tests := []struct {
		src  string
		want []string
	}{
		{`{"name":"x","image":"y"}`, []string{
			`label:1:9: name: cannot be set in the org.mobyproject.config label`,
			`label:1:21: image: cannot be set in the org.mobyproject.config label`,
		}},
		{`{"capabilities":["CAP_FOO"],"net":1}`, []string{`label:1:35: net: expected a string, got an integer (quote it: "1")`}},
		{`{"capabilities":["cap_net_admin"]}`, []string{`label:1:18: capabilities[0]: unknown capability "cap_net_admin"; did you mean "CAP_NET_ADMIN"?`}},
		{`["x"]`, []string{`label:1:1: expected a mapping (a JSON object), got a list`}},
		{`{"bogus":true}`, []string{`label:1:2: unknown key "bogus"; expected one of name, image, capabilities, capabilities.add, ambient, mounts, binds, binds.add, tmpfs, devices, command, env, cwd, net, pid, ipc, uts, userns, hostname, readonly, maskedPaths, readonlyPaths, uid, gid, additionalGids, noNewPrivileges, oomScoreAdj, rootfsPropagation, cgroupsPath, resources, sysctl, rlimits, uidMappings, gidMappings, annotations, runtime`}},
	}
	for _, tt := range tests {
		_, err := ParseImageLabel("label", []byte(tt.src))
		if got := errorStrings(t, err); !slices.Equal(got, tt.want) {
			t.Errorf("ParseImageLabel(%s):\n got %q\nwant %q", tt.src, got, tt.want)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    *Error
		want string
	}{
		{&Error{File: "f.yml", Line: 3, Column: 5, Path: "kernel.image", Msg: "required"}, "f.yml:3:5: kernel.image: required"},
		{&Error{File: "f.yml", Line: 3, Msg: "bad"}, "f.yml:3: bad"},
		{&Error{Path: "p", Msg: "m"}, "p: m"},
		{&Error{Msg: "m", Err: errors.New("cause")}, "m: cause"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// TestFileRulesAgree: kiln validate and kiln build apply one rule set to the mode, uid and gid
// of files entries. Validate must reject exactly the inputs the build-side functions
// (ParseMode, FileID, which assemble's writeFile calls) reject, with the same message, and the
// build must get the value validate accepted. LinuxKit reads modes as plain octal digits and
// resolves names only to root or a container of the system; so does kiln.
func TestFileRulesAgree(t *testing.T) {
	tests := []struct {
		field, value string // the YAML as written
		want         uint32 // the value the build writes, when valid
		err          string // the message both give, when invalid
	}{
		{"mode", `"0644"`, 0o644, ""},
		{"mode", `"755"`, 0o755, ""},
		{"mode", `"04755"`, 0o4755, ""},
		{"mode", `"0"`, 0, ""},
		{"mode", `"0o644"`, 0, `invalid mode "0o644"; expected an octal number such as "0644"`},
		{"mode", `"0x1ff"`, 0, `invalid mode "0x1ff"; expected an octal number such as "0644"`},
		{"mode", `"+644"`, 0, `invalid mode "+644"; expected an octal number such as "0644"`},
		{"mode", `"0999"`, 0, `invalid mode "0999"; expected an octal number such as "0644"`},
		{"mode", `"010000"`, 0, `invalid mode "010000"; expected an octal number such as "0644"`},
		{"mode", `rw-r--r--`, 0, `invalid mode "rw-r--r--"; expected an octal number such as "0644"`},
		{"uid", `0`, 0, ""},
		{"uid", `1000`, 1000, ""},
		{"uid", `root`, 0, ""},
		{"gid", `root`, 0, ""},
		{"uid", `"42"`, 42, ""},
		{"uid", `sshd`, 100, ""},  // the first container of the system (LinuxKit's ids)
		{"gid", `getty`, 101, ""}, // the second
		{"uid", `nobody`, 0, `unknown user or group "nobody": a files entry has no image to look names up in; use a number, "root" or the name of a container of this system`},
		{"gid", `wheel`, 0, `unknown user or group "wheel": a files entry has no image to look names up in; use a number, "root" or the name of a container of this system`},
		{"uid", `"a:b"`, 0, `invalid user or group name "a:b": /etc/passwd and /etc/group names have no ':', white space or control characters`},
		{"gid", `"a b"`, 0, `invalid user or group name "a b": /etc/passwd and /etc/group names have no ':', white space or control characters`},
	}
	for _, tt := range tests {
		t.Run(tt.field+"="+tt.value, func(t *testing.T) {
			src := "onboot:\n  - name: sshd\n    image: s\nservices:\n  - name: getty\n    image: g\n" +
				"files:\n  - path: etc/x\n    contents: x\n    " + tt.field + ": " + tt.value + "\n"
			s, err := Parse("f.yml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			var validateErr []string
			for _, e := range errorStrings(t, s.Validate()) {
				validateErr = append(validateErr, strings.TrimPrefix(e, "f.yml:10:"+strconv.Itoa(7+len(tt.field))+": files[0]."+tt.field+": "))
			}
			f := s.Files[0]
			var got uint32
			var buildErr error
			switch tt.field {
			case "mode":
				got, buildErr = ParseMode(f.Mode)
			case "uid":
				got, buildErr = FileID(f.UID, s.ContainerIDs())
			case "gid":
				got, buildErr = FileID(f.GID, s.ContainerIDs())
			}
			var want []string
			if tt.err != "" {
				want = []string{tt.err}
			}
			if !slices.Equal(validateErr, want) {
				t.Errorf("validate: got %q, want %q", validateErr, want)
			}
			switch {
			case tt.err == "" && (buildErr != nil || got != tt.want):
				t.Errorf("build: got %o, %v; want %o", got, buildErr, tt.want)
			case tt.err != "" && (buildErr == nil || buildErr.Error() != tt.err):
				t.Errorf("build: got %v, want %q", buildErr, tt.err)
			}
		})
	}
}

func TestParseHelpers(t *testing.T) {
	name, soft, hard, err := ParseRlimit(" nofile , 1024 , unlimited")
	if err != nil || name != "RLIMIT_NOFILE" || soft != 1024 || hard != Unlimited {
		t.Errorf("ParseRlimit = %q %d %d %v", name, soft, hard, err)
	}
	src, dst, opts, err := ParseBind("/var:/var:rshared,rbind")
	if err != nil || src != "/var" || dst != "/var" || !slices.Equal(opts, []string{"rshared", "rbind"}) {
		t.Errorf("ParseBind = %q %q %q %v", src, dst, opts, err)
	}
	if _, _, opts, _ := ParseBind("/a:/b"); opts != nil {
		t.Errorf("ParseBind without options must return nil options, got %q", opts)
	}
	dst, opts, err = ParseTmpfs("/tmp:size=1m")
	if err != nil || dst != "/tmp" || !slices.Equal(opts, []string{"size=1m"}) {
		t.Errorf("ParseTmpfs = %q %q %v", dst, opts, err)
	}
	for in, want := range map[string]uint32{"0644": 0o644, "755": 0o755, "01777": 0o1777, "0": 0} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %o, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "8", "0x1", "17777", "0o644", "+644", "-1", "6_44", " 644"} {
		if _, err := ParseMode(in); err == nil {
			t.Errorf("ParseMode(%q) must fail", in)
		}
	}
	if n := len(Capabilities()); n != 41 {
		t.Errorf("%d capabilities, want 41", n)
	}
}

// TestEncodeTrickyStrings checks that strings YAML would read as something else, and
// multi-line texts yaml.v3 cannot always write as blocks, come back unchanged.
func TestEncodeTrickyStrings(t *testing.T) {
	texts := []string{
		"\n", "\n\n", " \n ", " lead\nx", "trail \n", "a\n\tb\n", "x\r\ny", "a\n\n\n", "\nx\n",
		"\n  x", "x\n ", "a\n  b\n", "# c\n", "a: b\n", "\"q\"\n", "0644", "~", "null", "yes",
		"true", "1e3", "0x10", "*a", "&b", "!t", "%x", "@pkg:./x", "- a", "{a", "[a", "", " ",
	}
	for _, c := range texts {
		s := &System{Files: []*File{{Path: "x", Contents: &c}}, Init: []string{c}}
		var buf bytes.Buffer
		if err := s.Encode(&buf); err != nil {
			t.Fatal(err)
		}
		s2, err := Parse("x.yml", buf.Bytes())
		if err != nil {
			t.Errorf("%q: %v\n%s", c, err, buf.Bytes())
			continue
		}
		if *s2.Files[0].Contents != c || s2.Init[0] != c {
			t.Errorf("%q came back as %q / %q:\n%s", c, *s2.Files[0].Contents, s2.Init[0], buf.Bytes())
		}
	}
}

func TestClone(t *testing.T) {
	res, err := Load("testdata/sshd.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := res.System
	before := encode(t, s)
	c := s.Clone()
	c.Kernel.Image = "changed"
	c.Init[0] = "changed"
	c.Services[2].Image = "changed"
	(*c.Services[2].Binds)[0] = "/x:/x"
	(*c.Onboot[0].Sysctl)["kernel.panic"] = "0"
	*c.Services[2].UID = IDValue{Name: "changed"}
	*c.Files[0].Contents = "changed"
	if after := encode(t, s); !bytes.Equal(before, after) {
		t.Errorf("changing the clone changed the original:\n%s", after)
	}
	if c.Services[2].FieldPos("binds[1]") != s.Services[2].FieldPos("binds[1]") || c.InitPos(1) != s.InitPos(1) {
		t.Errorf("positions not kept by Clone")
	}
	if got := s.Files[1].BaseDir(); got != "testdata" {
		t.Errorf("BaseDir = %q", got)
	}
	if got := (&File{}).BaseDir(); got != "" {
		t.Errorf("BaseDir of a File built in code = %q", got)
	}
}
