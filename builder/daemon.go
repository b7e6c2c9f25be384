// Package builder drives BuildKit for kiln: it runs the local buildkitd (start, stop, status),
// creates the mutual-TLS certificates remote builder nodes and kiln authenticate each other
// with, maps platforms to builder nodes (`--builders linux/arm64=tcp://node-a:1234`) and
// connects to them, and runs solves with a progress display.
//
// It is not a package builder (build.yml, tags and build order live in kiln's pkg folder) and
// it does not install BuildKit: buildkitd and runc are binaries built by the Makefile.
package builder

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/worker/label"
	"golang.org/x/sys/unix"

	"github.com/kiln-os/kiln/internal/atomicfile"
)

// Environment variables that change where the daemon lives and which binaries run it.
const (
	RootEnv      = "KILN_BUILDER_ROOT" // the daemon's directory (default ~/.kiln/builder)
	BuildkitdEnv = "KILN_BUILDKITD"    // the buildkitd binary
	RuncEnv      = "KILN_RUNC"         // the runc binary buildkitd runs build steps with
)

// Defaults for Daemon.StartTimeout and Daemon.StopTimeout.
const (
	DefaultStartTimeout = 60 * time.Second
	DefaultStopTimeout  = 10 * time.Second
)

// Names inside Daemon.Root.
const (
	stateDirName  = "state"
	socketName    = "buildkitd.sock"
	pidFileName   = "buildkitd.pid"
	logFileName   = "buildkitd.log"
	configName    = "buildkitd.toml"
	certsDirName  = "certs"
	lockFileName  = "daemon.lock"
	maxSocketPath = 107 // sun_path holds 108 bytes including the final NUL
)

// DefaultRoot returns the local daemon's directory: $KILN_BUILDER_ROOT, else ~/.kiln/builder.
func DefaultRoot() (string, error) {
	if r := os.Getenv(RootEnv); r != "" {
		abs, err := filepath.Abs(r)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %w", RootEnv, r, err)
		}
		return abs, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the builder directory: %w; set %s", err, RootEnv)
	}
	return filepath.Join(home, ".kiln", "builder"), nil
}

// FindBuildkitd returns the buildkitd binary: $KILN_BUILDKITD, else buildkitd next to the
// running executable, else bin/buildkitd of the kiln checkout around the working directory,
// else buildkitd on PATH.
func FindBuildkitd() (string, error) { return findBinary("buildkitd", BuildkitdEnv) }

// FindRunc returns the runc binary the same way FindBuildkitd does, with $KILN_RUNC.
func FindRunc() (string, error) { return findBinary("runc", RuncEnv) }

func findBinary(name, env string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return filepath.Abs(p)
	}
	var looked []string
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if checkExecutable(p) == nil {
			return p, nil
		}
		looked = append(looked, p)
	}
	if root, ok := checkoutRoot(); ok {
		p := filepath.Join(root, "bin", name)
		if checkExecutable(p) == nil {
			return p, nil
		}
		looked = append(looked, p)
	}
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	looked = append(looked, "PATH")
	return "", fmt.Errorf("%s not found (looked at $%s, %s); run `make tools` in the kiln checkout "+
		"to build it into bin/, or set %s", name, env, strings.Join(looked, ", "), env)
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// checkoutRoot finds the kiln module root above the working directory.
func checkoutRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			first, _, _ := bytes.Cut(data, []byte("\n"))
			return dir, strings.TrimSpace(string(first)) == "module github.com/kiln-os/kiln"
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// Daemon is the local buildkitd that kiln starts and stops. It keeps everything under Root:
//
//	state/          buildkitd --root: cache and snapshots (overlayfs: Root must be on a real
//	                file system, not overlayfs itself)
//	buildkitd.sock  the unix socket (Address)
//	buildkitd.pid   the daemon's process ID, written by Start
//	buildkitd.log   its output (the previous run's in buildkitd.log.1)
//	buildkitd.toml  an optional buildkitd configuration file, read when present
//	certs/          mutual-TLS files for the TCP listener (GenerateCerts)
//
// The daemon runs detached in its own session and outlives kiln. It uses the OCI worker with
// runc, the overlayfs snapshotter and host networking; solves make builds hermetic by asking
// for no network. Buildkitd needs root.
type Daemon struct {
	Root      string // the daemon's directory (see above); DefaultRoot when empty
	Buildkitd string // buildkitd binary; FindBuildkitd when empty
	Runc      string // runc binary; FindRunc when empty

	// TCP is an optional extra listen address "host:port" (for example ":1234" to serve remote
	// kiln clients). It is served with mutual TLS from Root/certs (ca.pem, server.pem,
	// server-key.pem); Start refuses to listen on TCP without those files.
	TCP string
	// Group, when set, is the group (name or ID) that owns the unix socket, letting its members
	// use the daemon.
	Group string
	// Debug turns on buildkitd's debug logging.
	Debug bool

	StartTimeout time.Duration // how long Start waits for the daemon to answer; DefaultStartTimeout when 0
	StopTimeout  time.Duration // how long Stop waits after SIGTERM before SIGKILL; DefaultStopTimeout when 0
}

// root returns the absolute Root.
func (d *Daemon) root() (string, error) {
	r := d.Root
	if r == "" {
		var err error
		if r, err = DefaultRoot(); err != nil {
			return "", err
		}
	}
	abs, err := filepath.Abs(r)
	if err != nil {
		return "", fmt.Errorf("builder directory %q: %w", r, err)
	}
	return abs, nil
}

// path returns name inside the root; Root is made absolute first (only fails without a
// working directory or home directory).
func (d *Daemon) path(name string) string {
	r, err := d.root()
	if err != nil {
		r = d.Root
	}
	return filepath.Join(r, name)
}

// Address returns the daemon's unix socket address, "unix://<Root>/buildkitd.sock".
func (d *Daemon) Address() string { return "unix://" + d.path(socketName) }

// CertDir returns the directory holding the daemon's TLS files, Root/certs.
func (d *Daemon) CertDir() string { return d.path(certsDirName) }

// LogFile returns the daemon's log file, Root/buildkitd.log.
func (d *Daemon) LogFile() string { return d.path(logFileName) }

// StateDir returns buildkitd's state directory, Root/state.
func (d *Daemon) StateDir() string { return d.path(stateDirName) }

// Start starts buildkitd unless it is already running, and returns once it answers on its
// socket (or fails after StartTimeout). A stale pid file or socket left by a daemon that died
// is cleaned up first. When the daemon runs already with a different TCP address, Start fails
// rather than silently keeping the old one. On failure the error holds the end of the daemon's
// log and the log's path.
func (d *Daemon) Start(ctx context.Context) error {
	root, err := d.root()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("creating builder directory: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(root, lockFileName))
	if err != nil {
		return err
	}
	defer unlock()

	want, err := d.listenAddrs(root)
	if err != nil {
		return err
	}
	if pid, args, ok := d.findProcess(root); ok {
		have := flagValues(args, "--addr")
		if !slices.Equal(have, want) {
			return fmt.Errorf("buildkitd (pid %d) is already running with addresses %s, not %s; stop it "+
				"first (kiln builder stop)", pid, strings.Join(have, ", "), strings.Join(want, ", "))
		}
		// Running: it may still be starting (another kiln started it a moment ago).
		return d.waitReady(ctx, root, pid, nil, 0)
	}
	d.cleanStale(root)

	socket := filepath.Join(root, socketName)
	if len(socket) > maxSocketPath {
		return fmt.Errorf("socket path %s is %d bytes, longer than the %d a unix socket allows; use a "+
			"shorter builder directory (%s)", socket, len(socket), maxSocketPath, RootEnv)
	}
	buildkitd, runc := d.Buildkitd, d.Runc
	if buildkitd == "" {
		if buildkitd, err = FindBuildkitd(); err != nil {
			return err
		}
	}
	if runc == "" {
		if runc, err = FindRunc(); err != nil {
			return err
		}
	}
	// The daemon runs in "/", so relative binary paths must be resolved here.
	if buildkitd, err = filepath.Abs(buildkitd); err != nil {
		return fmt.Errorf("buildkitd binary: %w", err)
	}
	if runc, err = filepath.Abs(runc); err != nil {
		return fmt.Errorf("runc binary: %w", err)
	}
	args := []string{
		"--root", filepath.Join(root, stateDirName),
		"--config", filepath.Join(root, configName),
		"--oci-worker=true",
		"--containerd-worker=false",
		"--oci-worker-snapshotter=overlayfs",
		"--oci-worker-binary", runc,
		"--oci-worker-net=host",
	}
	for _, a := range want {
		args = append(args, "--addr", a)
	}
	if d.TCP != "" {
		certs, err := CertFilesIn(filepath.Join(root, certsDirName))
		if err != nil {
			return err
		}
		for _, p := range []string{certs.CA, certs.ServerCert, certs.ServerKey} {
			if _, err := os.Stat(p); err != nil {
				return fmt.Errorf("listening on tcp://%s needs mutual TLS, but %w; create the files with "+
					"`kiln builder certs` (plain TCP would let anyone on the network run builds as root)",
					d.TCP, err)
			}
		}
		args = append(args, "--tlscacert", certs.CA, "--tlscert", certs.ServerCert, "--tlskey", certs.ServerKey)
	}
	if d.Group != "" {
		args = append(args, "--group", d.Group)
	}
	if d.Debug {
		args = append(args, "--debug")
	}

	logPath := filepath.Join(root, logFileName)
	if err := os.Rename(logPath, logPath+".1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keeping the previous daemon log: %w", err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening daemon log: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor

	cmd := exec.Command(buildkitd, args...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: no terminal signals reach it and it outlives kiln.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", buildkitd, err)
	}
	pid := cmd.Process.Pid
	// Reap the daemon if it exits while this process lives; otherwise it stays a zombie.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	if err := atomicfile.Write(filepath.Join(root, pidFileName), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return err
	}
	return d.waitReady(ctx, root, pid, exited, d.startTimeout())
}

func (d *Daemon) startTimeout() time.Duration {
	if d.StartTimeout > 0 {
		return d.StartTimeout
	}
	return DefaultStartTimeout
}

func (d *Daemon) stopTimeout() time.Duration {
	if d.StopTimeout > 0 {
		return d.StopTimeout
	}
	return DefaultStopTimeout
}

// listenAddrs returns the --addr values for this configuration.
func (d *Daemon) listenAddrs(root string) ([]string, error) {
	addrs := []string{"unix://" + filepath.Join(root, socketName)}
	if d.TCP != "" {
		if _, port, err := net.SplitHostPort(d.TCP); err != nil || port == "" {
			return nil, fmt.Errorf("TCP listen address %q: want HOST:PORT or :PORT", d.TCP)
		}
		addrs = append(addrs, "tcp://"+d.TCP)
	}
	return addrs, nil
}

// waitReady polls the daemon until it answers. exited reports the end of a process this call
// started (nil for one found running); timeout 0 means StartTimeout.
func (d *Daemon) waitReady(ctx context.Context, root string, pid int, exited <-chan error, timeout time.Duration) error {
	if timeout == 0 {
		timeout = d.startTimeout()
	}
	logPath := filepath.Join(root, logFileName)
	address := "unix://" + filepath.Join(root, socketName)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if lastErr = ping(ctx, address); lastErr == nil {
			return nil
		}
		if exited == nil && !processAlive(pid, filepath.Join(root, stateDirName)) {
			return fmt.Errorf("buildkitd (pid %d) exited while starting; log %s:\n%s", pid, logPath, logTail(logPath))
		}
		select {
		case err := <-exited:
			os.Remove(filepath.Join(root, pidFileName))
			return fmt.Errorf("buildkitd exited while starting (%w); log %s:\n%s", err, logPath, logTail(logPath))
		case <-ctx.Done():
			return fmt.Errorf("waiting for buildkitd (pid %d) to answer: %w", pid, context.Cause(ctx))
		case <-deadline.C:
			if exited != nil { // ours: do not leave a daemon behind that never answered
				_ = syscall.Kill(pid, syscall.SIGKILL)
				werr := <-exited
				_ = werr // killed on purpose: the exit status says only that
				os.Remove(filepath.Join(root, pidFileName))
			}
			return fmt.Errorf("buildkitd (pid %d) did not answer on %s within %s (%w); log %s:\n%s",
				pid, address, timeout, lastErr, logPath, logTail(logPath))
		case <-tick.C:
		}
	}
}

// ping asks the daemon for its workers once.
func ping(ctx context.Context, address string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := client.New(ctx, address)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	_, err = c.ListWorkers(ctx)
	return err
}

// Stop stops the daemon: SIGTERM, then SIGKILL when it has not exited after StopTimeout. A
// daemon that is not running is not an error. The pid file and socket are removed.
func (d *Daemon) Stop(ctx context.Context) error {
	root, err := d.root()
	if err != nil {
		return err
	}
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil // never started
	}
	unlock, err := lockFile(ctx, filepath.Join(root, lockFileName))
	if err != nil {
		return err
	}
	defer unlock()
	pid, _, ok := d.findProcess(root)
	if !ok {
		d.cleanStale(root)
		return nil
	}
	state := filepath.Join(root, stateDirName)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping buildkitd (pid %d): %w", pid, err)
	}
	if !waitExit(ctx, pid, state, d.stopTimeout()) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("stopping buildkitd (pid %d): %w", pid, err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("killing buildkitd (pid %d): %w", pid, err)
		}
		if !waitExit(ctx, pid, state, 5*time.Second) {
			return fmt.Errorf("buildkitd (pid %d) survived SIGKILL (stuck in the kernel?); its state "+
				"directory %s may be in use", pid, state)
		}
	}
	d.cleanStale(root)
	return nil
}

// waitExit polls until the process is gone, the context ends or the timeout passes.
func waitExit(ctx context.Context, pid int, stateDir string, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if !processAlive(pid, stateDir) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return !processAlive(pid, stateDir)
		case <-tick.C:
		}
	}
}

// cleanStale removes the pid file and socket when no daemon runs.
func (d *Daemon) cleanStale(root string) {
	os.Remove(filepath.Join(root, pidFileName))
	os.Remove(filepath.Join(root, socketName))
}

// findProcess reads the pid file and checks that the process is our buildkitd (its --root is
// our state directory), so a pid reused by another program is not mistaken for the daemon.
func (d *Daemon) findProcess(root string) (pid int, args []string, ok bool) {
	data, err := os.ReadFile(filepath.Join(root, pidFileName))
	if err != nil {
		return 0, nil, false
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, nil, false
	}
	args, ok = daemonArgs(pid, filepath.Join(root, stateDirName))
	return pid, args, ok
}

// processAlive reports whether pid is a live (not zombie) buildkitd with the given state dir.
func processAlive(pid int, stateDir string) bool {
	_, ok := daemonArgs(pid, stateDir)
	return ok
}

// daemonArgs returns the command-line arguments of pid when it is a live buildkitd using
// stateDir.
func daemonArgs(pid int, stateDir string) ([]string, bool) {
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(proc, "stat"))
	if err != nil {
		return nil, false
	}
	// Field 3, after the parenthesized command name, is the state; Z and X are dead.
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return nil, false
	}
	cmdline, err := os.ReadFile(filepath.Join(proc, "cmdline"))
	if err != nil {
		return nil, false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if !slices.Contains(flagValues(args, "--root"), stateDir) {
		return nil, false
	}
	return args, true
}

// flagValues returns the values of a repeatable flag given as "--flag value" or "--flag=value".
func flagValues(args []string, flag string) []string {
	var vals []string
	for i := 0; i < len(args); i++ {
		if args[i] == flag && i+1 < len(args) {
			vals = append(vals, args[i+1])
			i++
		} else if v, ok := strings.CutPrefix(args[i], flag+"="); ok {
			vals = append(vals, v)
		}
	}
	return vals
}

// lockFile takes an exclusive lock that serializes Start and Stop between kiln processes.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking the builder directory: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another kiln to finish starting or stopping the daemon "+
				"(lock %s): %w", path, context.Cause(ctx))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logTail returns the last lines of the daemon log, for error messages.
func logTail(path string) string {
	const maxLines, maxBytes = 25, 8 << 10
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read the log: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxBytes {
		if _, err := f.Seek(-maxBytes, io.SeekEnd); err != nil {
			return fmt.Sprintf("(cannot read the log: %v)", err)
		}
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, maxBytes), maxBytes)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > maxLines {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return "(empty log)"
	}
	return strings.Join(lines, "\n")
}

// Status describes the local daemon.
type Status struct {
	Root      string         // the daemon's directory
	LogFile   string         // its log
	Running   bool           // a buildkitd runs for Root
	PID       int            // its process ID when Running
	Addresses []string       // its listen addresses ("unix://...", "tcp://...") when Running
	TLS       bool           // TCP addresses require mutual TLS
	Version   string         // BuildKit version and revision, when it answered
	Workers   []WorkerStatus // its workers, when it answered
}

// WorkerStatus describes one BuildKit worker.
type WorkerStatus struct {
	ID          string
	Executor    string   // "oci" (runc) or "containerd"
	Snapshotter string   // e.g. "overlayfs"
	Platforms   []string // platforms it builds, normalized, native first
}

// Status reports whether the daemon runs and, when it does, asks it for its version and workers.
// A daemon that is not running is not an error; one that runs but does not answer gives the
// Status known so far and an error.
func (d *Daemon) Status(ctx context.Context) (Status, error) {
	root, err := d.root()
	if err != nil {
		return Status{}, err
	}
	st := Status{Root: root, LogFile: filepath.Join(root, logFileName)}
	pid, args, ok := d.findProcess(root)
	if !ok {
		return st, nil
	}
	st.Running, st.PID = true, pid
	st.Addresses = flagValues(args, "--addr")
	st.TLS = len(flagValues(args, "--tlscacert")) > 0

	address := "unix://" + filepath.Join(root, socketName)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fail := func(err error) (Status, error) {
		return st, fmt.Errorf("buildkitd (pid %d) runs but does not answer on %s: %w; see its log %s, "+
			"or restart it (kiln builder stop, then start)", pid, address, err, st.LogFile)
	}
	c, err := client.New(ctx, address)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = c.Close() }()
	info, err := c.Info(ctx)
	if err != nil {
		return fail(err)
	}
	st.Version = strings.TrimSpace(info.BuildkitVersion.Version + " " + info.BuildkitVersion.Revision)
	workers, err := c.ListWorkers(ctx)
	if err != nil {
		return fail(err)
	}
	for _, w := range workers {
		ws := WorkerStatus{ID: w.ID, Executor: w.Labels[label.Executor], Snapshotter: w.Labels[label.Snapshotter]}
		for _, p := range w.Platforms {
			ws.Platforms = append(ws.Platforms, platforms.Format(platforms.Normalize(p)))
		}
		st.Workers = append(st.Workers, ws)
	}
	return st, nil
}

// Write prints the status as a human-readable table.
func (s Status) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if s.Running {
		fmt.Fprintf(tw, "state\trunning (pid %d)\n", s.PID)
	} else {
		fmt.Fprintf(tw, "state\tstopped\n")
	}
	fmt.Fprintf(tw, "root\t%s\n", s.Root)
	for _, a := range s.Addresses {
		if s.TLS && strings.HasPrefix(a, "tcp://") {
			a += " (mutual TLS)"
		}
		fmt.Fprintf(tw, "address\t%s\n", a)
	}
	if s.Version != "" {
		fmt.Fprintf(tw, "version\t%s\n", s.Version)
	}
	fmt.Fprintf(tw, "log\t%s\n", s.LogFile)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Workers) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "WORKER\tEXECUTOR\tSNAPSHOTTER\tPLATFORMS\n")
	for _, wk := range s.Workers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", wk.ID, dash(wk.Executor), dash(wk.Snapshotter),
			strings.Join(wk.Platforms, ", "))
	}
	return tw.Flush()
}

// String returns the table Write prints.
func (s Status) String() string {
	var b strings.Builder
	_ = s.Write(&b)
	return b.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
