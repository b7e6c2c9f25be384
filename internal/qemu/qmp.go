package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// Powerdown presses the machine's power button through QEMU's machine protocol (QMP
// system_powerdown): an ACPI power button event on amd64 and arm64, a signal-quiesce on s390x.
// What happens then is the guest's business; Wait tells when QEMU has exited.
func (vm *VM) Powerdown(ctx context.Context) error {
	return vm.qmpCommand(ctx, "system_powerdown")
}

// qmpCommand runs one QMP command without arguments.
func (vm *VM) qmpCommand(ctx context.Context, command string) error {
	if vm.qmp == "" {
		return fmt.Errorf("qmp %s: the VM was started without a QMP socket", command)
	}
	var d net.Dialer
	var conn net.Conn
	var err error
	// QEMU creates the socket shortly after it starts: retry for a moment.
	for range 50 {
		conn, err = d.DialContext(ctx, "unix", vm.qmp)
		if err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-vm.done:
			return fmt.Errorf("qmp %s: %w", command, ErrExited)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("qmp %s: connecting to %s: %w", command, vm.qmp, err)
	}
	defer func() { _ = conn.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	r := bufio.NewReader(conn)
	if _, err := qmpRead(r); err != nil { // the greeting
		return fmt.Errorf("qmp %s: reading the greeting: %w", command, err)
	}
	for _, c := range []string{"qmp_capabilities", command} {
		if err := json.NewEncoder(conn).Encode(map[string]string{"execute": c}); err != nil {
			return fmt.Errorf("qmp %s: %w", c, err)
		}
		if _, err := qmpRead(r); err != nil {
			return fmt.Errorf("qmp %s: %w", c, err)
		}
	}
	return nil
}

// qmpMessage is one QMP reply, greeting or event.
type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string `json:"event"`
}

// qmpRead returns the next message that is not an event: a greeting, a return or an error.
func qmpRead(r *bufio.Reader) (qmpMessage, error) {
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return qmpMessage{}, err
		}
		var m qmpMessage
		if err := json.Unmarshal(line, &m); err != nil {
			return qmpMessage{}, fmt.Errorf("reading QMP message %q: %w", line, err)
		}
		switch {
		case m.Event != "":
			continue
		case m.Error != nil:
			return m, errors.New(m.Error.Class + ": " + m.Error.Desc)
		}
		return m, nil
	}
}
