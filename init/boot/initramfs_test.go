package boot

import (
	"errors"
	"strings"
	"testing"
)

func TestInitramfsError(t *testing.T) {
	ok := "<6>[    0.898586] Trying to unpack rootfs image as initramfs...\n<6>[    2.022178] Freeing initrd memory: 45744K\n"
	if err := initramfsError([]byte(ok)); err != nil {
		t.Fatalf("a complete unpack: %v", err)
	}
	bad := ok[:60] + "\n<0>[    2.008751] Initramfs unpacking failed: write error\n<6>[    2.022178] Freeing initrd memory: 45744K\n"
	err := initramfsError([]byte(bad))
	if err == nil || !errors.Is(err, errIncomplete) {
		t.Fatalf("a failed unpack: %v", err)
	}
	for _, want := range []string{`"Initramfs unpacking failed: write error"`, "more memory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
