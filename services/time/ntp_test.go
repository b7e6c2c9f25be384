package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beevik/ntp"

	"github.com/kiln-os/kiln/services/time/internal/testenv"
)

// The tests below ask a real NTP server: chronyd from Debian's chrony package, on a port of
// 127.0.0.1, serving its local clock (local stratum 8) with no sources of its own, so nothing
// leaves loopback; -x keeps it off the machine's clock. KILN_CHRONYD names the binary (the
// Makefile sets it to the copy scripts/deps.sh unpacks without installing the package, whose
// service would reach for Debian's pool and set the clock); chronyd on PATH does too. The tests
// never set the clock either: -dry-run, or a clock that records.

func TestMain(m *testing.M) {
	systemClock = refuseClock{} // a runMain without -dry-run must not reach the real clock
	os.Exit(m.Run())
}

// chronyd starts an NTP server on 127.0.0.1 for the test and returns its address once it
// answers.
func chronyd(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("KILN_CHRONYD")
	if bin == "" {
		bin, _ = exec.LookPath("chronyd")
	}
	if bin == "" {
		testenv.SkipOrFail(t, "chronyd is missing: set KILN_CHRONYD to a chronyd binary (scripts/deps.sh unpacks Debian's chrony into bin/chrony without installing its service)")
	}
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf(`# A server of its local clock on loopback: no server or pool lines, so it asks no one.
port %d
bindaddress 127.0.0.1
bindacqaddress 127.0.0.1
allow 127.0.0.1
local stratum 8
cmdport 0
bindcmdaddress /
pidfile %s
`, port, filepath.Join(dir, "chronyd.pid"))
	confFile := filepath.Join(dir, "chrony.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// -d: in the foreground, logging to stderr; -x: never touch the clock; -u: stay who we
	// are (Debian's chronyd would switch to _chrony, which need not exist); -U: as a user too.
	args := []string{"-d", "-x", "-f", confFile, "-u", "root"}
	if u, err := user.Current(); err == nil && u.Uid != "0" {
		args = []string{"-d", "-x", "-f", confFile, "-u", u.Username, "-U"}
	}
	cmd := exec.Command(bin, args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		testenv.SkipOrFail(t, "chronyd (%s): %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := ntp.QueryWithOptions(addr, ntp.QueryOptions{Timeout: 200 * time.Millisecond})
		if err == nil {
			if err = r.Validate(); err == nil {
				return addr
			}
		}
		select {
		case <-done:
			t.Fatalf("chronyd exited before it answered:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("chronyd on %s does not answer (%v):\n%s", addr, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort is a UDP port of 127.0.0.1 that was free a moment ago, and is closed: queries to it
// are refused.
func freePort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logLines collects an Env's console lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) log(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logLines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// waitFor waits until n lines match re, and returns them.
func (l *logLines) waitFor(t *testing.T, re *regexp.Regexp, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got []string
		for _, line := range l.all() {
			if re.MatchString(line) {
				got = append(got, line)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d lines matching %s; the lines:\n%s", n, re, strings.Join(l.all(), "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testEnv is an Env with the servers in a file of its own and an empty command line.
func testEnv(t *testing.T, logs *logLines, servers ...string) Env {
	t.Helper()
	dir := t.TempDir()
	cmdline := filepath.Join(dir, "cmdline")
	if err := os.WriteFile(cmdline, []byte("panic=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "ntp")
	if len(servers) > 0 {
		if err := os.WriteFile(file, []byte(strings.Join(servers, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Env{Cmdline: cmdline, ServerFiles: []string{file}, Interval: time.Hour, Retry: time.Second,
		Timeout: 2 * time.Second, Once: true, Log: logs.log}
}

func abs(d time.Duration) time.Duration { return max(d, -d) }

// The server runs on this machine's clock: the offset is close to zero.
func TestChronydOffset(t *testing.T) {
	addr := chronyd(t)
	var logs logLines
	answers := Query(context.Background(), testEnv(t, &logs), []string{addr})
	a := answers[0]
	if a.Err != nil {
		t.Fatalf("%s: %v", addr, a.Err)
	}
	if abs(a.Resp.ClockOffset) > 100*time.Millisecond || a.Resp.Stratum != 8 {
		t.Errorf("offset %s, stratum %d from %s; want close to 0, stratum 8", a.Resp.ClockOffset, a.Resp.Stratum, addr)
	}
}

// The command: one round, the offset line, a slew of that offset, exit 0.
func TestChronydOnce(t *testing.T) {
	addr := chronyd(t)
	clock := &recordClock{}
	systemClock = clock
	defer func() { systemClock = refuseClock{} }()
	env := testEnv(t, &logLines{}, addr)
	var out syncBuffer
	if code := runMain([]string{"-once", "-cmdline", env.Cmdline, "-servers-file", env.ServerFiles[0]}, &out); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	want := regexp.MustCompile(`(?m)\A\QNTP servers from ` + env.ServerFiles[0] + `: ` + addr + `\E\n` +
		`offset [+-]0\.\d\d\ds from \Q` + addr + `\E \(stratum 8\): slewing\n\z`)
	if !want.MatchString(out.String()) {
		t.Errorf("the lines:\n%s\nwant %s", out.String(), want)
	}
	steps, slews := clock.calls()
	if len(steps) != 0 || len(slews) != 1 || abs(slews[0]) > 100*time.Millisecond {
		t.Errorf("steps %v, slews %v; want one small slew", steps, slews)
	}
}

// A local clock seconds off is stepped back; a fraction of a second off is slewed.
func TestChronydStepAndSlew(t *testing.T) {
	addr := chronyd(t)
	for _, tc := range []struct {
		skew time.Duration
		step bool
	}{{3 * time.Second, true}, {-time.Hour, true}, {-200 * time.Millisecond, false}, {300 * time.Millisecond, false}} {
		var logs logLines
		clock := &recordClock{}
		env := testEnv(t, &logs, addr)
		env.Clock = clock
		env.Now = func() time.Time { return time.Now().Add(tc.skew) }
		Run(context.Background(), env)
		steps, slews := clock.calls()
		did, action := slews, "slewing"
		if tc.step {
			did, action = steps, "clock stepped"
		}
		if len(steps)+len(slews) != 1 || len(did) != 1 || abs(did[0]+tc.skew) > 100*time.Millisecond {
			t.Errorf("local clock %s off: steps %v, slews %v; want one %s of %s", tc.skew, steps, slews, action, -tc.skew)
		}
		line := logs.waitFor(t, regexp.MustCompile(`^offset [+-]\d+\.\d{3}s from \Q`+addr+`\E \(stratum 8\): `+action+`$`), 1)[0]
		var secs float64
		if _, err := fmt.Sscanf(line, "offset %fs", &secs); err != nil || abs(time.Duration(secs*1e9)+tc.skew) > 100*time.Millisecond {
			t.Errorf("local clock %s off: %q", tc.skew, line)
		}
	}
}

// -dry-run reports the offset and never uses the clock, even with a large offset.
func TestChronydDryRun(t *testing.T) {
	addr := chronyd(t)
	systemClock = refuseClock{t}
	defer func() { systemClock = refuseClock{} }()
	env := testEnv(t, &logLines{}, addr)
	var out syncBuffer
	if code := runMain([]string{"-once", "-dry-run", "-cmdline", env.Cmdline, "-servers-file", env.ServerFiles[0]}, &out); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "(stratum 8): -dry-run, clock not set\n") {
		t.Errorf("the lines:\n%s", out.String())
	}

	var logs logLines
	env = testEnv(t, &logs, addr)
	env.Now = func() time.Time { return time.Now().Add(time.Hour) }
	env.Clock = nil // what runMain makes of -dry-run
	Run(context.Background(), env)
	logs.waitFor(t, regexp.MustCompile(`^offset -3600\.\d{3}s from .*: -dry-run, clock not set$`), 1)
}

// Of a closed port and a server, the server's answer is used.
func TestChronydBestOfTwo(t *testing.T) {
	addr := chronyd(t)
	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var logs logLines
	env := testEnv(t, &logs, closed, addr)
	env.Clock = &recordClock{}
	Run(context.Background(), env)
	logs.waitFor(t, regexp.MustCompile(`^offset .* from \Q`+addr+`\E \(stratum 8\): slewing$`), 1)
}

// No server answers: a line that says why for each, no crash, exit 0; without -once the
// service tries again with a growing wait, and SIGTERM (here the context) ends it.
func TestUnreachable(t *testing.T) {
	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0") // takes the query, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	env := testEnv(t, &logLines{}, closed, silent.LocalAddr().String())
	var out syncBuffer
	start := time.Now()
	if code := runMain([]string{"-once", "-timeout", "300ms", "-cmdline", env.Cmdline, "-servers-file", env.ServerFiles[0]}, &out); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	want := fmt.Sprintf("no valid NTP answer (%s: refused; %s: no answer within 300ms)\n", closed, silent.LocalAddr())
	if !strings.HasSuffix(out.String(), want) {
		t.Errorf("the lines:\n%s\nwant the last %q", out.String(), want)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %s with a 300ms timeout: the servers were not asked at once?", took)
	}

	var logs logLines
	env = testEnv(t, &logs, closed)
	env.Once, env.Retry, env.Interval, env.Clock = false, 20*time.Millisecond, 80*time.Millisecond, refuseClock{t}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() { Run(ctx, env); close(ended) }()
	got := logs.waitFor(t, regexp.MustCompile(`^no valid NTP answer`), 4)
	cancel()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("Run goes on after its context ended")
	}
	for i, wait := range []string{"20ms", "40ms", "80ms", "80ms"} {
		if want := fmt.Sprintf("no valid NTP answer (%s: refused); trying again in %s", closed, wait); got[i] != want {
			t.Errorf("line %d: %q, want %q", i, got[i], want)
		}
	}
}

// With no server anywhere the service says so once and looks again; the DHCP service's file,
// written later, is taken up.
func TestWaitsForServers(t *testing.T) {
	addr := chronyd(t)
	var logs logLines
	env := testEnv(t, &logs)
	env.Once, env.Retry, env.Clock = false, 20*time.Millisecond, &recordClock{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ended := make(chan struct{})
	go func() { Run(ctx, env); close(ended) }()

	logs.waitFor(t, regexp.MustCompile(`^no NTP servers \(kiln.ntp= on the kernel command line, .*/ntp\); waiting for one$`), 1)
	time.Sleep(100 * time.Millisecond) // a few looks, said once
	if err := os.WriteFile(env.ServerFiles[0], []byte("bad line\n"+addr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, regexp.MustCompile(`^offset .* from \Q`+addr+`\E \(stratum 8\): slewing$`), 1)
	cancel()
	<-ended
	want := []string{
		fmt.Sprintf("no NTP servers (%s, %s); waiting for one", cmdlineSource, env.ServerFiles[0]),
		fmt.Sprintf(`%s:1: "bad line": want one server a line (host or host:port); server skipped`, env.ServerFiles[0]),
		fmt.Sprintf("NTP servers from %s: %s", env.ServerFiles[0], addr),
	}
	got := logs.all()
	if len(got) != 4 || strings.Join(got[:3], "\n") != strings.Join(want, "\n") {
		t.Errorf("the lines:\n%s\nwant\n%s\nand the offset", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"extra"}, {"-bogus"}, {"-interval", "0s"}, {"-timeout", "-1s"}, {"-retry", "0s"}} {
		var out strings.Builder
		if got := runMain(args, &out); got != 2 {
			t.Errorf("time %q: exit %d, want 2", args, got)
		}
		if !strings.Contains(out.String(), "usage: time") {
			t.Errorf("time %q said %q", args, out.String())
		}
	}
	var out strings.Builder
	if got := runMain([]string{"-help"}, &out); got != 0 || !strings.Contains(out.String(), "-servers-file") {
		t.Errorf("time -help: exit %d, said %q", got, out.String())
	}
}
