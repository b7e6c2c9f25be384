package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-os/kiln/services/sshd/internal/testenv"
)

// TestReaper runs kiln-sshd as the first process of a PID namespace of its own, as in a
// container without pid: host: the sessions' statuses still come back, and a process orphaned
// by a session is collected when it ends instead of staying a zombie.
func TestReaper(t *testing.T) {
	testenv.NeedTool(t, "ssh", "openssh-client")
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "a PID namespace needs root (run the tests as root)")
	}
	dir := t.TempDir()
	k := newClientKey(t, dir, "reaper")
	d := &sshd{keys: filepath.Join(dir, "authorized_keys")}
	d.setKeys(t, k.line)
	d = startSSHD(t, dir, syscall.CLONE_NEWPID)
	server := d.cmd.Process.Pid // as this test sees it

	if r := d.ssh(t, k.file, "root", nil, "exit 3"); r.code != 3 {
		t.Errorf("exit 3: status %d, stderr %q", r.code, r.stderr)
	}
	if r := d.ssh(t, k.file, "root", []string{"-tt"}, "exit 5"); r.code != 5 {
		t.Errorf("exit 5 with a pty: status %d, stderr %q", r.code, r.stderr)
	}
	// The shell leaves a sleep behind, its streams elsewhere so that the session can end: the
	// sleep becomes the server's child.
	if r := d.ssh(t, k.file, "root", nil, "sleep 1 </dev/null >/dev/null 2>&1 & echo left"); r.code != 0 || r.stdout != "left\n" {
		t.Fatalf("status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if kids := childrenOf(t, server); len(kids) != 1 || kids[0].comm != "sleep" || kids[0].state == "Z" {
		t.Fatalf("the server's children: %+v, want the orphaned sleep", kids)
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		kids := childrenOf(t, server)
		if len(kids) == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the server's children 10s later: %+v (a zombie was not reaped)", kids)
		}
	}
	if r := d.ssh(t, k.file, "root", nil, "echo still"); r.code != 0 || r.stdout != "still\n" {
		t.Errorf("after reaping: status %d, stdout %q", r.code, r.stdout)
	}
	d.stop(t)
}

type proc struct{ pid, comm, state string }

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(t *testing.T, pid int) []proc {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []proc
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses; it ends at the last ')'.
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(string(b[end+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		out = append(out, proc{pid: e.Name(), comm: string(b[open+1 : end]), state: f[0]})
	}
	return out
}
