package spec

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/kiln-os/kiln/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

func ptr[T any](v T) *T { return &v }

func name(s string) config.IDValue { return config.IDValue{Name: s} }
func num(n uint32) config.IDValue  { return config.IDValue{ID: &n} }

// testImage is an image config like a typical package's.
func testImage() v1.ConfigFile {
	return v1.ConfigFile{Config: v1.Config{
		Entrypoint: []string{"/bin/app"},
		Cmd:        []string{"--serve"},
		Env:        []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
	}}
}

// testIDs is an image's /etc/passwd and /etc/group.
func testIDs(t *testing.T) IDLookup {
	t.Helper()
	pw, err := parsePasswd(strings.NewReader("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/sbin/nologin\nsshd:x:22:22::/var/empty:/sbin/nologin\n"))
	if err != nil {
		t.Fatal(err)
	}
	gr, err := parseGroup(strings.NewReader("root:x:0:\nnogroup:x:65534:\nsshd:x:22:\nwheel:x:10:root\n"))
	if err != nil {
		t.Fatal(err)
	}
	return Lookup{Passwd: pw, Groups: gr}
}

func checkGolden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", file)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the generated file:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestGolden generates config.json (and runtime.json where the case sets runtime) for one field
// or a small group of fields at a time.
func TestGolden(t *testing.T) {
	cases := []struct {
		name  string
		yaml  config.Image
		label *config.Image
		image *v1.ConfigFile
	}{
		{name: "defaults"},
		{name: "capabilities", yaml: config.Image{Capabilities: &[]string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"}}},
		{name: "capabilities_all", yaml: config.Image{Capabilities: &[]string{"ALL"}}},
		{name: "capabilities_none", yaml: config.Image{Capabilities: &[]string{"none"}}, label: &config.Image{Capabilities: &[]string{"CAP_KILL"}}},
		{name: "capabilities_add", yaml: config.Image{CapabilitiesAdd: &[]string{"CAP_NET_RAW", "CAP_CHOWN"}}, label: &config.Image{Capabilities: &[]string{"CAP_CHOWN", "CAP_SETUID"}}},
		{name: "ambient", yaml: config.Image{Capabilities: &[]string{"CAP_SETUID"}, Ambient: &[]string{"CAP_NET_BIND_SERVICE"}}},
		{name: "mounts", yaml: config.Image{Mounts: &[]specs.Mount{
			{Destination: "/dev", Options: []string{"nosuid", "mode=700"}},
			{Type: "cgroup", Options: []string{"rw"}},
			{Source: "mqueue"},
			{Type: "overlay", Source: "overlay", Destination: "/merged", Options: []string{"lowerdir=/a"}},
		}}},
		// LinuxKit accepts relative destinations (examples/hostmount-writeable-overlay.yml):
		// config.json gets them resolved against the container's root, as runc would; a
		// relative runtime.mounts destination stays relative (init takes it from the rootfs).
		{name: "mounts_relative", yaml: config.Image{
			Mounts:  &[]specs.Mount{{Type: "overlay", Source: "overlay", Destination: "writeable-host-etc", Options: []string{"rw", "lowerdir=/etc"}}},
			Binds:   &[]string{"/var/log:logs/../var/log:ro"},
			Tmpfs:   &[]string{"scratch:size=1m"},
			Runtime: &config.Runtime{Mounts: &[]specs.Mount{{Type: "overlay", Source: "overlay", Destination: "writeable-host-etc", Options: []string{"lowerdir=/etc"}}}, Mkdir: &[]string{"var/cache"}},
		}},
		{name: "binds", yaml: config.Image{Binds: &[]string{"/var:/var", "/run:/run:ro,rslave", "/var/lib:/data:rshared,rbind"}}},
		{name: "binds_add", yaml: config.Image{BindsAdd: &[]string{"/tmp:/tmp", "/etc/resolv.conf:/etc/resolv.conf"}}, label: &config.Image{Binds: &[]string{"/etc/resolv.conf:/etc/resolv.conf", "/dev:/dev"}}},
		{name: "tmpfs", yaml: config.Image{Tmpfs: &[]string{"/run", "/tmp:size=10m,mode=1777", "/dev:mode=700"}}},
		{name: "devices", yaml: config.Image{Devices: &[]config.Device{
			{Path: "/dev/console", Type: "c", Major: 5, Minor: 1, Mode: "0666"},
			{Path: "all", Type: "b"},
		}}},
		{name: "command", yaml: config.Image{Command: &[]string{"/bin/sh", "-c", "echo hi"}}},
		{name: "env", yaml: config.Image{Env: &[]string{"A=1", "B=2"}}},
		{name: "cwd", yaml: config.Image{Cwd: "/srv"}},
		{name: "namespaces_new", yaml: config.Image{Net: "new", Ipc: "new", Uts: "new", Pid: "host", Userns: "new"}},
		{name: "namespaces_path", yaml: config.Image{Net: "/run/netns/wg", Pid: "/proc/1/ns/pid", Uts: "/run/ns/uts"}},
		{name: "net_none", yaml: config.Image{Net: "none"}},
		{name: "hostname", yaml: config.Image{Hostname: "box", Uts: "new"}},
		{name: "readonly", yaml: config.Image{Readonly: ptr(true)}},
		{name: "masked_readonly_paths", yaml: config.Image{MaskedPaths: &[]string{"/proc/kcore"}, ReadonlyPaths: &[]string{"/proc/sys"}}},
		{name: "uid_gid_numbers", yaml: config.Image{UID: ptr(num(1000)), GID: ptr(num(100))}},
		{name: "uid_gid_names", yaml: config.Image{UID: ptr(name("sshd")), GID: ptr(name("nogroup"))}},
		{name: "additional_gids", yaml: config.Image{AdditionalGids: &[]config.IDValue{num(5), name("wheel"), name("root")}}},
		{name: "image_user", image: &v1.ConfigFile{Config: v1.Config{Cmd: []string{"run"}, User: "nobody"}}},
		{name: "image_user_group", image: &v1.ConfigFile{Config: v1.Config{Cmd: []string{"run"}, User: "1000:wheel"}}},
		{name: "no_new_privileges", yaml: config.Image{NoNewPrivileges: ptr(true)}},
		{name: "oom_score_adj", yaml: config.Image{OOMScoreAdj: ptr(-999)}},
		{name: "rootfs_propagation", yaml: config.Image{RootfsPropagation: ptr("shared")}},
		{name: "cgroups_path", yaml: config.Image{CgroupsPath: ptr("podruntime/kubelet")}},
		{name: "resources", yaml: config.Image{
			Resources: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20))}, Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			Devices:   &[]config.Device{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, Mode: "0600"}},
		}},
		{name: "sysctl", yaml: config.Image{Sysctl: &map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "4096", "net.core.somaxconn": "1024"}}},
		{name: "rlimits", yaml: config.Image{Rlimits: &[]string{"nofile,1024,4096", "RLIMIT_CORE, unlimited, Unlimited", "Nproc,10,20"}}},
		{name: "id_mappings", yaml: config.Image{Userns: "new",
			UIDMappings: &[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
			GIDMappings: &[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}}},
		{name: "annotations", yaml: config.Image{Annotations: &map[string]string{"org.example.b": "2", "org.example.a": "1"}}},
		{name: "runtime", yaml: config.Image{Runtime: &config.Runtime{
			Cgroups:    &[]string{"podruntime"},
			Mkdir:      &[]string{"/var/lib/app"},
			Interfaces: &[]config.Interface{{Name: "wg0", Add: "wireguard", CreateInRoot: true}, {Name: "eth1", Peer: "veth1"}},
			BindNS:     config.BindNS{Net: ptr("/run/netns/wg")},
		}}, label: &config.Image{Runtime: &config.Runtime{
			Mounts:    &[]specs.Mount{{Source: "/dev/sda1", Destination: "/var/lib/app", Type: "ext4"}},
			Namespace: ptr("services.linuxkit"),
			Cgroups:   &[]string{"ignored-because-yaml-sets-cgroups"},
		}}},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if seen[c.name] {
				t.Fatalf("duplicate case %s", c.name)
			}
			seen[c.name] = true
			img := testImage()
			if c.image != nil {
				img = *c.image
			}
			in := Input{Name: c.name, YAML: &c.yaml, Label: c.label, Image: img, IDs: testIDs(t)}
			s, rt, err := Generate(in)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, c.name+".json", b)
			if c.yaml.Runtime != nil {
				rb, err := MarshalRuntime(rt)
				if err != nil {
					t.Fatal(err)
				}
				checkGolden(t, c.name+".runtime.json", rb)
			}
		})
	}
}

// TestPrecedence checks YAML over label over image config for the fields all three layers (or
// the YAML and label) can set.
func TestPrecedence(t *testing.T) {
	type layers struct {
		yaml, label *config.Image
		image       v1.Config
	}
	cases := []struct {
		name  string
		in    layers
		check func(*specs.Spec) any
		want  any
	}{
		{"command from image", layers{image: v1.Config{Entrypoint: []string{"/e"}, Cmd: []string{"c"}}},
			args, []string{"/e", "c"}},
		{"command from label", layers{label: &config.Image{Command: &[]string{"/l"}}, image: v1.Config{Entrypoint: []string{"/e"}}},
			args, []string{"/l"}},
		{"command from yaml", layers{yaml: &config.Image{Command: &[]string{"/y"}}, label: &config.Image{Command: &[]string{"/l"}}, image: v1.Config{Cmd: []string{"c"}}},
			args, []string{"/y"}},
		{"env from image", layers{image: v1.Config{Cmd: []string{"c"}, Env: []string{"I=1"}}},
			env, []string{"I=1"}},
		{"env from label replaces image", layers{label: &config.Image{Env: &[]string{"L=1"}}, image: v1.Config{Cmd: []string{"c"}, Env: []string{"I=1"}}},
			env, []string{"L=1"}},
		{"env from yaml replaces all", layers{yaml: &config.Image{Env: &[]string{"Y=1"}}, label: &config.Image{Env: &[]string{"L=1"}}, image: v1.Config{Cmd: []string{"c"}, Env: []string{"I=1"}}},
			env, []string{"Y=1"}},
		{"empty yaml env clears", layers{yaml: &config.Image{Env: &[]string{}}, image: v1.Config{Cmd: []string{"c"}, Env: []string{"I=1"}}},
			env, []string{}},
		{"cwd from image", layers{image: v1.Config{Cmd: []string{"c"}, WorkingDir: "/i"}}, cwd, "/i"},
		{"cwd from label", layers{label: &config.Image{Cwd: "/l"}, image: v1.Config{Cmd: []string{"c"}, WorkingDir: "/i"}}, cwd, "/l"},
		{"cwd from yaml", layers{yaml: &config.Image{Cwd: "/y"}, label: &config.Image{Cwd: "/l"}, image: v1.Config{Cmd: []string{"c"}}}, cwd, "/y"},
		{"caps from label", layers{label: &config.Image{Capabilities: &[]string{"CAP_KILL"}}, image: v1.Config{Cmd: []string{"c"}}},
			effective, []string{"CAP_KILL"}},
		{"caps from yaml replace label", layers{yaml: &config.Image{Capabilities: &[]string{"CAP_CHOWN"}, CapabilitiesAdd: &[]string{"CAP_BPF"}}, label: &config.Image{Capabilities: &[]string{"CAP_KILL"}}, image: v1.Config{Cmd: []string{"c"}}},
			effective, []string{"CAP_CHOWN"}},
		{"caps.add extends label", layers{yaml: &config.Image{CapabilitiesAdd: &[]string{"CAP_CHOWN"}}, label: &config.Image{Capabilities: &[]string{"CAP_KILL"}}, image: v1.Config{Cmd: []string{"c"}}},
			effective, []string{"CAP_KILL", "CAP_CHOWN"}},
		{"label caps.add extends label caps", layers{label: &config.Image{Capabilities: &[]string{"CAP_KILL"}, CapabilitiesAdd: &[]string{"CAP_BPF"}}, image: v1.Config{Cmd: []string{"c"}}},
			effective, []string{"CAP_KILL", "CAP_BPF"}},
		{"binds from label", layers{label: &config.Image{Binds: &[]string{"/l:/l"}}, image: v1.Config{Cmd: []string{"c"}}},
			bindDests, []string{"/l"}},
		{"binds from yaml replace label", layers{yaml: &config.Image{Binds: &[]string{"/y:/y"}, BindsAdd: &[]string{"/a:/a"}}, label: &config.Image{Binds: &[]string{"/l:/l"}}, image: v1.Config{Cmd: []string{"c"}}},
			bindDests, []string{"/y"}},
		{"binds.add extends label", layers{yaml: &config.Image{BindsAdd: &[]string{"/a:/a"}}, label: &config.Image{Binds: &[]string{"/l:/l"}}, image: v1.Config{Cmd: []string{"c"}}},
			bindDests, []string{"/a", "/l"}},
		{"bind replaces default mount", layers{yaml: &config.Image{Binds: &[]string{"/sys:/sys"}}, image: v1.Config{Cmd: []string{"c"}}},
			func(s *specs.Spec) any { return mountAt(s, "/sys").Type }, "bind"},
		{"mount replaces bind", layers{yaml: &config.Image{Binds: &[]string{"/x:/x"}, Mounts: &[]specs.Mount{{Destination: "/x", Type: "tmpfs"}}}, image: v1.Config{Cmd: []string{"c"}}},
			func(s *specs.Spec) any { return mountAt(s, "/x").Type }, "tmpfs"},
		{"uid from image user", layers{image: v1.Config{Cmd: []string{"c"}, User: "sshd"}}, user, [2]uint32{22, 22}},
		{"uid from label", layers{label: &config.Image{UID: ptr(num(7))}, image: v1.Config{Cmd: []string{"c"}, User: "sshd"}}, user, [2]uint32{7, 0}},
		{"uid from yaml", layers{yaml: &config.Image{UID: ptr(name("nobody"))}, label: &config.Image{UID: ptr(num(7)), GID: ptr(num(8))}, image: v1.Config{Cmd: []string{"c"}, User: "sshd"}}, user, [2]uint32{65534, 8}},
		{"readonly from label", layers{label: &config.Image{Readonly: ptr(true)}, image: v1.Config{Cmd: []string{"c"}}}, func(s *specs.Spec) any { return s.Root.Readonly }, true},
		{"readonly false in yaml wins", layers{yaml: &config.Image{Readonly: ptr(false)}, label: &config.Image{Readonly: ptr(true)}, image: v1.Config{Cmd: []string{"c"}}}, func(s *specs.Spec) any { return s.Root.Readonly }, false},
		{"net from label", layers{label: &config.Image{Net: "new"}, image: v1.Config{Cmd: []string{"c"}}}, nsTypes, []string{"network", "pid", "mount", "cgroup"}},
		{"net host in yaml wins", layers{yaml: &config.Image{Net: "host"}, label: &config.Image{Net: "new"}, image: v1.Config{Cmd: []string{"c"}}}, nsTypes, []string{"pid", "mount", "cgroup"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _, err := Generate(Input{Name: "x", YAML: c.in.yaml, Label: c.in.label, Image: v1.ConfigFile{Config: c.in.image}, IDs: testIDs(t)})
			if err != nil {
				t.Fatal(err)
			}
			got := c.check(s)
			if gs, ok := got.([]string); ok && gs == nil {
				got = []string{}
			}
			if !equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func args(s *specs.Spec) any      { return s.Process.Args }
func env(s *specs.Spec) any       { return s.Process.Env }
func cwd(s *specs.Spec) any       { return s.Process.Cwd }
func effective(s *specs.Spec) any { return s.Process.Capabilities.Effective }
func user(s *specs.Spec) any      { return [2]uint32{s.Process.User.UID, s.Process.User.GID} }
func nsTypes(s *specs.Spec) any {
	var out []string
	for _, n := range s.Linux.Namespaces {
		out = append(out, string(n.Type))
	}
	return out
}
func bindDests(s *specs.Spec) any {
	var out []string
	for _, m := range s.Mounts {
		if m.Type == "bind" {
			out = append(out, m.Destination)
		}
	}
	return out
}
func mountAt(s *specs.Spec, dest string) specs.Mount {
	for _, m := range s.Mounts {
		if m.Destination == dest {
			return m
		}
	}
	return specs.Mount{}
}

func equal(a, b any) bool {
	as, aok := a.([]string)
	bs, bok := b.([]string)
	if aok && bok {
		return slices.Equal(as, bs)
	}
	return a == b
}

// TestDeterministic checks that map-valued fields and repeated runs give identical bytes.
func TestDeterministic(t *testing.T) {
	build := func(keys []string) []byte {
		sysctl := map[string]string{}
		ann := map[string]string{}
		for _, k := range keys {
			sysctl["net."+k] = k
			ann["org."+k] = k
		}
		y := &config.Image{Sysctl: &sysctl, Annotations: &ann,
			Binds:        &[]string{"/b:/b", "/a:/a", "/c:/c"},
			Capabilities: &[]string{"CAP_SYS_ADMIN", "CAP_CHOWN"}, Ambient: &[]string{"CAP_BPF"}}
		s, _, err := Generate(Input{Name: "d", YAML: y, Image: testImage()})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var keys []string
	for i := range 64 {
		keys = append(keys, string(rune('a'+i%26))+strings.Repeat("x", i))
	}
	first := build(keys)
	for range 20 {
		slices.Reverse(keys)
		if got := build(keys); !bytes.Equal(got, first) {
			t.Fatalf("output changed between runs:\n%s\n%s", first, got)
		}
	}
	if !bytes.Contains(first, []byte(`"CAP_BPF",`)) || bytes.Index(first, []byte(`"/a"`)) > bytes.Index(first, []byte(`"/b"`)) {
		t.Errorf("bounding set or mounts not sorted:\n%s", first)
	}
}

// TestInputNotShared checks that the spec shares no memory with its input.
func TestInputNotShared(t *testing.T) {
	limit := int64(1)
	y := &config.Image{
		Resources: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}, Devices: make([]specs.LinuxDeviceCgroup, 0, 8)},
		Devices:   &[]config.Device{{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, Mode: "0666"}},
		Command:   &[]string{"a"},
		Mounts:    &[]specs.Mount{{Destination: "/m", Type: "tmpfs", Options: []string{"ro"}}},
	}
	s, _, err := Generate(Input{Name: "n", YAML: y})
	if err != nil {
		t.Fatal(err)
	}
	*s.Linux.Resources.Memory.Limit = 2
	s.Process.Args[0] = "b"
	mountAt(s, "/m").Options[0] = "rw"
	if limit != 1 || (*y.Command)[0] != "a" || (*y.Mounts)[0].Options[0] != "ro" || len(y.Resources.Devices) != 0 {
		t.Errorf("input changed through the spec: %+v", y)
	}
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name, field, text string
		yaml              config.Image
		label             *config.Image
		image             *v1.Config
		ids               IDLookup
	}{
		{name: "unknown uid name", field: "uid", text: `"ghost"`, yaml: config.Image{UID: ptr(name("ghost"))}},
		{name: "unknown gid name", field: "gid", text: `"ghost"`, yaml: config.Image{GID: ptr(name("ghost"))}},
		{name: "unknown additional gid", field: "additionalGids", text: `"ghost"`, yaml: config.Image{AdditionalGids: &[]config.IDValue{name("ghost")}}},
		{name: "uid name without passwd", field: "uid", text: `"sshd"`, yaml: config.Image{UID: ptr(name("sshd"))}, ids: Lookup{}},
		{name: "unknown image user", field: "image config User", text: `"ghost"`, image: &v1.Config{Cmd: []string{"c"}, User: "ghost"}},
		{name: "unknown image group", field: "image config User", text: `"ghost"`, image: &v1.Config{Cmd: []string{"c"}, User: "sshd:ghost"}},
		{name: "unknown capability", field: "capabilities", text: "CAP_NOPE", yaml: config.Image{Capabilities: &[]string{"CAP_NOPE"}}},
		{name: "lower-case capability", field: "capabilities", text: "cap_chown", yaml: config.Image{Capabilities: &[]string{"cap_chown"}}},
		{name: "all among others", field: "capabilities", text: "only entry", yaml: config.Image{CapabilitiesAdd: &[]string{"all"}}, label: &config.Image{Capabilities: &[]string{"CAP_KILL"}}},
		{name: "unknown ambient", field: "ambient", text: "CAP_NOPE", yaml: config.Image{Ambient: &[]string{"CAP_NOPE"}}},
		{name: "bind without dest", field: "binds", text: "/src", yaml: config.Image{Binds: &[]string{"/src"}}},
		{name: "bind too many colons", field: "binds", text: "a:b:c:d", yaml: config.Image{Binds: &[]string{"a:b:c:d"}}},
		{name: "tmpfs too many colons", field: "tmpfs", text: "/t:a:b", yaml: config.Image{Tmpfs: &[]string{"/t:a:b"}}},
		{name: "mount without type", field: "mounts", text: "no type", yaml: config.Image{Mounts: &[]specs.Mount{{Destination: "/x", Source: "/y"}}}},
		{name: "mount without destination", field: "mounts", text: "no destination", yaml: config.Image{Mounts: &[]specs.Mount{{Type: "tmpfs"}}}},
		{name: "device without mode", field: "devices", text: "/dev/console", yaml: config.Image{Devices: &[]config.Device{{Path: "/dev/console", Type: "c", Major: 5, Minor: 1}}}},
		{name: "device bad mode", field: "devices", text: "0999", yaml: config.Image{Devices: &[]config.Device{{Path: "/dev/x", Type: "c", Mode: "0999"}}}},
		{name: "rlimit short", field: "rlimits", text: "nofile,1", yaml: config.Image{Rlimits: &[]string{"nofile,1"}}},
		{name: "rlimit unknown", field: "rlimits", text: "RLIMIT_FOO", yaml: config.Image{Rlimits: &[]string{"foo,1,2"}}},
		{name: "rlimit not a number", field: "rlimits", text: "lots", yaml: config.Image{Rlimits: &[]string{"nofile,lots,2"}}},
		{name: "relative namespace path", field: "ipc", text: "none", yaml: config.Image{Ipc: "none"}},
		{name: "label sets name", field: "label", text: "name or image", label: &config.Image{Name: "x"}},
		{name: "no command", field: "command", text: "empty", image: &v1.Config{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := testImage()
			if c.image != nil {
				img.Config = *c.image
			}
			ids := c.ids
			if ids == nil {
				ids = testIDs(t)
			}
			_, _, err := Generate(Input{Name: "svc", YAML: &c.yaml, Label: c.label, Image: img, IDs: ids})
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a *FieldError", err)
			}
			if fe.Container != "svc" || !strings.Contains(fe.Field, c.field) {
				t.Errorf("error %q: container %q field %q, want svc and %s", err, fe.Container, fe.Field, c.field)
			}
			if !strings.Contains(err.Error(), c.text) || !strings.Contains(err.Error(), `"svc"`) {
				t.Errorf("error %q does not mention %q and the container", err, c.text)
			}
		})
	}
}

func TestUnknownNameIsNotFound(t *testing.T) {
	_, _, err := Generate(Input{Name: "svc", YAML: &config.Image{UID: ptr(name("ghost"))}, Image: testImage(), IDs: testIDs(t)})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v, want ErrNotFound in the chain", err)
	}
}

func TestMarshalRuntimeEmpty(t *testing.T) {
	_, rt, err := Generate(Input{Name: "e", Image: testImage()})
	if err != nil {
		t.Fatal(err)
	}
	a, err := MarshalRuntime(rt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := MarshalRuntime(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("empty runtime differs from nil runtime:\n%s\n%s", a, b)
	}
	checkGolden(t, "runtime_empty.runtime.json", a)
}

// TestValidateAgrees: for the container fields whose rule config shares with the spec (user and
// group names, device modes), a value validation rejects fails Generate with the same message,
// and a value it accepts generates, given an image that knows the name. Whether a name exists
// is only known from the image, so validation cannot reject "ghost"; Generate does.
func TestValidateAgrees(t *testing.T) {
	cases := []struct {
		field, value string
		err          string // the message both give; "" when both accept
	}{
		{"uid", "root", ""},
		{"uid", "1000", ""},
		{"uid", `"1000"`, ""},
		{"uid", "sshd", ""},
		{"gid", "wheel", ""},
		{"additionalGids", "[root, 10, nogroup]", ""},
		{"uid", `"a:b"`, `invalid user or group name "a:b": /etc/passwd and /etc/group names have no ':', white space or control characters`},
		{"gid", `"a b"`, `invalid user or group name "a b": /etc/passwd and /etc/group names have no ':', white space or control characters`},
		{"additionalGids", `["x\ty"]`, `invalid user or group name "x\ty": /etc/passwd and /etc/group names have no ':', white space or control characters`},
		{"devices", `[{path: /dev/x, type: c, major: 1, minor: 1, mode: "0666"}]`, ""},
		{"devices", `[{path: /dev/x, type: c, major: 1, minor: 1, mode: "0o666"}]`, `invalid mode "0o666"; expected an octal number such as "0644"`},
		{"devices", `[{path: /dev/x, type: c, major: 1, minor: 1, mode: "010000"}]`, `invalid mode "010000"; expected an octal number such as "0644"`},
	}
	for _, c := range cases {
		t.Run(c.field+"="+c.value, func(t *testing.T) {
			sys, err := config.Parse("a.yml", []byte("services:\n  - name: svc\n    image: x\n    "+c.field+": "+c.value+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			verr := sys.Validate()
			_, _, gerr := Generate(Input{Name: "svc", YAML: sys.Services[0], Image: testImage(), IDs: testIDs(t)})
			if c.err == "" {
				if verr != nil || gerr != nil {
					t.Fatalf("validate: %v; generate: %v; want both to accept", verr, gerr)
				}
				return
			}
			if verr == nil || !strings.HasSuffix(verr.Error(), ": "+c.err) {
				t.Errorf("validate: %v, want %q", verr, c.err)
			}
			if gerr == nil || !strings.HasSuffix(gerr.Error(), ": "+c.err) {
				t.Errorf("generate: %v, want %q", gerr, c.err)
			}
		})
	}
	// A well-formed name the image does not know passes validation and fails the build.
	sys, err := config.Parse("a.yml", []byte("services:\n  - name: svc\n    image: x\n    uid: ghost\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
	if _, _, err := Generate(Input{Name: "svc", YAML: sys.Services[0], Image: testImage(), IDs: testIDs(t)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("generate: %v, want ErrNotFound", err)
	}
}
