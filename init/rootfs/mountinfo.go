package rootfs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// MountInfo is one line of /proc/self/mountinfo.
type MountInfo struct {
	ID, Parent int
	Root       string // the mounted directory inside its file system
	Point      string // where it is mounted
	FSType     string
	Source     string
}

// ParseMountInfo reads the format of /proc/PID/mountinfo (see proc(5)).
func ParseMountInfo(r io.Reader) ([]MountInfo, error) {
	var out []MountInfo
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		g := strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 2 {
			return nil, fmt.Errorf("mountinfo line %d: %q: expected \"ID PARENT MAJ:MIN ROOT POINT ... - TYPE SOURCE ...\"", n, line)
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo line %d: %q: mount ids must be numbers", n, line)
		}
		out = append(out, MountInfo{
			ID: id, Parent: parent, Root: unescape(f[3]), Point: unescape(f[4]),
			FSType: g[0], Source: unescape(g[1]),
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

// ReadMountInfo reads /proc/self/mountinfo; /proc must be mounted.
func ReadMountInfo() ([]MountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read the mount table: %w (is /proc mounted?)", err)
	}
	defer f.Close()
	return ParseMountInfo(f)
}

// unescape undoes the octal escapes (\040 for a space) the kernel writes in mountinfo paths.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// RootIsInitramfs reports whether "/" is the kernel's initial rootfs, which pivot_root cannot
// leave: the visible "/" mount (the last one listed there) is its own parent, as only the
// first mount of the namespace is. After BindRoot the visible "/" is a bind of the same
// rootfs (same type) whose parent is the initial one.
func RootIsInitramfs(mounts []MountInfo) bool {
	root := -1
	parent := -2
	for _, m := range mounts {
		if m.Point == "/" {
			root, parent = m.ID, m.Parent
		}
	}
	return root == parent
}
