package main

import (
	"fmt"
	"regexp"
	"slices"
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
	// detail: a part of the next kiln-init step, shown but not summed (services start at
	// once, so their times overlap).
	detail bool
}

var (
	printkTime = regexp.MustCompile(`^\[\s*(\d+\.\d+)\]\s*(.*)$`)
	initStep   = regexp.MustCompile(`^kiln-init: step (\S+) (?:ok|failed)[^(]*\((\d+)ms\)`)
	svcStart   = regexp.MustCompile(`^kiln-init: service (\S+) started \(containerd: task (\d+)ms, start (\d+)ms\)`)
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
		b.rows = append(b.rows, budgetRow{part: "QEMU, firmware, kernel decompression: to its first line (host)", d: firstLine})
	}
	last := 0.0
	next := 0
	started := map[string]bool{}
	for _, l := range lines {
		l = strings.TrimRight(l, "\r")
		if m := printkTime.FindStringSubmatch(l); m != nil && next < len(kernelMarks) {
			if strings.HasPrefix(m[2], kernelMarks[next].prefix) {
				t, _ := strconv.ParseFloat(m[1], 64)
				b.rows = append(b.rows, budgetRow{part: kernelMarks[next].part, d: time.Duration((t - last) * float64(time.Second))})
				last = t
				next++
			}
			continue
		}
		if m := svcStart.FindStringSubmatch(l); m != nil && !started[m[1]] {
			started[m[1]] = true
			task, _ := strconv.Atoi(m[2])
			start, _ := strconv.Atoi(m[3])
			b.rows = append(b.rows,
				budgetRow{"  service " + m[1] + ": containerd's task (its shim started, runc create)", time.Duration(task) * time.Millisecond, true},
				budgetRow{"  service " + m[1] + ": containerd's start (runc start)", time.Duration(start) * time.Millisecond, true})
			continue
		}
		if m := initStep.FindStringSubmatch(l); m != nil {
			ms, _ := strconv.Atoi(m[2])
			b.rows = append(b.rows, budgetRow{part: "kiln-init step " + m[1], d: time.Duration(ms) * time.Millisecond})
		}
	}
	return b
}

// total is the sum of every part.
func (b budget) total() time.Duration {
	var t time.Duration
	for _, r := range b.rows {
		if !r.detail {
			t += r.d
		}
	}
	return t
}

// String prints the budget as aligned rows with a running total.
func (b budget) String() string {
	var s strings.Builder
	var sum time.Duration
	for _, r := range b.rows {
		if r.detail {
			fmt.Fprintf(&s, "  %-64s %7.2f s\n", r.part, r.d.Seconds())
			continue
		}
		sum += r.d
		fmt.Fprintf(&s, "  %-64s %7.2f s  (%6.2f s)\n", r.part, r.d.Seconds(), sum.Seconds())
	}
	fmt.Fprintf(&s, "  %-64s %7.2f s\n", "sum", b.total().Seconds())
	return s.String()
}

// median of ds (the mean of the middle two for an even count); 0 for none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// pairsTable is the markdown table of -pairs: the median of every budget part of the
// system's boots (in the order of the first boot), the medians of its milestone "all
// services up" and of the bare kernel's marker, and their ratio.
func pairsTable(name, arch, mem string, bare, full []bootResult) string {
	var order []string
	parts := map[string][]time.Duration{}
	detail := map[string]bool{}
	for _, r := range full {
		seen := map[string]int{}
		for _, row := range r.budget.rows {
			key := row.part
			if seen[key]++; seen[key] > 1 {
				key = fmt.Sprintf("%s (%d)", row.part, seen[row.part])
			}
			if _, ok := parts[key]; !ok {
				order = append(order, key)
			}
			detail[key] = row.detail
			parts[key] = append(parts[key], row.d)
		}
	}
	var ups, markers []time.Duration
	for _, r := range full {
		ups = append(ups, r.at("all services up"))
	}
	for _, r := range bare {
		markers = append(markers, r.at("marker"))
	}
	var s strings.Builder
	if arch == "" {
		arch = "the kernel's architecture"
	}
	cpus := "1 CPU"
	if guestCPUs > 1 {
		cpus = fmt.Sprintf("%d CPUs", guestCPUs)
	}
	fmt.Fprintf(&s, "\n%s on %s, %s of memory, %s: %d interleaved pairs of boots (bare kernel, then the system), medians\n\n",
		name, arch, mem, cpus, len(full))
	s.WriteString("| part | median |\n|---|---|\n")
	var sum time.Duration
	for _, k := range order {
		d := median(parts[k])
		if detail[k] {
			fmt.Fprintf(&s, "| &nbsp;&nbsp;%s (part of the services step, not summed) | %.2f s |\n", strings.TrimSpace(k), d.Seconds())
			continue
		}
		sum += d
		fmt.Fprintf(&s, "| %s | %.2f s |\n", k, d.Seconds())
	}
	up, marker := median(ups), median(markers)
	fmt.Fprintf(&s, "| sum of the parts | %.2f s |\n", sum.Seconds())
	fmt.Fprintf(&s, "| **all services up** (from QEMU's start) | **%.2f s** |\n", up.Seconds())
	fmt.Fprintf(&s, "| **bare kernel to its marker** | **%.2f s** |\n", marker.Seconds())
	if marker > 0 {
		fmt.Fprintf(&s, "| ratio | %.2fx |\n", float64(up)/float64(marker))
	}
	return s.String()
}
