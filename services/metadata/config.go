package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is what a source says about this node. Empty fields are unknown: Merge fills them from
// a later source.
type Config struct {
	Provider   string   // where it came from: cmdline, cidata, config-2, fw_cfg, http
	InstanceID string   // changes when the node is a new instance
	Hostname   string   // the node's host name
	SSHKeys    []string // authorized_keys lines
	UserData   []byte   // raw user data; a JSON tree of entries is also written out as files
}

// Merge fills the fields c lacks from o. c.Provider names every source that contributed.
func (c *Config) Merge(o *Config) {
	if o == nil {
		return
	}
	used := false
	if c.InstanceID == "" && o.InstanceID != "" {
		c.InstanceID, used = o.InstanceID, true
	}
	if c.Hostname == "" && o.Hostname != "" {
		c.Hostname, used = o.Hostname, true
	}
	if len(c.SSHKeys) == 0 && len(o.SSHKeys) > 0 {
		c.SSHKeys, used = slices.Clone(o.SSHKeys), true
	}
	if c.UserData == nil && o.UserData != nil {
		c.UserData, used = o.UserData, true
	}
	if used {
		if c.Provider == "" {
			c.Provider = o.Provider
		} else {
			c.Provider += "," + o.Provider
		}
	}
}

// empty reports whether c says nothing.
func (c *Config) empty() bool {
	return c.InstanceID == "" && c.Hostname == "" && len(c.SSHKeys) == 0 && c.UserData == nil
}

// noCloudMeta is the part of cloud-init NoCloud's meta-data (YAML) kiln reads.
type noCloudMeta struct {
	InstanceID    string `yaml:"instance-id"`
	LocalHostname string `yaml:"local-hostname"`
	Hostname      string `yaml:"hostname"`
	// public-keys is a list of keys, or a map of name to key or list of keys.
	PublicKeys yaml.Node `yaml:"public-keys"`
}

// parseNoCloud reads NoCloud's meta-data and user-data. provider names the source in errors.
func parseNoCloud(provider string, meta, user []byte) (*Config, error) {
	c := &Config{Provider: provider, UserData: user}
	if len(bytes.TrimSpace(meta)) > 0 {
		var m noCloudMeta
		if err := yaml.Unmarshal(meta, &m); err != nil {
			return nil, fmt.Errorf("%s: meta-data: %w", provider, err)
		}
		c.InstanceID = m.InstanceID
		c.Hostname = m.LocalHostname
		if c.Hostname == "" {
			c.Hostname = m.Hostname
		}
		keys, err := yamlKeys(&m.PublicKeys)
		if err != nil {
			return nil, fmt.Errorf("%s: meta-data: public-keys: %w", provider, err)
		}
		c.SSHKeys = keys
	}
	return c, nil
}

// yamlKeys reads public-keys: a string, a list of strings, or a map (in key order) of strings
// or lists of strings.
func yamlKeys(n *yaml.Node) ([]string, error) {
	switch n.Kind {
	case 0:
		return nil, nil
	case yaml.ScalarNode:
		return splitKeys(n.Value), nil
	case yaml.SequenceNode:
		var out []string
		for _, item := range n.Content {
			ks, err := yamlKeys(item)
			if err != nil {
				return nil, err
			}
			out = append(out, ks...)
		}
		return out, nil
	case yaml.MappingNode:
		type pair struct {
			name string
			keys []string
		}
		var pairs []pair
		for i := 0; i+1 < len(n.Content); i += 2 {
			ks, err := yamlKeys(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			pairs = append(pairs, pair{n.Content[i].Value, ks})
		}
		sort.SliceStable(pairs, func(a, b int) bool { return pairs[a].name < pairs[b].name })
		var out []string
		for _, p := range pairs {
			out = append(out, p.keys...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("line %d: want a key, a list of keys or a map of them", n.Line)
}

// splitKeys returns the non-empty, non-comment lines of s.
func splitKeys(s string) []string {
	var out []string
	for l := range strings.Lines(s) {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// openStackMeta is the part of OpenStack's meta_data.json kiln reads.
type openStackMeta struct {
	UUID       string            `json:"uuid"`
	Hostname   string            `json:"hostname"`
	Name       string            `json:"name"`
	PublicKeys map[string]string `json:"public_keys"`
}

// parseOpenStack reads a config-2 drive's meta_data.json and user_data.
func parseOpenStack(meta, user []byte) (*Config, error) {
	var m openStackMeta
	if err := json.Unmarshal(meta, &m); err != nil {
		return nil, fmt.Errorf("config-2: openstack/latest/meta_data.json: %w", err)
	}
	c := &Config{Provider: "config-2", InstanceID: m.UUID, Hostname: m.Hostname, UserData: user}
	if c.Hostname == "" {
		c.Hostname = m.Name
	}
	names := make([]string, 0, len(m.PublicKeys))
	for n := range m.PublicKeys {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c.SSHKeys = append(c.SSHKeys, splitKeys(m.PublicKeys[n])...)
	}
	return c, nil
}
