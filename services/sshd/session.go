package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// session is one session channel: an optional terminal, then a login shell, a command or SFTP.
type session struct {
	srv  *server
	conn *ssh.ServerConn
	ch   ssh.Channel
	key  authKey // the key that logged in: its no-pty option holds here

	env     []string // accepted env requests
	term    *terminal
	started bool // a shell, command or subsystem was asked for (only the request loop uses it)

	mu   sync.Mutex
	pgid int // the running command's process group, for signal requests; 0 when none
}

// terminal is the pty of a session that asked for one.
type terminal struct {
	master *os.File // non-blocking, so that reads can time out
	tty    *os.File // the shell's side, closed here once the shell has it
	term   string   // $TERM
	once   sync.Once
}

func (t *terminal) close() {
	t.once.Do(func() {
		t.master.Close() // the shell's session gets SIGHUP
		t.tty.Close()
	})
}

// session serves a session channel until the client closes it.
func (s *server) session(conn *ssh.ServerConn, nc ssh.NewChannel, key authKey) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	ss := &session{srv: s, conn: conn, ch: ch, key: key}
	for req := range reqs {
		ok := false
		var run func()
		switch req.Type {
		case "pty-req":
			ok = ss.openTerminal(req.Payload)
		case "window-change":
			ok = ss.resize(req.Payload)
		case "env":
			ok = ss.setenv(req.Payload)
		case "shell", "exec":
			run, ok = ss.start(req.Type, req.Payload)
		case "subsystem":
			run, ok = ss.subsystem(req.Payload)
		case "signal":
			ok = ss.signal(req.Payload)
		}
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
		if run != nil {
			go run()
		}
	}
	if ss.term != nil {
		ss.term.close()
	}
	_ = ch.Close()
}

// openTerminal answers pty-req: a pty of the size the client asked for. Terminal modes are
// not applied (the pty keeps the kernel's defaults).
func (ss *session) openTerminal(payload []byte) bool {
	var req struct {
		Term                         string
		Columns, Rows, Width, Height uint32
		Modes                        string
	}
	if ss.started || ss.term != nil || ss.key.NoPTY || ssh.Unmarshal(payload, &req) != nil {
		return false
	}
	master, tty, err := pty.Open()
	if err != nil {
		ss.srv.logf("%s: no pty: %v", ss.conn.RemoteAddr(), err)
		return false
	}
	if err := pty.Setsize(tty, winsize(req.Columns, req.Rows, req.Width, req.Height)); err != nil {
		master.Close()
		tty.Close()
		return false
	}
	// pty.Open's master blocks; a non-blocking copy goes through Go's poller, where reads
	// can have a deadline (see copyTerminal).
	fd, err := unix.FcntlInt(master.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	master.Close()
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		tty.Close()
		return false
	}
	ss.term = &terminal{master: os.NewFile(uintptr(fd), "/dev/ptmx"), tty: tty, term: req.Term}
	return true
}

func winsize(cols, rows, width, height uint32) *pty.Winsize {
	clamp := func(v uint32) uint16 { return uint16(min(v, 0xffff)) }
	return &pty.Winsize{Cols: clamp(cols), Rows: clamp(rows), X: clamp(width), Y: clamp(height)}
}

// resize answers window-change. It sets the size through the master's raw descriptor, since
// os.File.Fd would make the master blocking again.
func (ss *session) resize(payload []byte) bool {
	var req struct{ Columns, Rows, Width, Height uint32 }
	if ss.term == nil || ssh.Unmarshal(payload, &req) != nil {
		return false
	}
	rc, err := ss.term.master.SyscallConn()
	if err != nil {
		return false
	}
	ws := winsize(req.Columns, req.Rows, req.Width, req.Height)
	var ierr error
	err = rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Rows, Col: ws.Cols, Xpixel: ws.X, Ypixel: ws.Y})
	})
	return err == nil && ierr == nil
}

// setenv answers env: TERM, LANG and LC_* are passed on (as Debian's sshd_config AcceptEnv
// does, plus TERM for sessions without a pty); others are refused.
func (ss *session) setenv(payload []byte) bool {
	var req struct{ Name, Value string }
	if ss.started || ssh.Unmarshal(payload, &req) != nil {
		return false
	}
	if req.Name != "TERM" && req.Name != "LANG" && !strings.HasPrefix(req.Name, "LC_") {
		return false
	}
	if strings.ContainsAny(req.Name, "=\x00") || strings.Contains(req.Value, "\x00") {
		return false
	}
	ss.env = append(ss.env, req.Name+"="+req.Value)
	return true
}

// start answers shell (a login shell, "SHELL -l") and exec ("SHELL -c COMMAND"): it starts
// the process and returns the function that feeds it, waits for it and reports its status.
func (ss *session) start(kind string, payload []byte) (func(), bool) {
	if ss.started {
		return nil, false
	}
	args := []string{"-l"}
	if kind == "exec" {
		var req struct{ Command string }
		if ssh.Unmarshal(payload, &req) != nil {
			return nil, false
		}
		args = []string{"-c", req.Command}
	}
	ss.started = true
	cmd := exec.Command(ss.srv.shell, args...)
	cmd.Env = ss.environ()
	cmd.Dir = homeDir()
	if ss.term != nil {
		return ss.startTerminal(cmd)
	}
	return ss.startPipes(cmd)
}

// homeDir is root's home, /root, or / when there is none (or this server, in a test, is not
// root and cannot enter it).
func homeDir() string {
	if fi, err := os.Stat("/root"); err == nil && fi.IsDir() && unix.Access("/root", unix.X_OK) == nil {
		return "/root"
	}
	return "/"
}

// environ is the command's environment: what a login through OpenSSH's sshd sets, and the
// accepted env requests.
func (ss *session) environ() []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	env := []string{"PATH=" + path, "HOME=" + homeDir(), "USER=" + rootUser, "LOGNAME=" + rootUser, "SHELL=" + ss.srv.shell}
	// kiln's settings given to the service (images/builder.yml sets KILN_CACHE to a folder on
	// the state disk), so that kiln in a session works as the node intends.
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KILN_") {
			env = append(env, kv)
		}
	}
	rhost, rport, _ := net.SplitHostPort(ss.conn.RemoteAddr().String())
	lhost, lport, _ := net.SplitHostPort(ss.conn.LocalAddr().String())
	env = append(env, fmt.Sprintf("SSH_CLIENT=%s %s %s", rhost, rport, lport),
		fmt.Sprintf("SSH_CONNECTION=%s %s %s %s", rhost, rport, lhost, lport))
	env = append(env, ss.env...)
	if ss.term != nil {
		env = append(env, "SSH_TTY="+ss.term.tty.Name())
		if ss.term.term != "" {
			env = append(env, "TERM="+ss.term.term)
		}
	}
	return env
}

// startTerminal starts cmd on the session's pty as the leader of a session of its own, the
// pty its controlling terminal.
func (ss *session) startTerminal(cmd *exec.Cmd) (func(), bool) {
	t := ss.term
	cmd.Stdin, cmd.Stdout, cmd.Stderr = t.tty, t.tty, t.tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	wait, err := ss.srv.children.start(cmd)
	if err != nil {
		ss.srv.logf("%s: starting %s: %v", ss.conn.RemoteAddr(), ss.srv.shell, err)
		return nil, false
	}
	ss.running(cmd.Process.Pid)
	t.tty.Close() // the shell has it; the master reads EIO once every holder closed it
	return func() {
		go func() { _, _ = io.Copy(t.master, ss.ch) }()
		var exited atomic.Bool
		copied := make(chan struct{})
		go func() { copyTerminal(ss.ch, t.master, &exited, ss.srv.ptyDrain); close(copied) }()
		ws := wait()
		ss.running(0)
		exited.Store(true)
		_ = t.master.SetReadDeadline(time.Now().Add(ss.srv.ptyDrain))
		<-copied
		ss.exit(ws)
		t.close()
	}, true
}

// copyTerminal copies the pty's output to the client until every holder of the terminal has
// closed it. Once the shell has ended, a process it left in the background may still hold the
// terminal: then the copy ends when no output came for drain (OpenSSH also ends a pty session
// with its shell).
func copyTerminal(dst io.Writer, master *os.File, exited *atomic.Bool, drain time.Duration) {
	buf := make([]byte, 32<<10)
	for {
		if exited.Load() {
			_ = master.SetReadDeadline(time.Now().Add(drain))
		}
		n, err := master.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EIO: nobody holds the terminal any more; a timeout: drained
		}
	}
}

// startPipes starts cmd with pipes for its standard streams, stdout and stderr kept apart, as
// the leader of a session of its own. The session ends once the command has ended and its
// output pipes are closed (as with OpenSSH, a background process that keeps them open keeps
// the session open).
func (ss *session) startPipes(cmd *exec.Cmd) (func(), bool) {
	inR, inW, err1 := os.Pipe()
	outR, outW, err2 := os.Pipe()
	errR, errW, err3 := os.Pipe()
	files := []*os.File{inR, outW, errW} // the command's ends, closed once it has them
	ours := []*os.File{inW, outR, errR}
	if err := errors.Join(err1, err2, err3); err != nil {
		closeAll(files...)
		closeAll(ours...)
		ss.srv.logf("%s: pipes: %v", ss.conn.RemoteAddr(), err)
		return nil, false
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	wait, err := ss.srv.children.start(cmd)
	closeAll(files...)
	if err != nil {
		closeAll(ours...)
		ss.srv.logf("%s: starting %s: %v", ss.conn.RemoteAddr(), ss.srv.shell, err)
		return nil, false
	}
	ss.running(cmd.Process.Pid)
	return func() {
		go func() {
			_, _ = io.Copy(inW, ss.ch) // until the client's EOF, or the command closed its stdin
			inW.Close()
		}()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = io.Copy(ss.ch, outR); outR.Close() }()
		go func() { defer wg.Done(); _, _ = io.Copy(ss.ch.Stderr(), errR); errR.Close() }()
		ws := wait()
		ss.running(0)
		wg.Wait()
		ss.exit(ws)
	}, true
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// running records the command's process group for signal requests (0 once it has ended).
func (ss *session) running(pid int) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.pgid = pid
}

// exit tells the client how the command ended (exit-status, or exit-signal when a signal
// killed it) and closes the channel.
func (ss *session) exit(ws syscall.WaitStatus) {
	if ws.Signaled() {
		if name, ok := signalNames[ws.Signal()]; ok {
			msg := struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}{name, ws.CoreDump(), "", ""}
			_, _ = ss.ch.SendRequest("exit-signal", false, ssh.Marshal(&msg))
		} else {
			ss.sendStatus(128 + int(ws.Signal()))
		}
	} else {
		ss.sendStatus(ws.ExitStatus())
	}
	_ = ss.ch.CloseWrite()
	_ = ss.ch.Close()
}

func (ss *session) sendStatus(code int) {
	msg := struct{ Status uint32 }{uint32(code)}
	_, _ = ss.ch.SendRequest("exit-status", false, ssh.Marshal(&msg))
}

// signalNames are the signals RFC 4254 (6.10) names, as the protocol writes them.
var signalNames = map[syscall.Signal]string{
	syscall.SIGABRT: "ABRT", syscall.SIGALRM: "ALRM", syscall.SIGFPE: "FPE", syscall.SIGHUP: "HUP",
	syscall.SIGILL: "ILL", syscall.SIGINT: "INT", syscall.SIGKILL: "KILL", syscall.SIGPIPE: "PIPE",
	syscall.SIGQUIT: "QUIT", syscall.SIGSEGV: "SEGV", syscall.SIGTERM: "TERM", syscall.SIGUSR1: "USR1",
	syscall.SIGUSR2: "USR2",
}

// signal answers signal: the signal goes to the command's process group.
func (ss *session) signal(payload []byte) bool {
	var req struct{ Signal string }
	if ssh.Unmarshal(payload, &req) != nil {
		return false
	}
	ss.mu.Lock()
	pgid := ss.pgid
	ss.mu.Unlock()
	if pgid == 0 {
		return false
	}
	for sig, name := range signalNames {
		if name == req.Signal {
			return syscall.Kill(-pgid, sig) == nil
		}
	}
	return false
}

// subsystem answers subsystem: "sftp" only, served in this process (scp uses it too).
func (ss *session) subsystem(payload []byte) (func(), bool) {
	var req struct{ Name string }
	if ss.started || ssh.Unmarshal(payload, &req) != nil || req.Name != "sftp" {
		return nil, false
	}
	srv, err := sftp.NewServer(ss.ch, sftp.WithServerWorkingDirectory(homeDir()))
	if err != nil {
		return nil, false
	}
	ss.started = true
	return func() {
		// Serve returns at the client's EOF; srv.Close would close the channel before the
		// exit status is sent.
		status := 0
		if err := srv.Serve(); err != nil {
			status = 1
		}
		ss.sendStatus(status)
		_ = ss.ch.CloseWrite()
		_ = ss.ch.Close()
	}, true
}
