// Command metadata gathers a node's configuration and writes it under /run/config, where other
// services bind what they need (LinuxKit's convention). It runs as an onboot container.
//
// Sources, asked in this order; each field comes from the first one that sets it:
//
//   - the kernel command line: kiln.hostname=, kiln.instance_id=, kiln.ssh="KEY" (repeatable);
//   - a config drive, ISO9660 or FAT: labelled cidata (cloud-init NoCloud: meta-data with
//     instance-id, local-hostname and public-keys; user-data) or config-2 (OpenStack:
//     openstack/latest/meta_data.json and user_data);
//   - QEMU's fw_cfg, under cloud-init's names (opt/io.cloud-init/cloud-init/meta-data and
//     user-data; not on s390x, whose QEMU machine has no fw_cfg);
//   - a NoCloud seed over HTTP, when kiln.metadata.url= names one (URL/meta-data, URL/user-data).
//
// kiln.metadata=cidata,fw_cfg (or none) picks the sources after the command line. A source
// that is missing says nothing; one that is broken is reported on the console and skipped, and
// the node boots with what the others said. User data that is a JSON tree of entries
// ({"name": {"perm": "0644", "content": "..."} | {"entries": {...}}}) is also written out as
// files; a tree that breaks the rules is reported and left out.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	out := flag.String("out", "/run/config", "the folder to write")
	cmdlineFile := flag.String("cmdline", "/proc/cmdline", "the kernel command line")
	httpTimeout := flag.Duration("http-timeout", 30*time.Second, "how long the HTTP source may take, retries included")
	flag.Parse()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	env := Env{Cmdline: *cmdlineFile, Sys: "/sys", Dev: "/dev", HTTPTimeout: *httpTimeout, Log: logf}
	if err := run(context.Background(), env, *out); err != nil {
		logf("%v", err)
		os.Exit(1)
	}
}

// run gathers and writes. Only a failure to write the folder is an error: everything else is
// reported and the node goes on with what there is.
func run(ctx context.Context, env Env, out string) error {
	line, err := os.ReadFile(env.Cmdline)
	if err != nil {
		env.Log("the kernel command line: %v; not read", err)
	}
	p, err := ParseParams(string(line))
	if err != nil {
		env.Log("%v; using the default sources", err)
		p.Sources = DefaultSources
	}
	c := Gather(ctx, env, p)
	if c.empty() {
		env.Log("no source had anything for this node (command line, %v); %s has no configuration", p.Sources, out)
	}
	warnings, err := Write(out, c)
	for _, w := range warnings {
		env.Log("%s", w)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if !c.empty() {
		env.Log("wrote %s from %s", out, c.Provider)
	}
	return nil
}
