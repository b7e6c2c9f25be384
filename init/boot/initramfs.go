package boot

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// unpackFailed is what the kernel logs when it could not unpack the whole initramfs (for
// example when its files do not fit in the rootfs, a tmpfs of half the memory): the boot
// would go on with whatever part of the system was unpacked, silently missing the rest.
var unpackFailed = []byte("Initramfs unpacking failed")

// checkInitramfs fails the boot when the kernel's log says the initramfs was not unpacked
// completely. A kernel log that cannot be read is not an error: the check is then skipped.
func checkInitramfs(_ context.Context, s *State) error {
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil || n <= 0 {
		s.Console.Debugf("cannot read the kernel log (%v); not checking the initramfs", err)
		return nil
	}
	buf := make([]byte, n)
	n, err = unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		s.Console.Debugf("cannot read the kernel log (%v); not checking the initramfs", err)
		return nil
	}
	return initramfsError(buf[:n])
}

// initramfsError returns the boot error for a kernel log that reports a failed unpack.
func initramfsError(log []byte) error {
	i := bytes.Index(log, unpackFailed)
	if i < 0 {
		return nil
	}
	line := log[i:]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	return fmt.Errorf("the kernel could not unpack the whole initramfs (%q), so part of the system is missing: "+
		"give the machine more memory (the initramfs unpacks into a tmpfs of half the RAM), add rootfstype=ramfs "+
		"to the kernel command line (a root with no size limit), or make the system smaller: %w",
		string(bytes.TrimSpace(line)), errIncomplete)
}

var errIncomplete = errors.New("incomplete initramfs")
