package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// options are kiln-buildkitd's flags.
type options struct {
	Certs, TCP, Socket, Root, Config, Buildkitd string
	SystemRoots                                 string // the image's root certificates
	MaxUsed, MinFree, Reserved                  int
	ReadyTimeout                                time.Duration
	Debug                                       bool
}

// check rejects flag values that cannot work.
func (o options) check() error {
	for _, p := range []struct {
		name string
		v    int
	}{{"-max-used", o.MaxUsed}, {"-min-free", o.MinFree}, {"-reserved", o.Reserved}} {
		if p.v < 0 || p.v > 100 {
			return fmt.Errorf("%s %d: want a percentage from 0 to 100", p.name, p.v)
		}
	}
	if o.Reserved > o.MaxUsed {
		return fmt.Errorf("-reserved %d%% is more than -max-used %d%%", o.Reserved, o.MaxUsed)
	}
	if o.TCP != "" {
		if _, _, err := net.SplitHostPort(o.TCP); err != nil {
			return fmt.Errorf("-tcp %q: want HOST:PORT, such as 0.0.0.0:1234: %w", o.TCP, err)
		}
	}
	for _, p := range []struct{ name, v string }{{"-socket", o.Socket}, {"-root", o.Root}, {"-config", o.Config}} {
		if !filepath.IsAbs(p.v) {
			return fmt.Errorf("%s %q: want an absolute path", p.name, p.v)
		}
	}
	return nil
}

// config is what goes into buildkitd.toml.
type config struct {
	Root, Socket, TCP     string
	TLS                   *tlsFiles // nil: the unix socket only
	MaxUsed, MinFree, Res int
	Debug                 bool
}

// toml writes c as buildkitd's configuration. The OCI worker runs builds with runc; the
// containerd worker is off (the node's containerd runs the node's services, not builds).
// Garbage collection is given in percent of the state file system; buildkitd works the bytes
// out itself when it starts.
func (c config) toml() string {
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "root = %s\ndebug = %t\n\n[grpc]\n", q(c.Root), c.Debug)
	addrs := []string{q("unix://" + c.Socket)}
	if c.TLS != nil {
		addrs = append(addrs, q("tcp://"+c.TCP))
	}
	fmt.Fprintf(&b, "  address = [%s]\n", strings.Join(addrs, ", "))
	if c.TLS != nil {
		fmt.Fprintf(&b, "\n[grpc.tls]\n  cert = %s\n  key = %s\n  ca = %s\n", q(c.TLS.Cert), q(c.TLS.Key), q(c.TLS.CA))
	}
	fmt.Fprintf(&b, "\n[worker.oci]\n  enabled = true\n  gc = true\n"+
		"  reservedSpace = \"%d%%\"\n  maxUsedSpace = \"%d%%\"\n  minFreeSpace = \"%d%%\"\n", c.Res, c.MaxUsed, c.MinFree)
	b.WriteString("\n[worker.containerd]\n  enabled = false\n")
	return b.String()
}

// File system magic numbers (statfs(2)) of the file systems that forget at power off.
const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

// stateDisk describes the file system holding dir.
func stateDisk(dir string) (size uint64, volatile bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false, fmt.Errorf("state folder %s: %w", dir, err)
	}
	t := uint32(st.Type)                                                         //nolint:gosec // a magic number, compared bit for bit
	return st.Blocks * uint64(st.Bsize), t == tmpfsMagic || t == ramfsMagic, nil //nolint:gosec // Bsize is positive
}

// run prepares, starts and watches buildkitd; it returns buildkitd's exit status.
func run(ctx context.Context, o options, logf func(string, ...any)) (int, error) {
	c := config{Root: o.Root, Socket: o.Socket, TCP: o.TCP, MaxUsed: o.MaxUsed, MinFree: o.MinFree, Res: o.Reserved, Debug: o.Debug}
	if o.TCP == "" {
		logf("no -tcp address; serving only unix://%s inside the node", o.Socket)
	} else if f, err := checkTLS(o.Certs, time.Now()); err != nil {
		logf("not listening on %s: %v; serving only unix://%s inside the node", o.TCP, err, o.Socket)
	} else {
		c.TLS = &f
		logf("mutual TLS on %s for %s; certificate valid until %s", o.TCP, strings.Join(f.Names, ", "),
			f.NotAfter.UTC().Format(time.RFC3339))
	}
	for _, d := range []string{o.Root, filepath.Dir(o.Socket), filepath.Dir(o.Config)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return 1, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	size, volatile, err := stateDisk(o.Root)
	if err != nil {
		return 1, err
	}
	logf("state in %s: %s; the build cache may use %s (%d%%) and garbage collection keeps %s (%d%%) free",
		o.Root, bytesText(size), bytesText(size*uint64(o.MaxUsed)/100), o.MaxUsed, //nolint:gosec // checked 0..100
		bytesText(size*uint64(o.MinFree)/100), o.MinFree) //nolint:gosec // checked 0..100
	if volatile {
		logf("WARNING: %s is in memory (no state disk): the build cache is lost at power off", o.Root)
	}
	if err := writeFileAtomic(o.Config, []byte(c.toml()), 0o600); err != nil {
		return 1, err
	}
	args := []string{"--config", o.Config}
	cmd := exec.Command(o.Buildkitd, args...) //nolint:gosec // the program is a flag of ours
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// buildkitd moves itself into a child cgroup and enables the controllers for its builds'
	// cgroups: the container's own cgroup namespace root would otherwise hold a process.
	cmd.Env = os.Environ()
	if ownCgroupNamespace() {
		cmd.Env = append(cmd.Env, "BUILDKIT_SETUP_CGROUPV2_ROOT=1")
	}
	bundle := filepath.Join(filepath.Dir(o.Config), "ca-certificates.pem")
	switch n, err := writeTrust(o.Certs, o.SystemRoots, bundle); {
	case err != nil:
		logf("WARNING: %v; downloads trust only %s", err, o.SystemRoots)
	case n > 0:
		logf("downloads trust %s and %d more root certificates from %s", o.SystemRoots, n, filepath.Join(o.Certs, trustFile))
		cmd.Env = append(cmd.Env, "SSL_CERT_FILE="+bundle)
	}
	start := time.Now()
	reaping := os.Getpid() == 1
	var sigchld chan os.Signal
	if reaping {
		sigchld = make(chan os.Signal, 1)
		signal.Notify(sigchld, syscall.SIGCHLD)
		defer signal.Stop(sigchld)
	}
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("starting %s: %w", o.Buildkitd, err)
	}
	exited := make(chan syscall.WaitStatus, 1)
	if reaping {
		go reap(cmd.Process.Pid, sigchld, exited)
	} else {
		go func() {
			_ = cmd.Wait()
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			exited <- ws
		}()
	}
	ready := make(chan error, 1)
	readyCtx, cancelReady := context.WithTimeout(ctx, o.ReadyTimeout)
	defer cancelReady()
	go func() { ready <- waitReady(readyCtx, o.Socket) }()
	signalled, done := false, ctx.Done()
	for {
		select {
		case err := <-ready:
			ready = nil
			if err != nil {
				if !signalled && ctx.Err() == nil {
					logf("no answer on unix://%s within %s: %v", o.Socket, o.ReadyTimeout, err)
				}
				continue
			}
			addrs := "unix://" + o.Socket
			if c.TLS != nil {
				addrs = "tcp://" + o.TCP + " (mutual TLS), " + addrs
			}
			logf("ready on %s in %s (%s since the kernel started)", addrs,
				time.Since(start).Round(10*time.Millisecond), uptime())
		case <-done:
			// Passed on once; buildkitd exits and the case below returns.
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done, signalled = nil, true
		case ws := <-exited:
			switch {
			case ws.Signaled():
				return 128 + int(ws.Signal()), fmt.Errorf("buildkitd was killed by %s", ws.Signal())
			case signalled && ws.ExitStatus() <= 1:
				// buildkitd ends with status 1 when a signal cancels its context.
				logf("buildkitd stopped on request")
				return 0, nil
			case ws.ExitStatus() != 0:
				return ws.ExitStatus(), fmt.Errorf("buildkitd exited with status %d", ws.ExitStatus())
			}
			logf("buildkitd exited")
			return 0, nil
		}
	}
}

// reap is the reaper of a kiln-buildkitd that is its PID namespace's first process, as in its
// container: it collects every child that ends (build processes orphaned by buildkitd end up
// here and would stay zombies) and sends buildkitd's own status to exited.
func reap(buildkitd int, sigchld <-chan os.Signal, exited chan<- syscall.WaitStatus) {
	for {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
			if pid == buildkitd {
				exited <- ws
				return
			}
		}
		<-sigchld
	}
}

// initCgroupNamespace is the inode of the machine's first cgroup namespace: a constant of the
// kernel (PROC_CGROUP_INIT_INO).
const initCgroupNamespace = "cgroup:[4026531835]"

// ownCgroupNamespace reports whether this process runs in a cgroup namespace of its own, as
// in a container, where buildkitd may rearrange the cgroups it sees; never on a host.
func ownCgroupNamespace() bool {
	ns, err := os.Readlink("/proc/self/ns/cgroup")
	return err == nil && ns != initCgroupNamespace
}

// waitReady asks buildkitd's health service over the unix socket until it says SERVING. The
// socket exists before buildkitd's workers are set up; the health service answers only after.
func waitReady(ctx context.Context, socket string) error {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("gRPC client for %s: %w", socket, err)
	}
	defer func() { _ = conn.Close() }()
	client := healthpb.NewHealthClient(conn)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := client.Check(callCtx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if err != nil {
			last = err
		} else {
			last = fmt.Errorf("health: %s", resp.GetStatus())
		}
		select {
		case <-ctx.Done():
			return last
		case <-tick.C:
		}
	}
}

// uptime is the time since the kernel started, from /proc/uptime, or "?".
func uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	s, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return "?"
	}
	return strconv.FormatFloat(s, 'f', 2, 64) + "s"
}

// bytesText writes n in binary units with one decimal.
func bytesText(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v, i = v/1024, i+1
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// writeFileAtomic writes data to a temporary file beside path and renames it into place (kiln's
// internal/atomicfile cannot be used: a package's build context is its own folder).
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
