package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kiln-os/kiln/assemble"
	"github.com/kiln-os/kiln/netboot"
)

const serveUsage = "kiln serve [flags] DIR | PREFIX"

// ipxeFiles are the iPXE binaries of the bootloaders image (amd64) that kiln serve hands to
// PXE firmware over TFTP, by the names it serves them under.
var ipxeFiles = map[string]string{
	"undionly.kpxe": "ipxe/undionly.kpxe", // BIOS PXE ROMs: iPXE on the ROM's network driver
	"ipxe.efi":      "ipxe/ipxe.efi",      // UEFI, x86-64: iPXE with its own drivers
	"snponly.efi":   "ipxe/snponly.efi",   // UEFI, x86-64: iPXE on the firmware's network driver
}

func runServe(ctx context.Context, args []string) error {
	fs := newFlags("serve", serveUsage, "Serve the systems kiln build wrote (-format kernel+initrd) to machines that boot from the\n"+
		"network: iPXE scripts, kernels, initrds and per-machine metadata over HTTP, and the same files\n"+
		"with iPXE's binaries and pxelinux-style configurations over TFTP. DIR holds NAME-kernel,\n"+
		"NAME-initrd.img and NAME-cmdline for each system NAME; PREFIX (out/NAME) serves that one.\n"+
		"Point DHCP's boot file at http://HOST:PORT/boot.ipxe for iPXE clients (QEMU's NIC ROMs), or at\n"+
		"undionly.kpxe / ipxe.efi over TFTP for PXE firmware (chain iPXE to boot.ipxe); see docs/netboot.md.\n"+
		"Every request is one line on stderr. It runs until interrupted.")
	httpAddr := fs.String("http", ":8080", "HTTP address to listen on")
	tftpAddr := fs.String("tftp", "", "TFTP address to listen on, such as :69 (default: no TFTP)")
	system := fs.String("system", "", "the system machines boot unless their folder says (default: the only one in DIR)")
	machines := fs.String("machines", "", "folder of per-machine folders named by MAC address (52-54-00-12-34-56) or \"default\",\n"+
		"holding meta-data and user-data (NoCloud, for services/metadata), system and cmdline; it adds\n"+
		"kiln.metadata.url=http://HOST:PORT/machines/MAC/ to each command line")
	baseURL := fs.String("url", "", "the URL clients reach this server at, http://HOST:PORT (default: the address each request came to;\n"+
		"set it behind a NAT, such as QEMU's user-mode network, where the host is 10.0.2.2)")
	cacheDir := fs.String("cache", "", "image cache folder for -bootloaders (default $KILN_CACHE or ~/.kiln/cache)")
	allow := fs.String("allow", "", "comma-separated addresses or networks (10.1.0.0/24) requests may come from; others are refused\n"+
		"(default: any). Machines' user data may hold secrets, such as a builder node's TLS key")
	bootloaders := fs.String("bootloaders", envOr("KILN_BOOTLOADERS", assemble.DefaultBootloaders),
		"image whose iPXE binaries TFTP serves (tools/bootloaders; empty: none)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"give one folder of systems (or one output name, out/NAME)"}
	}
	dir := fs.Arg(0)
	if fi, err := os.Stat(assemble.KernelFile(dir)); err == nil && fi.Mode().IsRegular() && *system == "" {
		// PREFIX: that system, from its folder.
		dir, *system = filepath.Dir(dir), filepath.Base(dir)
	}
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%s: not a folder of systems, nor an output name with %s: %w", fs.Arg(0), assemble.KernelFile(fs.Arg(0)), err)
	} else if !fi.IsDir() {
		return fmt.Errorf("%s: not a folder of systems, nor an output name with %s", fs.Arg(0), assemble.KernelFile(fs.Arg(0)))
	}
	if *baseURL != "" {
		if !strings.HasPrefix(*baseURL, "http://") || strings.Count(*baseURL, "/") != 2 {
			return usageError{fmt.Sprintf("-url %s: want http://HOST:PORT (iPXE speaks plain HTTP; no path)", *baseURL)}
		}
	}
	if *machines != "" {
		if fi, err := os.Stat(*machines); err != nil {
			return fmt.Errorf("-machines: %w", err)
		} else if !fi.IsDir() {
			return fmt.Errorf("-machines %s: not a folder", *machines)
		}
	}
	var allowNets []*net.IPNet
	for _, c := range strings.Split(*allow, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		if !strings.Contains(c, "/") {
			if ip := net.ParseIP(c); ip != nil && ip.To4() != nil {
				c += "/32"
			} else {
				c += "/128"
			}
		}
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return usageError{fmt.Sprintf("-allow %s: want addresses or networks such as 10.1.0.0/24", *allow)}
		}
		allowNets = append(allowNets, n)
	}
	tree := &netboot.Tree{Dir: dir, Default: *system, Machines: *machines}
	systems, err := netboot.Systems(dir)
	if err != nil {
		return err
	}
	if len(systems) == 0 {
		return fmt.Errorf("no system in %s: kiln build -format kernel+initrd -dir %s FILE.yml writes one", dir, dir)
	}
	var names []string
	for _, s := range systems {
		names = append(names, s.Name)
	}
	if *system != "" && !slices.Contains(names, *system) {
		return fmt.Errorf("-system %s: not in %s (it has %s)", *system, dir, strings.Join(names, ", "))
	}
	if *system == "" && len(systems) > 1 {
		fmt.Fprintf(os.Stderr, "kiln serve: %d systems and no -system: machines without a system file in their folder are refused\n", len(systems))
	}
	srv := &netboot.Server{Tree: tree, Log: os.Stderr, BaseURL: strings.TrimSuffix(*baseURL, "/"), Allow: allowNets}
	if *machines != "" && len(allowNets) == 0 && holdsKeys(*machines) {
		fmt.Fprintf(os.Stderr, "kiln serve: WARNING: %s holds private keys (a builder node's TLS key?), which anyone who reaches this server can fetch: limit it with -allow NETWORK\n", *machines)
	}

	if *tftpAddr != "" && *bootloaders != "" {
		tree.Files, err = loadIPXE(ctx, *cacheDir, *bootloaders)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kiln serve: no iPXE binaries over TFTP: %v\n", err)
		}
	}
	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("-http: %w", err)
	}
	srv.HTTPPort = hl.Addr().(*net.TCPAddr).Port
	var tl net.PacketConn
	if *tftpAddr != "" {
		if tl, err = net.ListenPacket("udp", *tftpAddr); err != nil {
			_ = hl.Close()
			return fmt.Errorf("-tftp: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "kiln serve: systems in %s: %s\n", dir, strings.Join(describeSystems(systems, *system), ", "))
	if *machines != "" {
		fmt.Fprintf(os.Stderr, "kiln serve: machines' metadata and choices from %s\n", *machines)
	}
	fmt.Fprintf(os.Stderr, "kiln serve: HTTP on %s; iPXE boot file: %s/boot.ipxe\n", hl.Addr(), exampleBase(srv.BaseURL, hl.Addr()))
	if tl != nil {
		var served []string
		for name := range tree.Files {
			served = append(served, name)
		}
		slices.Sort(served)
		served = append(served, "pxelinux.cfg/default", "pxelinux.cfg/01-MAC", "systems/NAME/...")
		fmt.Fprintf(os.Stderr, "kiln serve: TFTP on %s: %s\n", tl.LocalAddr(), strings.Join(served, ", "))
	}

	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(hl) }()
	if tl != nil {
		go func() { errc <- srv.ServeTFTP(ctx, tl) }()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(shutdown)
	if tl != nil {
		_ = tl.Close()
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintln(os.Stderr, "kiln serve: stopped")
	return nil
}

// describeSystems names the systems, the default one marked.
func describeSystems(systems []netboot.System, def string) []string {
	var out []string
	for _, s := range systems {
		d := s.Name
		if s.Name == def || (def == "" && len(systems) == 1) {
			d += " (default)"
		}
		if s.UKI != "" {
			d += " (with its UKI)"
		}
		out = append(out, d)
	}
	return out
}

// exampleBase is the base URL to print: -url, else the listening address (HOST when it
// listens on every address).
func exampleBase(base string, addr net.Addr) string {
	if base != "" {
		return base
	}
	ta := addr.(*net.TCPAddr)
	host := ta.IP.String()
	if ta.IP.IsUnspecified() {
		host = "HOST"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(ta.Port))
}

// loadIPXE reads the iPXE binaries from the bootloaders image's amd64 variant.
func loadIPXE(ctx context.Context, cacheDir, ref string) (map[string][]byte, error) {
	cache, err := openCache(cacheDir)
	if err != nil {
		return nil, err
	}
	var want []string
	for _, p := range ipxeFiles {
		want = append(want, p)
	}
	got, err := assemble.ImageFiles(ctx, cache, ref, "amd64", want)
	if err != nil {
		return nil, fmt.Errorf("%w (kiln pkg build -platforms linux/amd64 tools/bootloaders in kiln's source makes it; -bootloaders names another)", err)
	}
	files := map[string][]byte{}
	for name, p := range ipxeFiles {
		if b, ok := got[p]; ok {
			files[name] = b
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("image %s has no /ipxe/ (an older tools/bootloaders?)", ref)
	}
	return files, nil
}

// holdsKeys reports whether a file in the machines folder (one level of folders down) holds
// a PEM private key.
func holdsKeys(dir string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || found {
			return filepath.SkipAll
		}
		if d.Type().IsRegular() {
			if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "PRIVATE KEY") {
				found = true
			}
		}
		return nil
	})
	return found
}
