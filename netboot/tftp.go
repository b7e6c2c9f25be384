package netboot

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TFTP (RFC 1350), read requests only, with the options firmware asks for: blksize (RFC 2348),
// tsize and timeout (RFC 2349). Each transfer has its own UDP socket (its transfer ID), as the
// protocol wants; block numbers wrap from 65535 to 0 for files over 32 MiB at 512 bytes.
const (
	opRRQ   = 1
	opWRQ   = 2
	opData  = 3
	opAck   = 4
	opError = 5
	opOACK  = 6

	errNotFound = 1
	errAccess   = 2
	errIllegal  = 4

	// maxBlock caps blksize so that a block fits an ethernet frame unfragmented.
	maxBlock = 1468
	// tftpRetries is how many times a block is sent before the transfer is given up.
	tftpRetries = 5
	// maxTransfers is how many transfers run at once.
	maxTransfers = 64
	// maxTimeout caps the timeout option: a silent client holds its transfer for at most
	// tftpRetries times this.
	maxTimeout = 10
)

// ServeTFTP answers read requests on conn until ctx ends; transfers under way are stopped
// then too (it returns once they are). It returns nil when ctx ends, else the error reading
// conn. Packets that are not requests are dropped unanswered (answering errors with errors
// lets two servers loop); at most maxTransfers run at once, further requests are refused.
func (s *Server) ServeTFTP(ctx context.Context, conn net.PacketConn) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	slots := make(chan struct{}, maxTransfers)
	var local net.IP
	if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok && !ua.IP.IsUnspecified() {
		local = ua.IP
	}
	buf := make([]byte, 1024)
	for {
		n, addr, err := conn.ReadFrom(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tftp: %w", err)
		}
		ua, ok := addr.(*net.UDPAddr)
		if !ok || n < 2 {
			continue
		}
		if op := binary.BigEndian.Uint16(buf); op != opRRQ && op != opWRQ {
			continue
		}
		if !s.allowed(ua.IP) {
			s.logf("tftp %s: refused: not in -allow", ua.IP)
			continue
		}
		req := append([]byte(nil), buf[:n]...)
		select {
		case slots <- struct{}{}:
		default:
			_, _ = conn.WriteTo(errorPacket(0, "too many transfers; try again"), ua)
			s.logf("tftp %s: refused: %d transfers already", ua.IP, maxTransfers)
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			s.transfer(ctx, conn, local, ua, req)
		})
	}
}

// rrq is a parsed read request.
type rrq struct {
	file, mode string
	opts       map[string]string
	order      []string // the options in the order asked
}

func parseRRQ(p []byte) (rrq, error) {
	if len(p) < 2 {
		return rrq{}, errors.New("short packet")
	}
	switch op := binary.BigEndian.Uint16(p); op {
	case opRRQ:
	case opWRQ:
		return rrq{}, errWrite
	default:
		return rrq{}, fmt.Errorf("opcode %d, want a read request", op)
	}
	fields := strings.Split(string(p[2:]), "\x00")
	if len(fields) < 3 || fields[len(fields)-1] != "" {
		return rrq{}, errors.New("malformed read request")
	}
	fields = fields[:len(fields)-1]
	r := rrq{file: fields[0], mode: strings.ToLower(fields[1]), opts: map[string]string{}}
	for i := 2; i+1 < len(fields); i += 2 {
		k := strings.ToLower(fields[i])
		if _, dup := r.opts[k]; !dup {
			r.order = append(r.order, k)
		}
		r.opts[k] = fields[i+1]
	}
	return r, nil
}

var errWrite = errors.New("write request")

// transfer answers one request from its own socket.
func (s *Server) transfer(ctx context.Context, listen net.PacketConn, local net.IP, client *net.UDPAddr, p []byte) {
	start := time.Now()
	req, err := parseRRQ(p)
	if err != nil {
		code, msg := uint16(errIllegal), err.Error()
		if errors.Is(err, errWrite) {
			code, msg = errAccess, "kiln serve is read-only"
		}
		_, _ = listen.WriteTo(errorPacket(code, msg), client)
		s.logf("tftp %s: refused: %s", client.IP, msg)
		return
	}
	// The transfer's socket, connected to the client, from the address the request came to
	// when the server listens on one (firmware drops answers from another): its local address
	// is the one the client reaches this machine at.
	var laddr *net.UDPAddr
	if local != nil {
		laddr = &net.UDPAddr{IP: local}
	}
	conn, err := net.DialUDP("udp", laddr, client)
	if err != nil {
		s.logf("tftp %s RRQ %q: %v", client.IP, req.file, err)
		return
	}
	defer func() { _ = conn.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(code uint16, msg string) {
		_, _ = conn.Write(errorPacket(code, msg))
		s.logf("tftp %s RRQ %q: %s", client.IP, req.file, msg)
	}
	if req.mode != "octet" {
		// netascii would need line ends converted; every boot firmware asks for octet.
		fail(errIllegal, "mode "+req.mode+": only octet is served")
		return
	}
	base := s.BaseURL
	if base == "" {
		local := conn.LocalAddr().(*net.UDPAddr)
		base = "http://" + net.JoinHostPort(local.IP.String(), strconv.Itoa(s.HTTPPort))
	}
	f, err := s.Tree.Open(strings.TrimPrefix(req.file, "/"), base)
	if err != nil {
		code := uint16(errNotFound)
		if !errors.Is(err, ErrNotFound) {
			code = 0
		}
		fail(code, err.Error())
		return
	}
	defer func() { _ = f.Close() }()
	t := &tftpConn{conn: conn, client: client, block: 512, timeout: time.Second}
	// Options: answered in an OACK with the values taken; unknown ones are left out.
	var oack []string
	for _, k := range req.order {
		v := req.opts[k]
		switch k {
		case "blksize":
			n, err := strconv.Atoi(v)
			if err != nil || n < 8 || n > 65464 {
				continue
			}
			t.block = min(n, maxBlock)
			oack = append(oack, k, strconv.Itoa(t.block))
		case "tsize":
			oack = append(oack, k, strconv.FormatInt(f.Size, 10))
		case "timeout":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 255 {
				continue
			}
			n = min(n, maxTimeout)
			t.timeout = time.Duration(n) * time.Second
			oack = append(oack, k, strconv.Itoa(n))
		}
	}
	if len(oack) > 0 {
		pkt := binary.BigEndian.AppendUint16(nil, opOACK)
		for _, o := range oack {
			pkt = append(append(pkt, o...), 0)
		}
		if err := t.send(ctx, pkt, 0); err != nil {
			s.logf("tftp %s RRQ %q: %v", client.IP, req.file, err)
			return
		}
	}
	sent, err := t.sendFile(ctx, f)
	if err != nil {
		s.logf("tftp %s RRQ %q: %v after %s", client.IP, req.file, err, size(sent))
		return
	}
	s.logf("tftp %s RRQ %q: %s in %s, %d-byte blocks%s", client.IP, req.file, size(sent), time.Since(start).Round(time.Millisecond), t.block, describe(f))
}

func errorPacket(code uint16, msg string) []byte {
	p := binary.BigEndian.AppendUint16(nil, opError)
	p = binary.BigEndian.AppendUint16(p, code)
	return append(append(p, msg...), 0)
}

// tftpConn is one transfer's socket.
type tftpConn struct {
	conn    *net.UDPConn
	client  *net.UDPAddr
	block   int
	timeout time.Duration
}

// sendFile sends f in blocks, the last one shorter than a block (empty when the size is a
// multiple of it), and returns the bytes sent.
func (t *tftpConn) sendFile(ctx context.Context, f io.Reader) (int64, error) {
	buf := make([]byte, 4+t.block)
	var sent int64
	for num := uint16(1); ; num++ {
		n, err := io.ReadFull(f, buf[4:])
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			_, _ = t.conn.Write(errorPacket(0, "read error"))
			return sent, err
		}
		binary.BigEndian.PutUint16(buf, opData)
		binary.BigEndian.PutUint16(buf[2:], num)
		if err := t.send(ctx, buf[:4+n], num); err != nil {
			return sent, err
		}
		sent += int64(n)
		if n < t.block {
			return sent, nil
		}
	}
}

// send sends pkt until the client acknowledges block num, at most tftpRetries times.
// Duplicate and old acknowledgements are ignored (no resend on them: the Sorcerer's
// Apprentice bug).
func (t *tftpConn) send(ctx context.Context, pkt []byte, num uint16) error {
	in := make([]byte, 516)
	for try := 0; try < tftpRetries; try++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("stopped: %w", err)
		}
		if _, err := t.conn.Write(pkt); err != nil {
			return err
		}
		deadline := time.Now().Add(t.timeout)
		for {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("stopped: %w", err)
			}
			_ = t.conn.SetReadDeadline(deadline)
			n, err := t.conn.Read(in)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break // send again
			}
			if err != nil {
				return err
			}
			if n < 4 {
				continue
			}
			switch binary.BigEndian.Uint16(in) {
			case opAck:
				if binary.BigEndian.Uint16(in[2:]) == num {
					return nil
				}
			case opError:
				msg := string(bytes.TrimRight(in[4:n], "\x00"))
				return fmt.Errorf("the client stopped the transfer: error %d %s", binary.BigEndian.Uint16(in[2:]), msg)
			}
		}
	}
	return fmt.Errorf("no acknowledgement of block %d after %d tries", num, tftpRetries)
}
