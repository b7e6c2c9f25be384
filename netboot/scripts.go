package netboot

import (
	"fmt"
	"os"
	"strings"
)

// bootScript is boot.ipxe: it asks again by the booting NIC's MAC address, so that each
// machine gets its own script from one DHCP boot file name.
func bootScript(base string) string {
	return "#!ipxe\n" +
		"# kiln serve: this machine's script, by the MAC address of the NIC it booted from\n" +
		"chain " + base + "/ipxe/${mac:hexhyp}\n"
}

// cmdlineOf reads a system's command line with the machine's parameters and, when machines
// are served, the metadata URL; it refuses characters the boot scripts cannot carry as they
// are.
func (t *Tree) cmdlineOf(s System, mac, extra, base string) (string, error) {
	b, err := os.ReadFile(s.Cmdline)
	if err != nil {
		return "", err
	}
	params := strings.Fields(string(b))
	params = append(params, strings.Fields(extra)...)
	if t.Machines != "" && mac != "" {
		params = append(params, "kiln.metadata.url="+base+"/machines/"+mac+"/")
	}
	line := strings.Join(params, " ")
	// iPXE expands ${...} and reads quotes and backslashes itself; pxelinux ends a line at a
	// newline. Parameters with these cannot be served unchanged.
	if i := strings.IndexFunc(line, func(r rune) bool { return r == '"' || r == '\'' || r == '\\' || r < ' ' || r == 0x7f }); i >= 0 || strings.Contains(line, "${") {
		return "", fmt.Errorf("the command line of %s (%s, with the machine's cmdline file) has a quote, a backslash, ${ or a control character, which iPXE would change: %q", s.Name, s.Cmdline, line)
	}
	return line, nil
}

// ipxeScript is ipxe/MAC: kernel and initrd over HTTP, the command line with the machine's
// parameters. initrd=initrd.img lets an EFI kernel find the initrd iPXE names so.
func (t *Tree) ipxeScript(s System, mac, extra, base string) ([]byte, error) {
	line, err := t.cmdlineOf(s, mac, extra, base)
	if err != nil {
		return nil, err
	}
	sys := base + "/systems/" + s.Name
	return []byte("#!ipxe\n" +
		"# kiln serve: system " + s.Name + " for " + mac + "\n" +
		"echo kiln serve: booting " + s.Name + "\n" +
		"kernel " + sys + "/kernel initrd=initrd.img " + line + "\n" +
		"initrd --name initrd.img " + sys + "/initrd.img\n" +
		"boot\n"), nil
}

// pxelinux is a pxelinux-style configuration (pxelinux.cfg/default, pxelinux.cfg/01-MAC):
// paths relative to the TFTP root. s390x's firmware reads it after a boot file whose first
// line is "# pxelinux".
func (t *Tree) pxelinux(s System, mac, extra, base string) ([]byte, error) {
	line, err := t.cmdlineOf(s, mac, extra, base)
	if err != nil {
		return nil, err
	}
	return []byte("# pxelinux configuration: kiln serve, system " + s.Name + "\n" +
		"default kiln\n" +
		"label kiln\n" +
		"  kernel systems/" + s.Name + "/kernel\n" +
		"  initrd systems/" + s.Name + "/initrd.img\n" +
		"  append " + line + "\n"), nil
}
