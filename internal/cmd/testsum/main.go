// Command testsum reads `go test -json` streams on standard input (several modules' runs may
// be concatenated) and prints what a person needs: one line per package, the output of every
// failed test, the reason of every skipped one, slow tests as they finish, and a closing line
// "N passed, N failed, N skipped". It exits 1 when a test or a build failed, and also when a
// test skipped while CI is set (internal/testenv's rule: under CI nothing may skip).
//
// Usage: go test -json ./... | testsum [-slow 5s]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/kiln-os/kiln/internal/testenv"
)

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Action     string
	Package    string
	Test       string
	Elapsed    float64
	Output     string
	ImportPath string
}

type key struct{ pkg, test string }

type summary struct {
	out                     io.Writer
	slow                    time.Duration
	logs                    map[key][]string
	passed, failed, skipped int
	skips                   []string
	failures                []string
	buildFailed             bool
}

func main() {
	slow := flag.Duration("slow", 5*time.Second, "print tests that pass after at least this long")
	flag.Parse()
	s := &summary{out: os.Stdout, slow: *slow, logs: map[key][]string{}}
	if err := s.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(1)
	}
	os.Exit(s.finish(testenv.InCI()))
}

func (s *summary) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not an event: the go command's own messages (download lines, vet errors).
			fmt.Fprintln(s.out, string(line))
			continue
		}
		s.event(e)
	}
	return sc.Err()
}

func (s *summary) event(e event) {
	k := key{e.Package, e.Test}
	switch e.Action {
	case "build-output":
		fmt.Fprint(s.out, e.Output)
	case "build-fail":
		s.buildFailed = true
		s.failures = append(s.failures, "build of "+e.ImportPath)
	case "output":
		s.logs[k] = append(s.logs[k], e.Output)
	case "pass":
		if e.Test == "" {
			fmt.Fprintf(s.out, "ok   %s %.1fs\n", e.Package, e.Elapsed)
		} else {
			s.passed++
			if time.Duration(e.Elapsed*float64(time.Second)) >= s.slow && !strings.Contains(e.Test, "/") {
				fmt.Fprintf(s.out, "     --- PASS %s %s (%.1fs)\n", e.Package, e.Test, e.Elapsed)
			}
		}
		delete(s.logs, k)
	case "skip":
		if e.Test == "" {
			fmt.Fprintf(s.out, "?    %s [no test files or all skipped]\n", e.Package)
		} else {
			s.skipped++
			s.skips = append(s.skips, fmt.Sprintf("%s %s: %s", e.Package, e.Test, skipReason(s.logs[k])))
		}
		delete(s.logs, k)
	case "fail":
		if e.Test == "" {
			fmt.Fprintf(s.out, "FAIL %s %.1fs\n", e.Package, e.Elapsed)
			if lines := s.logs[k]; len(lines) > 0 {
				// Package-level output: a panic, a TestMain failure, a timeout.
				fmt.Fprint(s.out, strings.Join(lines, ""))
			}
			// Tests that never ended (the binary timed out, panicked or was killed): their
			// output holds the reason, a goroutine dump for a timeout.
			var open []key
			for ok := range s.logs {
				if ok.pkg == e.Package && ok.test != "" {
					open = append(open, ok)
				}
			}
			sort.Slice(open, func(i, j int) bool { return open[i].test < open[j].test })
			for _, ok := range open {
				fmt.Fprintf(s.out, "--- UNFINISHED %s %s\n%s", ok.pkg, ok.test, strings.Join(s.logs[ok], ""))
				delete(s.logs, ok)
			}
			s.failures = append(s.failures, e.Package)
		} else {
			s.failed++
			fmt.Fprintf(s.out, "--- FAIL %s %s (%.1fs)\n%s", e.Package, e.Test, e.Elapsed, strings.Join(s.logs[k], ""))
			s.failures = append(s.failures, e.Package+" "+e.Test)
		}
		delete(s.logs, k)
	}
}

// skipReason is the last line a skipped test logged (t.Skip's message), trimmed.
func skipReason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "--- SKIP") || strings.HasPrefix(l, "=== ") {
			continue
		}
		return l
	}
	return "(no reason given)"
}

// finish prints the closing lines and returns the exit code.
func (s *summary) finish(strict bool) int {
	code := 0
	if len(s.skips) > 0 {
		sort.Strings(s.skips)
		fmt.Fprintln(s.out, "\nskipped:")
		for _, l := range s.skips {
			fmt.Fprintln(s.out, "  "+l)
		}
		if strict {
			fmt.Fprintln(s.out, "under CI nothing may skip: each skip above is a failure")
			code = 1
		}
	}
	if len(s.failures) > 0 {
		fmt.Fprintln(s.out, "\nfailed:")
		for _, l := range s.failures {
			fmt.Fprintln(s.out, "  "+l)
		}
		code = 1
	}
	fmt.Fprintf(s.out, "\n%d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
	return code
}
