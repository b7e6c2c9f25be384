package boot

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kiln-os/kiln/init/modules"
	"github.com/kiln-os/kiln/init/runc"
)

// OnFail is what happens when a fatal boot step fails (kiln.onfail=).
type OnFail string

// The kiln.onfail choices.
const (
	OnFailPoweroff OnFail = "poweroff" // run the shutdown sequence and power off (the default)
	OnFailReboot   OnFail = "reboot"   // run the shutdown sequence and reboot
	OnFailWait     OnFail = "wait"     // stay up as the boot left it, waiting for a power request
	OnFailContinue OnFail = "continue" // run the remaining steps anyway
)

// Cmdline is what kiln-init reads from the kernel command line.
type Cmdline struct {
	Debug   bool              // kiln.debug: step starts, each module and mount, containerd and onboot output on the console
	OnFail  OnFail            // kiln.onfail=poweroff|reboot|wait|continue
	Modules []string          // kiln.modules=a,b: modules to load besides /etc/kiln/modules
	Params  map[string]string // MODULE.param=value: parameters for the modules kiln-init loads
	// OnbootTimeout (kiln.onboot.timeout=) is how long each onboot container may run before
	// it is stopped and counts as failed; 0 means no limit. A container's own
	// kiln.onboot.timeout annotation wins.
	OnbootTimeout time.Duration
}

// DefaultOnbootTimeout is the onboot time limit when the command line sets none: generous
// enough for a slow container on a software-emulated machine, short enough that a hung one
// does not hold the boot for good.
const DefaultOnbootTimeout = 5 * time.Minute

// serviceSwitches are the kiln.* switches kiln's services read from /proc/cmdline (see each
// service's doc comment); kiln-init leaves them alone and warns about any other kiln.* switch.
var serviceSwitches = map[string]bool{
	"kiln.hostname":     true, // services/metadata
	"kiln.instance_id":  true,
	"kiln.ssh":          true,
	"kiln.metadata":     true,
	"kiln.metadata.url": true,
	"kiln.net":          true, // services/network
	"kiln.state":        true, // services/disk
	"kiln.ntp":          true, // services/time
	"kiln.console":      true, // images/builder.yml's console shell
}

// DefaultCmdline is what kiln-init uses before (or without) reading the command line.
func DefaultCmdline() Cmdline {
	return Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{}, OnbootTimeout: DefaultOnbootTimeout}
}

// ParseCmdline reads a kernel command line. Problems (an unknown kiln.* switch, a bad value)
// come back as warnings, and the default is used.
func ParseCmdline(line string) (Cmdline, []string) {
	c := DefaultCmdline()
	var warn []string
	for _, word := range SplitCmdline(line) {
		key, val, hasVal := strings.Cut(word, "=")
		switch {
		case key == "kiln.debug":
			switch strings.ToLower(val) {
			case "", "1", "true", "yes", "on":
				c.Debug = true
			case "0", "false", "no", "off":
				c.Debug = false
			default:
				warn = append(warn, fmt.Sprintf("kiln.debug=%s: expected no value, 1 or 0", val))
			}
		case key == "kiln.onfail":
			switch f := OnFail(val); f {
			case OnFailPoweroff, OnFailReboot, OnFailWait, OnFailContinue:
				c.OnFail = f
			default:
				warn = append(warn, fmt.Sprintf("kiln.onfail=%s: expected poweroff, reboot, wait or continue; using poweroff", val))
			}
		case key == "kiln.onboot.timeout":
			d, err := runc.ParseTimeout(val)
			if err != nil {
				warn = append(warn, fmt.Sprintf("kiln.onboot.timeout=%s: %v; using %s", val, err, DefaultOnbootTimeout))
				break
			}
			c.OnbootTimeout = d
		case key == "kiln.modules":
			for _, m := range strings.Split(val, ",") {
				if m = strings.TrimSpace(m); m != "" {
					c.Modules = append(c.Modules, m)
				}
			}
		case serviceSwitches[key]:
			// Read by one of kiln's services, not by kiln-init.
		case strings.HasPrefix(key, "kiln."):
			warn = append(warn, fmt.Sprintf("unknown switch %s; kiln-init knows kiln.debug, kiln.onfail, kiln.onboot.timeout and "+
				"kiln.modules, and kiln's services read %s", key, strings.Join(slices.Sorted(maps.Keys(serviceSwitches)), ", ")))
		case hasVal && strings.Contains(key, "."):
			mod, param, _ := strings.Cut(key, ".")
			if mod == "" || param == "" {
				continue
			}
			mod = modules.Name(mod)
			p := param + "=" + quoteParam(val)
			if old := c.Params[mod]; old != "" {
				p = old + " " + p
			}
			c.Params[mod] = p
		}
	}
	return c, warn
}

// quoteParam puts a module parameter value that holds spaces back in double quotes, as the
// kernel's parameter parser expects.
func quoteParam(v string) string {
	if strings.ContainsAny(v, " \t") {
		return `"` + v + `"`
	}
	return v
}

// SplitCmdline splits a command line into words the way the kernel does: at spaces, except
// inside double quotes, which are removed.
func SplitCmdline(line string) []string {
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted = !quoted
			inWord = true
		case !quoted && (r == ' ' || r == '\t' || r == '\n'):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
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
