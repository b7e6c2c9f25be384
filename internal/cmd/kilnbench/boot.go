package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// benchBoot builds -boot-system with each initramfs compression from -boot-cache (pinned by
// -boot-lock, never pulling) and boots each -boot-runs times with internal/cmd/bootcheck,
// then the kernel alone (-bare).
func benchBoot(c config, t *table) error {
	lock, err := os.ReadFile(c.bootLock)
	if err != nil {
		return err
	}
	name := strings.TrimSuffix(filepath.Base(c.bootSystem), filepath.Ext(c.bootSystem))
	var prefix string
	for _, comp := range []string{"gzip", "zstd"} {
		out, err := filepath.Abs(filepath.Join(c.dir, "boot-"+comp))
		if err != nil {
			return err
		}
		if err := os.RemoveAll(out); err != nil {
			return err
		}
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		prefix = filepath.Join(out, name)
		if err := os.WriteFile(prefix+".lock.yml", lock, 0o644); err != nil {
			return err
		}
		if _, err := measure(c.kiln, []string{"build", "-q", "-pull=false", "-cache", c.bootCache,
			"-format", "kernel+initrd", "-initrd-compression", comp, "-dir", out, c.bootSystem}); err != nil {
			return err
		}
		fi, err := os.Stat(prefix + "-initrd.img")
		if err != nil {
			return err
		}
		what := fmt.Sprintf("boot %s, %s initramfs (QEMU, software emulation)", filepath.Base(c.bootSystem), comp)
		if err := boots(c, t, what, fmtSize(fi.Size()), "-prefix", prefix); err != nil {
			return err
		}
	}
	return boots(c, t, "boot of the kernel alone to a marker (-bare)", "", "-bare", "-prefix", prefix)
}

var milestoneLine = regexp.MustCompile(`(?m)^\s+(\S.*?)\s+([\d.]+) s$`)

// boots runs bootcheck -quiet ARGS c.bootRuns times and adds a row per milestone with its
// median time from QEMU's start.
func boots(c config, t *table, what, size string, args ...string) error {
	load := loadAvg()
	times := map[string][]time.Duration{}
	var order []string
	for range c.bootRuns {
		out, err := goRun("./internal/cmd/bootcheck", append([]string{"-quiet"}, args...)...)
		if err != nil {
			return err
		}
		for _, m := range milestoneLine.FindAllStringSubmatch(out, -1) {
			sec, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				continue
			}
			if _, ok := times[m[1]]; !ok {
				order = append(order, m[1])
			}
			times[m[1]] = append(times[m[1]], time.Duration(sec*float64(time.Second)))
		}
	}
	if len(order) == 0 {
		return fmt.Errorf("no milestones in bootcheck's output")
	}
	for _, m := range order {
		switch m {
		case "onboot ran", "all services up", "QEMU exited 0", "marker":
		default:
			continue
		}
		t.add(row{what: what + ": " + m, median: fmt.Sprintf("%s (%d runs)", fmtDuration(median(times[m])), len(times[m])),
			output: size, load: load})
	}
	return nil
}
