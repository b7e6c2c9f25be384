package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A budget splits a boot into its parts, read from the console: the kernel's own timestamps
// (printk's "[ seconds]") up to the start of /init, then the time kiln-init reports for each
// of its steps. Host time covers what the guest cannot see (QEMU and firmware before the
// kernel's first line).
type budget struct {
	rows []budgetRow
}

type budgetRow struct {
	part string
	d    time.Duration
}

var (
	printkTime = regexp.MustCompile(`^\[\s*(\d+\.\d+)\]\s*(.*)$`)
	initStep   = regexp.MustCompile(`^kiln-init: step (\S+) (?:ok|failed)[^(]*\((\d+)ms\)`)
)

// kernelMark is a kernel message that ends one part of the kernel's boot.
var kernelMarks = []struct{ prefix, part string }{
	{"Trying to unpack rootfs image as initramfs", "kernel, until it unpacks the initramfs"},
	{"Freeing initrd memory", "kernel: unpacking the initramfs"},
	{"Run /init as init process", "kernel, after the initramfs until /init"},
}

// parseBudget reads the console lines of one boot. firstLine is the host time from QEMU's
// start to the kernel's first line (0 when unknown).
func parseBudget(lines []string, firstLine time.Duration) budget {
	var b budget
	if firstLine > 0 {
		b.rows = append(b.rows, budgetRow{"QEMU, firmware, kernel decompression: to its first line (host)", firstLine})
	}
	last := 0.0
	next := 0
	for _, l := range lines {
		l = strings.TrimRight(l, "\r")
		if m := printkTime.FindStringSubmatch(l); m != nil && next < len(kernelMarks) {
			if strings.HasPrefix(m[2], kernelMarks[next].prefix) {
				t, _ := strconv.ParseFloat(m[1], 64)
				b.rows = append(b.rows, budgetRow{kernelMarks[next].part, time.Duration((t - last) * float64(time.Second))})
				last = t
				next++
			}
			continue
		}
		if m := initStep.FindStringSubmatch(l); m != nil {
			ms, _ := strconv.Atoi(m[2])
			b.rows = append(b.rows, budgetRow{"kiln-init step " + m[1], time.Duration(ms) * time.Millisecond})
		}
	}
	return b
}

// total is the sum of every part.
func (b budget) total() time.Duration {
	var t time.Duration
	for _, r := range b.rows {
		t += r.d
	}
	return t
}

// String prints the budget as aligned rows with a running total.
func (b budget) String() string {
	var s strings.Builder
	var sum time.Duration
	for _, r := range b.rows {
		sum += r.d
		fmt.Fprintf(&s, "  %-64s %7.2f s  (%6.2f s)\n", r.part, r.d.Seconds(), sum.Seconds())
	}
	fmt.Fprintf(&s, "  %-64s %7.2f s\n", "sum", b.total().Seconds())
	return s.String()
}
