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
		"kiln-init: service hello started (containerd: task 900ms, start 250ms)",
		"kiln-init: service hello started (containerd: task 1ms, start 1ms)",
		"kiln-init: step services ok (3224ms)",
		"[   11.716258] random: crng init done",
	}
	b := parseBudget(console, 1500*time.Millisecond)
	want := []budgetRow{
		{"QEMU, firmware, kernel decompression: to its first line (host)", 1500 * time.Millisecond, false},
		{"kernel, until it unpacks the initramfs", 988680 * time.Microsecond, false},
		{"kernel: unpacking the initramfs", 4307413 * time.Microsecond, false},
		{"kernel, after the initramfs until /init", 466587 * time.Microsecond, false},
		{"kiln-init step switch-root", 3632 * time.Millisecond, false},
		{"kiln-init step mount", 7 * time.Millisecond, false},
		{"  service hello: containerd's task (its shim started, runc create)", 900 * time.Millisecond, true},
		{"  service hello: containerd's start (runc start)", 250 * time.Millisecond, true},
		{"kiln-init step services", 3224 * time.Millisecond, false},
	}
	if len(b.rows) != len(want) {
		t.Fatalf("rows:\n%s", b)
	}
	for i, r := range b.rows {
		if r.part != want[i].part || (r.d-want[i].d).Abs() > time.Microsecond || r.detail != want[i].detail {
			t.Errorf("row %d: %q %v, want %q %v", i, r.part, r.d, want[i].part, want[i].d)
		}
	}
	if got := b.String(); !strings.Contains(got, "sum") || !strings.Contains(got, "14.13 s") {
		t.Errorf("String():\n%s", got)
	}
}

// The -pairs table takes the median of each part over the system's boots (a part seen twice
// in one boot is numbered), of "all services up" and of the bare marker, and their ratio.
func TestPairsTable(t *testing.T) {
	sys := func(unpack, svc, up float64) bootResult {
		sec := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
		return bootResult{
			marks: []budgetRow{{part: "onboot ran", d: sec(up - 1)}, {part: "all services up", d: sec(up)}},
			budget: budget{rows: []budgetRow{{part: "kernel: unpacking the initramfs", d: sec(unpack)},
				{part: "  service a: containerd's start (runc start)", d: sec(9), detail: true},
				{part: "kiln-init step services", d: sec(svc)}, {part: "kiln-init step services", d: sec(0.5)}}},
		}
	}
	bare := func(m float64) bootResult {
		return bootResult{marks: []budgetRow{{part: "marker", d: time.Duration(m * float64(time.Second))}}}
	}
	got := pairsTable("minimal-amd64", "amd64", "2048M",
		[]bootResult{bare(3), bare(4), bare(3.5)},
		[]bootResult{sys(1, 2, 7), sys(3, 1, 9), sys(2, 4, 8)})
	for _, want := range []string{
		"3 interleaved pairs",
		"| kernel: unpacking the initramfs | 2.00 s |",
		"| kiln-init step services | 2.00 s |",
		"| kiln-init step services (2) | 0.50 s |",
		"| &nbsp;&nbsp;service a: containerd's start (runc start) (part of the services step, not summed) | 9.00 s |",
		"| sum of the parts | 4.50 s |",
		"| **all services up** (from QEMU's start) | **8.00 s** |",
		"| **bare kernel to its marker** | **3.50 s** |",
		"| ratio | 2.29x |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if m := median([]time.Duration{4, 1, 3, 2}); m != 2 {
		t.Errorf("median of 1..4 = %v, want 2 (the mean of the middle two, in integer nanoseconds)", m)
	}
}
