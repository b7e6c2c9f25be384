package power

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestFromArgv0(t *testing.T) {
	for arg0, want := range map[string]Action{
		"/sbin/poweroff": Poweroff, "poweroff": Poweroff, "/sbin/halt": Poweroff,
		"/sbin/reboot": Reboot, "reboot": Reboot,
		"/init": None, "init": None, "/sbin/rebooter": None, "": None,
	} {
		if got := FromArgv0(arg0); got != want {
			t.Errorf("FromArgv0(%q) = %v, want %v", arg0, got, want)
		}
	}
}

func TestFromSignal(t *testing.T) {
	for sig, want := range map[syscall.Signal]Action{
		syscall.SIGTERM: Poweroff, syscall.SIGUSR2: Poweroff, syscall.SIGPWR: Poweroff, syscall.SIGUSR1: Poweroff,
		syscall.SIGINT: Reboot, syscall.SIGHUP: None,
	} {
		if got := FromSignal(sig); got != want {
			t.Errorf("FromSignal(%v) = %v, want %v", sig, got, want)
		}
	}
	// What the commands send must mean the same thing to PID 1.
	for _, a := range []Action{Poweroff, Reboot} {
		if got := FromSignal(SignalFor(a)); got != a {
			t.Errorf("SignalFor(%v) is read back as %v", a, got)
		}
	}
}

type sent struct {
	pid int
	sig syscall.Signal
}

func TestCommandFakeKill(t *testing.T) {
	tests := []struct {
		name    string
		action  Action
		args    []string
		killErr error
		code    int
		sent    []sent
		stderr  string
	}{
		{"poweroff", Poweroff, nil, nil, 0, []sent{{1, syscall.SIGTERM}}, ""},
		{"reboot", Reboot, nil, nil, 0, []sent{{1, syscall.SIGINT}}, ""},
		{"help", Reboot, []string{"--help"}, nil, 0, nil, "usage: reboot [-f]"},
		{"bad argument", Poweroff, []string{"-x"}, nil, 2, nil, `unknown argument "-x"`},
		{"not allowed", Poweroff, nil, errors.New("operation not permitted"), 1, []sent{{1, syscall.SIGTERM}}, "operation not permitted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []sent
			var stderr strings.Builder
			fakeKill := func(pid int, sig syscall.Signal) error {
				got = append(got, sent{pid, sig})
				return tt.killErr
			}
			code := Command(tt.action, tt.args, fakeKill, func(s string) { stderr.WriteString(s) })
			if code != tt.code || !reflect.DeepEqual(got, tt.sent) || !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("code %d, sent %v, stderr %q", code, got, stderr.String())
			}
		})
	}
}

func event(typ, code uint16, value int32) []byte {
	b := make([]byte, EventSize)
	binary.NativeEndian.PutUint64(b[0:], 1700000000)
	binary.NativeEndian.PutUint64(b[8:], 5)
	binary.NativeEndian.PutUint16(b[16:], typ)
	binary.NativeEndian.PutUint16(b[18:], code)
	binary.NativeEndian.PutUint32(b[20:], uint32(value))
	return b
}

func TestWatchPowerKey(t *testing.T) {
	dir := t.TempDir()
	var stream bytes.Buffer
	stream.Write(event(evKey, 30, 1))       // KEY_A pressed
	stream.Write(event(evKey, keyPower, 1)) // power pressed
	stream.Write(event(0, 0, 0))            // EV_SYN
	stream.Write(event(evKey, keyPower, 0)) // power released
	stream.Write(event(evKey, keyPower, 1)) // pressed again
	dev := filepath.Join(dir, "event0")
	if err := os.WriteFile(dev, stream.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mice"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	devs, err := EventDevices(dir)
	if err != nil || !reflect.DeepEqual(devs, []string{dev}) {
		t.Fatalf("EventDevices = %q, %v", devs, err)
	}
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	presses := 0
	err = WatchPowerKey(f, func() { presses++ })
	if !errors.Is(err, io.EOF) || presses != 2 {
		t.Fatalf("presses %d, err %v; want 2 and EOF", presses, err)
	}
	if IsPowerPress(event(evKey, keyPower, 1)[:10]) {
		t.Error("a short record counted as a press")
	}
}
