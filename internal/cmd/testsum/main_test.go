package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSummary(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.1}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: no registry (run make tools)\n"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestB"}`,
		`{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:3: got 1, want 2\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestC","Elapsed":7}`,
		`{"Action":"output","Package":"p","Test":"TestHang","Output":"goroutine 7 [chan receive]:\n"}`,
		`{"Action":"fail","Package":"p","Elapsed":8}`,
		`go: downloading example.com/m v1.0.0`,
		`{"Action":"pass","Package":"q","Test":"TestSlow","Elapsed":9}`,
		`{"Action":"pass","Package":"q","Elapsed":9}`,
	}, "\n")
	for _, strict := range []bool{false, true} {
		var out bytes.Buffer
		s := &summary{out: &out, slow: 5e9, logs: map[key][]string{}}
		if err := s.read(strings.NewReader(in)); err != nil {
			t.Fatal(err)
		}
		if code := s.finish(strict); code != 1 {
			t.Errorf("strict=%v: exit %d, want 1 (a test failed)", strict, code)
		}
		got := out.String()
		for _, want := range []string{
			"--- FAIL p TestC (7.0s)\n    c_test.go:3: got 1, want 2\n",
			"FAIL p 8.0s",
			"--- UNFINISHED p TestHang\ngoroutine 7 [chan receive]:\n",
			"ok   q 9.0s",
			"--- PASS q TestSlow (9.0s)",
			"p TestB: b_test.go:9: no registry (run make tools)",
			"go: downloading example.com/m v1.0.0",
			"\n2 passed, 1 failed, 1 skipped\n",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("output lacks %q:\n%s", want, got)
			}
		}
		if strings.Contains(got, "=== RUN   TestA") {
			t.Errorf("a passing test's log was printed:\n%s", got)
		}
		if strict != strings.Contains(got, "under CI nothing may skip") {
			t.Errorf("strict=%v, output:\n%s", strict, got)
		}
	}
	// Skips alone fail only under CI.
	var out bytes.Buffer
	s := &summary{out: &out, slow: 5e9, logs: map[key][]string{}}
	_ = s.read(strings.NewReader(`{"Action":"skip","Package":"p","Test":"TestB"}`))
	if code := s.finish(false); code != 0 {
		t.Errorf("skip outside CI: exit %d", code)
	}
	s = &summary{out: &out, slow: 5e9, logs: map[key][]string{}}
	_ = s.read(strings.NewReader(`{"Action":"skip","Package":"p","Test":"TestB"}`))
	if code := s.finish(true); code != 1 {
		t.Errorf("skip under CI: exit %d", code)
	}
}
