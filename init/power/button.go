package power

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Linux input event codes (linux/input-event-codes.h).
const (
	evKey    = 0x01
	keyPower = 116
)

// EventSize is the size of struct input_event on 64-bit Linux: a timeval (two 64-bit words),
// then type (16 bits), code (16 bits) and value (32 bits), in the machine's byte order. All of
// kiln's architectures are 64-bit.
const EventSize = 24

// IsPowerPress reports whether one raw input event record is a press of the power key.
func IsPowerPress(rec []byte) bool {
	if len(rec) != EventSize {
		return false
	}
	typ := binary.NativeEndian.Uint16(rec[16:18])
	code := binary.NativeEndian.Uint16(rec[18:20])
	value := int32(binary.NativeEndian.Uint32(rec[20:24]))
	return typ == evKey && code == keyPower && value == 1
}

// WatchPowerKey reads input events from r until it fails and calls press for each press of
// the power key. It returns the read error (io.EOF at the end of a file).
func WatchPowerKey(r io.Reader, press func()) error {
	rec := make([]byte, EventSize)
	for {
		if _, err := io.ReadFull(r, rec); err != nil {
			return err
		}
		if IsPowerPress(rec) {
			press()
		}
	}
}

// EventDevices lists the event devices in dir (/dev/input), sorted.
func EventDevices(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list input devices in %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "event") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}
