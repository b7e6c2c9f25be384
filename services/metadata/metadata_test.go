package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func quiet(t *testing.T) Env {
	return Env{Sys: t.TempDir(), Dev: t.TempDir(), Devices: []string{}, HTTPTimeout: 3 * time.Second,
		Log: func(f string, a ...any) { t.Logf(f, a...) }}
}

func TestParseParams(t *testing.T) {
	p, err := ParseParams(`panic=1 kiln.hostname=node-7 kiln.ssh="ssh-ed25519 AAAA one" kiln.ssh="ssh-rsa BBBB two" ` +
		`kiln.metadata=fw_cfg,http kiln.metadata.url=http://10.0.2.2:8080/seed console=ttyS0`)
	if err != nil {
		t.Fatal(err)
	}
	if p.Config.Hostname != "node-7" || !slices.Equal(p.Config.SSHKeys, []string{"ssh-ed25519 AAAA one", "ssh-rsa BBBB two"}) {
		t.Errorf("config %+v", p.Config)
	}
	if !slices.Equal(p.Sources, []string{"fw_cfg", "http"}) || p.URL != "http://10.0.2.2:8080/seed" {
		t.Errorf("sources %v, url %q", p.Sources, p.URL)
	}
	if p, _ := ParseParams("quiet"); !slices.Equal(p.Sources, DefaultSources) {
		t.Errorf("default sources %v", p.Sources)
	}
	if p, _ := ParseParams("kiln.metadata=none"); len(p.Sources) != 0 {
		t.Errorf("kiln.metadata=none: %v", p.Sources)
	}
	for line, want := range map[string]string{
		"kiln.metadata=cidata,floppy": `unknown source "floppy"`,
		"kiln.metadata.url=ftp://x/":  "want an http:// or https:// URL",
	} {
		if _, err := ParseParams(line); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", line, err, want)
		}
	}
}

func TestParseNoCloudAndOpenStack(t *testing.T) {
	c, err := parseNoCloud("cidata", []byte("instance-id: i-1\nlocal-hostname: alpha\npublic-keys:\n  zz: ssh-ed25519 Z\n  aa:\n    - ssh-ed25519 A1\n    - ssh-ed25519 A2\n"), []byte("#cloud-config\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.InstanceID != "i-1" || c.Hostname != "alpha" || string(c.UserData) != "#cloud-config\n" ||
		!slices.Equal(c.SSHKeys, []string{"ssh-ed25519 A1", "ssh-ed25519 A2", "ssh-ed25519 Z"}) {
		t.Errorf("%+v", c)
	}
	if c, err := parseNoCloud("cidata", []byte("hostname: beta\npublic-keys: |\n  ssh-ed25519 X\n  # old\n  ssh-ed25519 Y\n"), nil); err != nil ||
		c.Hostname != "beta" || !slices.Equal(c.SSHKeys, []string{"ssh-ed25519 X", "ssh-ed25519 Y"}) || c.UserData != nil {
		t.Errorf("%+v, %v", c, err)
	}
	if _, err := parseNoCloud("fw_cfg", []byte("instance-id: [unclosed\n"), nil); err == nil || !strings.Contains(err.Error(), "fw_cfg: meta-data") {
		t.Errorf("bad YAML: %v", err)
	}
	o, err := parseOpenStack([]byte(`{"uuid":"u-9","hostname":"gamma.novalocal","public_keys":{"b":"ssh-rsa B","a":"ssh-rsa A"}}`), []byte("data"))
	if err != nil || o.InstanceID != "u-9" || o.Hostname != "gamma.novalocal" || !slices.Equal(o.SSHKeys, []string{"ssh-rsa A", "ssh-rsa B"}) {
		t.Errorf("%+v, %v", o, err)
	}
	if _, err := parseOpenStack([]byte(`{"uuid":`), nil); err == nil || !strings.Contains(err.Error(), "meta_data.json") {
		t.Errorf("bad JSON: %v", err)
	}
}

// A field comes from the first source that sets it; provider names the sources that gave one.
func TestMerge(t *testing.T) {
	c := &Config{}
	c.Merge(&Config{Provider: "cmdline", Hostname: "from-cmdline"})
	c.Merge(&Config{Provider: "cidata", Hostname: "from-drive", SSHKeys: []string{"k"}})
	c.Merge(&Config{Provider: "fw_cfg", Hostname: "from-fwcfg"})
	if c.Hostname != "from-cmdline" || !slices.Equal(c.SSHKeys, []string{"k"}) || c.Provider != "cmdline,cidata" {
		t.Errorf("%+v", c)
	}
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		got[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Write lays /run/config out as LinuxKit does, expands a JSON tree of user data, replaces an
// earlier folder, and reports (without writing it) a tree that breaks the rules.
func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "config")
	if err := os.MkdirAll(filepath.Join(dir, "stale"), 0o755); err != nil {
		t.Fatal(err)
	}
	user := `{"etc": {"entries": {"motd": {"content": "hi\n"}, "secret": {"perm": "0600", "content": "s"}}},
		"flag": {"perm": "0444", "content": ""}}`
	warns, err := Write(dir, &Config{Provider: "cidata", Hostname: "alpha", InstanceID: "i-1",
		SSHKeys: []string{"ssh-ed25519 A", "ssh-ed25519 B"}, UserData: []byte(user)})
	if err != nil || len(warns) != 0 {
		t.Fatal(err, warns)
	}
	want := map[string]string{
		"provider":            "-rw-r--r-- cidata\n",
		"hostname":            "-rw-r--r-- alpha\n",
		"instance_id":         "-rw-r--r-- i-1\n",
		"userdata":            "-rw------- " + user,
		"ssh":                 "drwx------",
		"ssh/authorized_keys": "-rw------- ssh-ed25519 A\nssh-ed25519 B\n",
		"etc":                 "drwxr-xr-x",
		"etc/motd":            "-rw-r--r-- hi\n",
		"etc/secret":          "-rw------- s",
		"flag":                "-r--r--r-- ",
	}
	got := readTree(t, dir)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("files %v, want %d", got, len(want))
	}
	for userData, msg := range map[string]string{
		`{"a": {"content": "x", "entries": {}}}`:                 "/a: has both content and entries",
		`{"a": {"perm": "0999", "content": "x"}}`:                `/a: perm "0999" is not an octal mode`,
		`{"hostname": {"content": "x"}}`:                         "/hostname: kiln writes that name itself",
		`{"d": {"entries": {"..": {"content": "x"}}}}`:           "/d/..: not a file name",
		`{"` + strings.Repeat("n", 256) + `": {"content": "x"}}`: "not a file name",
		`{"a": {"mode": "0644"}}`:                                "not a tree",
	} {
		warns, err := Write(dir, &Config{Provider: "http", UserData: []byte(userData)})
		if err != nil {
			t.Fatal(err)
		}
		if len(warns) != 1 || !strings.Contains(warns[0], msg) {
			t.Errorf("user data %s: warnings %q, want %q", userData, warns, msg)
		}
		if got := readTree(t, dir); len(got) != 2 || got["userdata"] != "-rw------- "+userData {
			t.Errorf("user data %s: wrote %v, want provider and userdata only", userData, got)
		}
	}
	// Plain user data (a cloud-config, a script) is only userdata.
	if warns, err := Write(dir, &Config{UserData: []byte("#!/bin/sh\n")}); err != nil || len(warns) != 0 {
		t.Fatal(err, warns)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("Write left %d entries beside the folder: %v", len(entries), entries)
	}
}

// fw_cfg, through a stand-in for the qemu_fw_cfg module's sysfs files (the real ones exist
// only in a QEMU guest; the boot tests read them for real).
func TestFwCfgFakeSysfs(t *testing.T) {
	env := quiet(t)
	if c, err := readFwCfg(env); c != nil || err != nil {
		t.Fatalf("no fw_cfg: %+v, %v", c, err)
	}
	for name, body := range map[string]string{"meta-data": "instance-id: q-1\nlocal-hostname: qemu-node\n", "user-data": "u"} {
		p := filepath.Join(env.Sys, fwCfgPrefix, name, "raw")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	c, err := readFwCfg(env)
	if err != nil || c.Provider != "fw_cfg" || c.Hostname != "qemu-node" || c.InstanceID != "q-1" || string(c.UserData) != "u" {
		t.Errorf("%+v, %v", c, err)
	}
}

// The HTTP source, against a real server on loopback: a seed is read, a missing user-data is
// none, an error status is reported, and a server that is not up yet is waited for.
func TestHTTP(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/seed/meta-data", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("local-hostname: web\n")) })
	mux.HandleFunc("/seed/user-data", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ud")) })
	mux.HandleFunc("/bare/meta-data", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("instance-id: b\n")) })
	mux.HandleFunc("/broken/meta-data", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusForbidden) })
	starting := 0
	mux.HandleFunc("/starting/meta-data", func(w http.ResponseWriter, _ *http.Request) {
		if starting++; starting < 2 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("instance-id: s\n"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	env := quiet(t)
	ctx := context.Background()
	if c, err := readHTTP(ctx, env, srv.URL+"/seed"); err != nil || c.Hostname != "web" || string(c.UserData) != "ud" || c.Provider != "http" {
		t.Errorf("seed: %+v, %v", c, err)
	}
	if c, err := readHTTP(ctx, env, srv.URL+"/bare/"); err != nil || c.InstanceID != "b" || c.UserData != nil {
		t.Errorf("no user-data: %+v, %v", c, err)
	}
	if _, err := readHTTP(ctx, env, srv.URL+"/broken/"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("403: %v", err)
	}
	if c, err := readHTTP(ctx, env, srv.URL+"/starting/"); err != nil || c.InstanceID != "s" {
		t.Errorf("a 503 is asked again: %+v, %v", c, err)
	}
	// A port nobody listens on yet: retried until the timeout, then a clear error.
	late := httptest.NewUnstartedServer(mux)
	addr := late.Listener.Addr().String()
	late.Listener.Close()
	env.HTTPTimeout = 2 * time.Second
	if _, err := readHTTP(ctx, env, "http://"+addr+"/seed/"); err == nil || !strings.Contains(err.Error(), "no answer within 2s") {
		t.Errorf("no server: %v", err)
	}
}

// Gather asks every source in order; a broken one is logged and skipped.
func TestGatherSkipsBrokenSource(t *testing.T) {
	env := quiet(t)
	var logged []string
	env.Log = func(f string, a ...any) { logged = append(logged, strings.TrimSpace(fmt.Sprintf(f, a...))) }
	p := filepath.Join(env.Sys, fwCfgPrefix, "meta-data", "raw")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("public-keys: {a: [1, [2]]}\n: :\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	params, _ := ParseParams("kiln.hostname=h kiln.metadata=fw_cfg")
	c := Gather(context.Background(), env, params)
	if c.Hostname != "h" || c.Provider != "cmdline" {
		t.Errorf("%+v", c)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "fw_cfg: fw_cfg: meta-data") || !strings.HasSuffix(logged[0], "skipped") {
		t.Errorf("logged %q", logged)
	}
}
