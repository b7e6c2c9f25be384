package supervise

import (
	"strings"
	"testing"
	"time"
)

type exit struct {
	status int
	ranFor time.Duration
	gap    time.Duration // time since the previous exit
}

func TestPolicy(t *testing.T) {
	s := time.Second
	crash := func(n int) []exit {
		out := make([]exit, n)
		for i := range out {
			out[i] = exit{status: 1, ranFor: 100 * time.Millisecond, gap: s}
		}
		return out
	}
	tests := []struct {
		name   string
		mode   Mode
		exits  []exit
		delays []time.Duration // 0: no restart
		reason string          // of the last decision
	}{
		{"doubles up to the cap", Always, crash(8), []time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 16 * s, 30 * s, 30 * s, 30 * s}, ""},
		{"gives up after the limit within the window", Always, crash(11),
			[]time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 16 * s, 30 * s, 30 * s, 30 * s, 30 * s, 30 * s, 0}, "restarted 10 times within 5m0s; giving up"},
		{"a stable run starts the delay over", Always, []exit{
			{1, s, s}, {1, s, s}, {1, s, s}, {1, 2 * time.Minute, 2 * time.Minute}, {1, s, s},
		}, []time.Duration{1 * s, 2 * s, 4 * s, 1 * s, 2 * s}, ""},
		{"restarts older than the window do not count", Always, append(crash(10), exit{1, s, 6 * time.Minute}),
			[]time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 16 * s, 30 * s, 30 * s, 30 * s, 30 * s, 30 * s, 30 * s}, ""},
		{"on-failure restarts a failure", OnFailure, []exit{{2, s, s}}, []time.Duration{1 * s}, ""},
		{"on-failure leaves a success", OnFailure, []exit{{0, s, s}}, []time.Duration{0}, "succeeded and its restart policy is on-failure"},
		{"never", Never, []exit{{1, s, s}}, []time.Duration{0}, "restart policy is never"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy()
			p.Mode = tt.mode
			var h History
			now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
			var last Decision
			for i, e := range tt.exits {
				now = now.Add(e.gap)
				last = p.Next(&h, e.status, e.ranFor, now)
				got := last.Delay
				if !last.Restart {
					got = 0
				}
				if got != tt.delays[i] {
					t.Fatalf("exit %d: delay %v (restart %v, %q), want %v", i, got, last.Restart, last.Reason, tt.delays[i])
				}
			}
			if !strings.Contains(last.Reason, tt.reason) {
				t.Errorf("reason %q, want %q", last.Reason, tt.reason)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []string{"always", "on-failure", "never"} {
		if got, err := ParseMode(m); err != nil || string(got) != m {
			t.Errorf("ParseMode(%q) = %q, %v", m, got, err)
		}
	}
	if _, err := ParseMode("sometimes"); err == nil {
		t.Error("ParseMode accepted sometimes")
	}
}
