package qemu

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// failureLine matches the console lines in which kiln-init reports that something went wrong
// (see init/README.md): a boot step, the boot, an onboot or onshutdown container, or a
// recovered panic.
var failureLine = regexp.MustCompile(`kiln-init: (step \S+ failed \(|boot failed: |(onboot|onshutdown) \S+ failed: |BUG: )`)

// IsFailureLine reports whether line is one in which kiln-init reports a failure.
func IsFailureLine(line string) bool { return failureLine.MatchString(line) }

// CheckConsole checks the whole console of a boot: each string in want must be part of a line,
// in order (each on a line after the previous one's), and each failure line (IsFailureLine)
// must contain one of the wanted strings, so a boot test notices failures it did not ask for,
// wherever they are in the output. The error lists every problem, with line numbers.
func CheckConsole(lines []string, want []string) error {
	var problems []string
	next := 0
	for _, w := range want {
		found := false
		for i := next; i < len(lines); i++ {
			if strings.Contains(lines[i], w) {
				next, found = i+1, true
				break
			}
		}
		if !found {
			where := "anywhere"
			if next > 0 {
				where = fmt.Sprintf("after line %d", next)
			}
			problems = append(problems, fmt.Sprintf("no console line %s contains %q", where, w))
		}
	}
	for i, l := range lines {
		if !IsFailureLine(l) {
			continue
		}
		expected := false
		for _, w := range want {
			if w != "" && strings.Contains(l, w) {
				expected = true
				break
			}
		}
		if !expected {
			problems = append(problems, fmt.Sprintf("unexpected failure on console line %d: %s", i+1, l))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New("the console does not look as expected (" + fmt.Sprint(len(lines)) + " lines):\n  " + strings.Join(problems, "\n  "))
}
