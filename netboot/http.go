package netboot

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// Server serves a Tree over HTTP (ServeHTTP) and TFTP (ServeTFTP), saying on Log what it
// served, one line a request.
type Server struct {
	Tree *Tree
	// Log receives one line a request (nil: none).
	Log io.Writer
	// BaseURL is the HTTP address clients reach this server at, as http://HOST:PORT. Empty
	// means the address each request came to: the Host header over HTTP, the server's own
	// address towards the client and HTTPPort over TFTP. Set it when clients go through a
	// NAT (QEMU's user-mode network reaches the host's loopback as 10.0.2.2).
	BaseURL string
	// HTTPPort is the HTTP server's port, for the URLs of files handed out over TFTP.
	HTTPPort int
	// Allow, when not empty, are the networks requests may come from (HTTP and TFTP); others
	// are refused. Machines' user data can hold secrets (a builder node's TLS key).
	Allow []*net.IPNet

	mu sync.Mutex
}

// allowed reports whether a request from ip may be answered.
func (s *Server) allowed(ip net.IP) bool {
	if len(s.Allow) == 0 {
		return true
	}
	for _, n := range s.Allow {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// logf writes one line to s.Log.
func (s *Server) logf(format string, args ...any) {
	if s.Log == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.Log, "kiln serve: "+format+"\n", args...)
}

// ServeHTTP serves GET and HEAD requests for the tree's files, with ranges.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	var note string
	defer func() {
		s.logf("http %s %s %q: %d, %s in %s%s", host, r.Method, "/"+name, cw.status, size(cw.n), time.Since(start).Round(time.Millisecond), note)
	}()
	if ip := net.ParseIP(host); ip == nil || !s.allowed(ip) {
		note = " (not in -allow)"
		http.Error(cw, "forbidden", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		cw.Header().Set("Allow", "GET, HEAD")
		http.Error(cw, "only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	base := s.BaseURL
	if base == "" {
		base = "http://" + r.Host
	}
	f, err := s.Tree.Open(name, base)
	if err != nil {
		note = " (" + err.Error() + ")"
		if errors.Is(err, ErrNotFound) {
			http.Error(cw, err.Error(), http.StatusNotFound)
		} else {
			http.Error(cw, err.Error(), http.StatusInternalServerError)
		}
		return
	}
	defer func() { _ = f.Close() }()
	note = describe(f)
	if strings.HasSuffix(name, ".ipxe") || strings.HasPrefix(name, "ipxe/") {
		cw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		cw.Header().Set("Content-Type", "application/octet-stream")
	}
	http.ServeContent(cw, r, "", f.ModTime, f)
}

// describe says which machine and system a file was for.
func describe(f *File) string {
	var parts []string
	if f.Machine != "" {
		parts = append(parts, "machine "+f.Machine)
	}
	if f.System != "" {
		parts = append(parts, "system "+f.System)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// countingWriter counts the body bytes written and keeps the status.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// size writes a byte count for a log line.
func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
