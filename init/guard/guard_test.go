package guard

import (
	"errors"
	"strings"
	"testing"
)

func TestSafe(t *testing.T) {
	sentinel := errors.New("plain failure")
	if err := Safe("x", func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Fatalf("Safe lost the error: %v", err)
	}
	err := Safe("step mount", func() error {
		panic("boom")
	})
	if err == nil || !strings.Contains(err.Error(), "step mount panicked") || !strings.Contains(err.Error(), "guard_test.go") {
		t.Fatalf("Safe did not turn the panic into an error with a stack: %v", err)
	}
}

func TestGoReports(t *testing.T) {
	type report struct {
		name  string
		value any
		stack string
	}
	got := make(chan report, 1)
	Go("worker", func(name string, v any, stack []byte) { got <- report{name, v, string(stack)} }, func() {
		panic("worker broke")
	})
	r := <-got
	if r.name != "worker" || r.value != "worker broke" || !strings.Contains(r.stack, "guard_test.go") {
		t.Fatalf("report: %+v", r)
	}
}
