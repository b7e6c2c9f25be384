package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseBudget(t *testing.T) {
	console := []string{
		"[    0.000000] Linux version 6.1.0-56-amd64",
		"[    0.988680] Trying to unpack rootfs image as initramfs...",
		"[    5.296093] Freeing initrd memory: 120528K",
		"[    5.762680] Run /init as init process\r",
		"kiln-init: starting",
		"kiln-init: step switch-root ok (3632ms)",
		"kiln-init: step mount ok (7ms)",
		"kiln-init: onboot hello-onboot exited 0",
		"kiln-init: step services ok (3224ms)",
		"[   11.716258] random: crng init done",
	}
	b := parseBudget(console, 1500*time.Millisecond)
	want := []budgetRow{
		{"QEMU, firmware, kernel decompression: to its first line (host)", 1500 * time.Millisecond},
		{"kernel, until it unpacks the initramfs", 988680 * time.Microsecond},
		{"kernel: unpacking the initramfs", 4307413 * time.Microsecond},
		{"kernel, after the initramfs until /init", 466587 * time.Microsecond},
		{"kiln-init step switch-root", 3632 * time.Millisecond},
		{"kiln-init step mount", 7 * time.Millisecond},
		{"kiln-init step services", 3224 * time.Millisecond},
	}
	if len(b.rows) != len(want) {
		t.Fatalf("rows:\n%s", b)
	}
	for i, r := range b.rows {
		if r.part != want[i].part || (r.d-want[i].d).Abs() > time.Microsecond {
			t.Errorf("row %d: %q %v, want %q %v", i, r.part, r.d, want[i].part, want[i].d)
		}
	}
	if got := b.String(); !strings.Contains(got, "sum") || !strings.Contains(got, "14.13 s") {
		t.Errorf("String():\n%s", got)
	}
}
