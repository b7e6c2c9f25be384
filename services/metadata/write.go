package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The files Write makes at the top of the output folder, as LinuxKit's metadata package does;
// a user-data tree may not use these names.
var reserved = map[string]bool{"provider": true, "hostname": true, "instance_id": true, "userdata": true, "ssh": true}

// Write replaces dir with the node's configuration:
//
//	provider             the sources that answered, comma separated
//	hostname             the host name
//	instance_id          the instance ID
//	userdata             the raw user data
//	ssh/authorized_keys  the SSH keys, 0600 in a 0700 folder
//	NAME...              user data that is a JSON tree of entries (see parseTree)
//
// Fields that are unknown have no file. The folder is built beside dir and renamed into place,
// so readers see the old one or the new one. A user-data tree that is not valid is left out
// and reported in the returned warnings; the rest is written.
func Write(dir string, c *Config) (warnings []string, err error) {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".new-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	put := func(name string, data []byte, mode os.FileMode) error {
		return os.WriteFile(filepath.Join(tmp, name), data, mode)
	}
	line := func(s string) []byte { return []byte(s + "\n") }
	var errs []error
	if c.Provider != "" {
		errs = append(errs, put("provider", line(c.Provider), 0o644))
	}
	if c.Hostname != "" {
		errs = append(errs, put("hostname", line(c.Hostname), 0o644))
	}
	if c.InstanceID != "" {
		errs = append(errs, put("instance_id", line(c.InstanceID), 0o644))
	}
	if c.UserData != nil {
		// Root only: user data carries secrets (a builder node's server key, for one), which
		// its tree gives their own modes; the raw copy must not undo that.
		errs = append(errs, put("userdata", c.UserData, 0o600))
	}
	if len(c.SSHKeys) > 0 {
		errs = append(errs, os.Mkdir(filepath.Join(tmp, "ssh"), 0o700),
			put("ssh/authorized_keys", line(strings.Join(c.SSHKeys, "\n")), 0o600))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if tree, err := parseTree(c.UserData); err != nil {
		warnings = append(warnings, fmt.Sprintf("user data: %v; its files are not written (userdata has it as it came)", err))
	} else if tree != nil {
		if err := writeTree(tmp, tree); err != nil {
			// Out of space, say: the tree is dropped, the rest is still written.
			for name := range tree {
				_ = os.RemoveAll(filepath.Join(tmp, name))
			}
			warnings = append(warnings, fmt.Sprintf("user data: writing its files: %v; they are not written", err))
		}
	}
	old := tmp + ".old"
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.Rename(old, dir)
		return nil, err
	}
	return warnings, os.RemoveAll(old)
}

// entry is one node of a user-data tree: a file (Content) or a folder (Entries), with Perm
// in octal ("0644"; default 0644 for files, 0755 for folders).
type entry struct {
	Perm    string            `json:"perm,omitempty"`
	Content *string           `json:"content,omitempty"`
	Entries map[string]*entry `json:"entries,omitempty"`
}

// parseTree reads user data as a JSON object of entries (LinuxKit's convention). User data that
// is not a JSON object is not a tree: nil, no error. A JSON object that breaks the rules is an
// error naming the entry.
func parseTree(data []byte) (map[string]*entry, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var tree map[string]*entry
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("a JSON object that is not a tree of {\"perm\", \"content\" | \"entries\"}: %w", err)
	}
	for name := range tree {
		if reserved[name] {
			return nil, fmt.Errorf("/%s: kiln writes that name itself", name)
		}
	}
	if err := checkTree("", tree); err != nil {
		return nil, err
	}
	return tree, nil
}

func checkTree(at string, tree map[string]*entry) error {
	for name, e := range tree {
		p := at + "/" + name
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 255 {
			return fmt.Errorf("%s: not a file name (1 to 255 bytes, no / or NUL, not . or ..)", p)
		}
		if len(p) > 3000 {
			return fmt.Errorf("%s: the tree is too deep", p[:64]+"...")
		}
		if e == nil {
			return fmt.Errorf("%s: null, want an object", p)
		}
		if e.Content != nil && e.Entries != nil {
			return fmt.Errorf("%s: has both content and entries", p)
		}
		if e.Perm != "" {
			if m, err := strconv.ParseUint(e.Perm, 8, 32); err != nil || m > 0o777 {
				return fmt.Errorf("%s: perm %q is not an octal mode from 0000 to 0777, like \"0644\"", p, e.Perm)
			}
		}
		if e.Entries != nil {
			if err := checkTree(p, e.Entries); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeTree writes a checked tree into dir, in name order.
func writeTree(dir string, tree map[string]*entry) error {
	names := make([]string, 0, len(tree))
	for n := range tree {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		e := tree[n]
		p := filepath.Join(dir, n)
		if e.Content == nil {
			mode := perm(e.Perm, 0o755)
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
			if err := writeTree(p, e.Entries); err != nil {
				return err
			}
			if err := os.Chmod(p, mode); err != nil { // after the entries: a 0500 folder stays writable until filled
				return err
			}
			continue
		}
		if err := os.WriteFile(p, []byte(*e.Content), 0o600); err != nil {
			return err
		}
		if err := os.Chmod(p, perm(e.Perm, 0o644)); err != nil {
			return err
		}
	}
	return nil
}

func perm(s string, def os.FileMode) os.FileMode {
	if s == "" {
		return def
	}
	m, _ := strconv.ParseUint(s, 8, 32)
	return os.FileMode(m) & os.ModePerm
}
