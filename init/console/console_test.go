package console

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

func TestPrintf(t *testing.T) {
	var out bytes.Buffer
	c := New(&out)
	c.Printf("step %s ok (%dms)", "mount", 3)
	c.Debugf("hidden")
	c.SetDebug(true)
	c.Debugf("shown %d", 1)
	want := "kiln-init: step mount ok (3ms)\nkiln-init: shown 1\n"
	if out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}

func TestLineWriter(t *testing.T) {
	tests := []struct {
		name    string
		writes  []string
		quiet   bool
		console string
	}{
		{"whole lines", []string{"a\nb\n"}, false, "svc: a\nsvc: b\n"},
		{"split across writes", []string{"hel", "lo\nwor", "ld\n"}, false, "svc: hello\nsvc: world\n"},
		{"last line without newline is flushed", []string{"x\ny"}, false, "svc: x\nsvc: y\n"},
		{"carriage returns dropped", []string{"dos\r\n"}, false, "svc: dos\n"},
		{"empty lines kept", []string{"\n\n"}, false, "svc: \nsvc: \n"},
		{"quiet writes nothing to the console", []string{"a\nb"}, true, ""},
		{"long line cut", []string{strings.Repeat("z", maxLine+2) + "\n"}, false,
			"svc: " + strings.Repeat("z", maxLine) + "\nsvc: zz\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var con, log bytes.Buffer
			w := New(&con).Lines("svc", &log, tt.quiet)
			for _, s := range tt.writes {
				n, err := w.Write([]byte(s))
				if err != nil || n != len(s) {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			w.Flush()
			if con.String() != tt.console {
				t.Errorf("console got %q, want %q", con.String(), tt.console)
			}
			if raw := strings.Join(tt.writes, ""); log.String() != raw {
				t.Errorf("log got %q, want the raw bytes %q", log.String(), raw)
			}
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, bytes.ErrTooLarge }

func TestLineWriterLogFailureKeepsConsole(t *testing.T) {
	var con bytes.Buffer
	w := New(&con).Lines("svc", failWriter{}, false)
	_, _ = w.Write([]byte("one\n"))
	_, _ = w.Write([]byte("two\n"))
	if w.LogErr() == nil {
		t.Fatal("LogErr is nil after a failing log write")
	}
	got := con.String()
	if !strings.Contains(got, "svc: one\n") || !strings.Contains(got, "svc: two\n") || strings.Count(got, "writing its log failed") != 1 {
		t.Fatalf("console: %q", got)
	}
}

// Lines from concurrent writers sharing a console never mix.
func TestConcurrentLinesDoNotMix(t *testing.T) {
	var con bytes.Buffer
	c := New(&con)
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := c.Lines(name, nil, false)
			for range 200 {
				_, _ = w.Write([]byte("0123456789"))
				_, _ = w.Write([]byte("abcdefghij\n"))
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(con.String(), "\n"), "\n")
	if len(lines) != 600 {
		t.Fatalf("%d lines, want 600", len(lines))
	}
	for _, l := range lines {
		_, rest, ok := strings.Cut(l, ": ")
		if !ok || rest != "0123456789abcdefghij" {
			t.Fatalf("mixed line %q", l)
		}
	}
}

func TestTail(t *testing.T) {
	tail := &Tail{Max: 5}
	_, _ = tail.Write([]byte("abc"))
	if tail.String() != "abc" || tail.Truncated() {
		t.Fatalf("got %q truncated=%v", tail.String(), tail.Truncated())
	}
	_, _ = tail.Write([]byte("defg"))
	if tail.String() != "cdefg" || !tail.Truncated() {
		t.Fatalf("got %q truncated=%v", tail.String(), tail.Truncated())
	}
}
