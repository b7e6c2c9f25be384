package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Env is where the sources look: the real machine's paths, or a test's.
type Env struct {
	Cmdline string // the kernel command line file (/proc/cmdline)
	Sys     string // sysfs (/sys)
	Dev     string // device nodes (/dev)
	// Devices, when set, are the only block devices the drive source looks at (tests).
	Devices []string
	// HTTPTimeout bounds the HTTP source as a whole, retries included.
	HTTPTimeout time.Duration
	Log         func(format string, args ...any)
}

// cmdline splits a kernel command line into its parameters; double quotes group words
// (`kiln.ssh="ssh-ed25519 AAAA... me"`) and are removed. It is the rule of kiln-init's
// boot.SplitCmdline, kept here because this module does not depend on init's (containerd's)
// dependencies.
func cmdline(s string) []string {
	var out []string
	var cur strings.Builder
	quoted, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case !quoted && (r == ' ' || r == '\t' || r == '\n'):
			if inWord {
				out = append(out, cur.String())
			}
			cur.Reset()
			inWord = false
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// Params are the kernel command line's kiln.* parameters this program reads.
type Params struct {
	Config  *Config  // kiln.hostname=, kiln.ssh= (repeatable), kiln.instance_id=
	Sources []string // kiln.metadata=cidata,config-2,fw_cfg,http (default all four, in that order)
	URL     string   // kiln.metadata.url=: a NoCloud seed (URL/meta-data, URL/user-data)
}

// maxFile is the largest meta-data or user-data read from any source.
const maxFile = 16 << 20

// DefaultSources are the sources after the command line, in the order they are asked.
var DefaultSources = []string{"cidata", "config-2", "fw_cfg", "http"}

// ParseParams reads the parameters from a command line.
func ParseParams(line string) (Params, error) {
	p := Params{Config: &Config{Provider: "cmdline"}, Sources: DefaultSources}
	for _, arg := range cmdline(line) {
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			continue
		}
		switch k {
		case "kiln.hostname":
			p.Config.Hostname = v
		case "kiln.instance_id":
			p.Config.InstanceID = v
		case "kiln.ssh":
			p.Config.SSHKeys = append(p.Config.SSHKeys, v)
		case "kiln.metadata.url":
			if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
				return p, fmt.Errorf("kiln.metadata.url=%s: want an http:// or https:// URL", v)
			}
			p.URL = v
		case "kiln.metadata":
			p.Sources = nil
			for s := range strings.SplitSeq(v, ",") {
				switch s {
				case "cidata", "config-2", "fw_cfg", "http":
					p.Sources = append(p.Sources, s)
				case "none":
				default:
					return p, fmt.Errorf("kiln.metadata=%s: unknown source %q (want cidata, config-2, fw_cfg, http or none)", v, s)
				}
			}
		}
	}
	return p, nil
}

// Gather asks the command line, then each source in p.Sources, and merges what they say:
// a field comes from the first source that sets it. A source that is absent says nothing; one
// that is present but broken is logged and skipped.
func Gather(ctx context.Context, env Env, p Params) *Config {
	c := &Config{}
	c.Merge(p.Config)
	var drives []drive
	drivesRead := false
	for _, s := range p.Sources {
		var got *Config
		var err error
		switch s {
		case "cidata", "config-2":
			if !drivesRead {
				drives, drivesRead = findDrives(env), true
			}
			got, err = readDrives(env, drives, s)
		case "fw_cfg":
			got, err = readFwCfg(env)
		case "http":
			if p.URL == "" {
				continue
			}
			got, err = readHTTP(ctx, env, p.URL)
		}
		if err != nil {
			env.Log("%s: %v; skipped", s, err)
			continue
		}
		if got != nil && !got.empty() {
			env.Log("read %s", got.Provider)
		}
		c.Merge(got)
	}
	return c
}

// fwCfgPrefix is where cloud-init's QEMU fw_cfg names live, which kiln reads too:
// `-fw_cfg name=opt/io.cloud-init/cloud-init/meta-data,file=...` (and user-data).
const fwCfgPrefix = "firmware/qemu_fw_cfg/by_name/opt/io.cloud-init/cloud-init"

// readFwCfg reads NoCloud's meta-data and user-data from QEMU's fw_cfg (the qemu_fw_cfg
// module's sysfs files). No such items: nil.
func readFwCfg(env Env) (*Config, error) {
	dir := filepath.Join(env.Sys, fwCfgPrefix)
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name, "raw"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return b, err
	}
	meta, err := read("meta-data")
	if err != nil {
		return nil, err
	}
	user, err := read("user-data")
	if err != nil {
		return nil, err
	}
	if meta == nil && user == nil {
		return nil, nil
	}
	return parseNoCloud("fw_cfg", meta, user)
}

// readHTTP reads a NoCloud seed over HTTP: URL/meta-data and URL/user-data (404 for user-data
// is no user data), retrying until env.HTTPTimeout (the network may still be coming up).
func readHTTP(ctx context.Context, env Env, url string) (*Config, error) {
	if !strings.HasSuffix(url, "/") {
		url += "/"
	}
	ctx, cancel := context.WithTimeout(ctx, env.HTTPTimeout)
	defer cancel()
	get := func(name string) ([]byte, error) {
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+name, nil)
			if err != nil {
				return nil, err
			}
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				defer resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusNotFound && name == "user-data":
					return nil, nil
				case resp.StatusCode >= 500:
					// A server still starting: asked again until the timeout.
					err = fmt.Errorf("%s", resp.Status)
				case resp.StatusCode != http.StatusOK:
					return nil, fmt.Errorf("GET %s%s: %s", url, name, resp.Status)
				default:
					b, err := io.ReadAll(io.LimitReader(resp.Body, maxFile+1))
					if err == nil && len(b) > maxFile {
						err = fmt.Errorf("more than %d MiB", maxFile>>20)
					}
					if err != nil {
						return nil, fmt.Errorf("GET %s%s: %w", url, name, err)
					}
					return b, nil
				}
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("GET %s%s: no answer within %v: %w", url, name, env.HTTPTimeout, err)
			case <-time.After(time.Second):
			}
		}
	}
	meta, err := get("meta-data")
	if err != nil {
		return nil, err
	}
	user, err := get("user-data")
	if err != nil {
		return nil, err
	}
	return parseNoCloud("http", meta, user)
}
