package boot

import (
	"reflect"
	"strings"
	"testing"
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
		{"console=ttyS0 panic=1", Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{}}, ""},
		{"kiln.debug kiln.onfail=wait", Cmdline{Debug: true, OnFail: OnFailWait, Params: map[string]string{}}, ""},
		{"kiln.debug=0 kiln.onfail=continue", Cmdline{OnFail: OnFailContinue, Params: map[string]string{}}, ""},
		{"kiln.modules=virtio_net,,ext4 kiln.modules=overlay",
			Cmdline{OnFail: OnFailPoweroff, Modules: []string{"virtio_net", "ext4", "overlay"}, Params: map[string]string{}}, ""},
		{`virtio-net.napi_tx=1 virtio_net.x="a b" nomodeset`,
			Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{"virtio_net": `napi_tx=1 x="a b"`}}, ""},
		{"kiln.onfail=shell", Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{}}, "expected poweroff, reboot, wait or continue"},
		{"kiln.debug=maybe", Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{}}, "kiln.debug=maybe"},
		{"kiln.verbose", Cmdline{OnFail: OnFailPoweroff, Params: map[string]string{}}, "unknown switch kiln.verbose"},
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
