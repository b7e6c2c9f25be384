package boot

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSplitCmdline(t *testing.T) {
	tests := map[string][]string{
		"":                                   nil,
		"console=ttyS0   quiet\n":            {"console=ttyS0", "quiet"},
		`a="b c" d`:                          {"a=b c", "d"},
		`"x y"`:                              {"x y"},
		"kiln.debug\tkiln.onfail=wait":       {"kiln.debug", "kiln.onfail=wait"},
		`dyndbg="file foo.c +p" root=/dev/x`: {"dyndbg=file foo.c +p", "root=/dev/x"},
	}
	for in, want := range tests {
		if got := SplitCmdline(in); !reflect.DeepEqual(got, want) {
			t.Errorf("SplitCmdline(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		line string
		want Cmdline
		warn string
	}{
		{"console=ttyS0 panic=1", Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{}, OnbootTimeout: DefaultOnbootTimeout}, ""},
		{"kiln.debug kiln.onfail=wait", Cmdline{Debug: true, OnFail: OnFailWait, Params: map[string]string{}, OnbootTimeout: DefaultOnbootTimeout}, ""},
		{"kiln.debug=0 kiln.onfail=continue", Cmdline{OnFail: OnFailContinue, Params: map[string]string{}, OnbootTimeout: DefaultOnbootTimeout}, ""},
		{"kiln.modules=virtio_net,,ext4 kiln.modules=overlay",
			Cmdline{OnFail: OnFailPoweroff, Modules: []string{"virtio_net", "ext4", "overlay"}, Params: map[string]string{}, OnbootTimeout: DefaultOnbootTimeout}, ""},
		{`virtio-net.napi_tx=1 virtio_net.x="a b" nomodeset`,
			Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{"virtio_net": `napi_tx=1 x="a b"`}, OnbootTimeout: DefaultOnbootTimeout}, ""},
		{"kiln.onfail=shell", Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{}, OnbootTimeout: DefaultOnbootTimeout}, "expected poweroff, reboot, wait or continue"},
		{"kiln.debug=maybe", Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{}, OnbootTimeout: DefaultOnbootTimeout}, "kiln.debug=maybe"},
		{"kiln.onboot.timeout=90s", Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{}, OnbootTimeout: 90 * time.Second}, ""},
		{"kiln.onboot.timeout=0", Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{}}, ""},
		{"kiln.onboot.timeout=soon", Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{}, OnbootTimeout: DefaultOnbootTimeout},
			`kiln.onboot.timeout=soon: "soon" is not a duration such as 90s or 5m`},
		{"kiln.onboot.timeout=-5m", Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{}, OnbootTimeout: DefaultOnbootTimeout},
			"is negative; using 5m0s"},
		{"kiln.onboot.timeout", Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{}, OnbootTimeout: DefaultOnbootTimeout},
			"kiln.onboot.timeout=: "},
		{"kiln.verbose", Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{}, OnbootTimeout: DefaultOnbootTimeout}, "unknown switch kiln.verbose"},
		{"kiln.hostname=n1 kiln.net=eth0 kiln.console=shell", Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{}, OnbootTimeout: DefaultOnbootTimeout}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, warns := ParseCmdline(tt.line)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			all := strings.Join(warns, "\n")
			if (tt.warn == "") != (len(warns) == 0) || !strings.Contains(all, tt.warn) {
				t.Errorf("warnings %q, want %q", warns, tt.warn)
			}
		})
	}
}
