package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadHostname(t *testing.T) {
	tests := []struct {
		name, content string
		write         bool
		want, wantErr string
	}{
		{"missing file", "", false, "kiln", ""},
		{"empty file", "\n", true, "kiln", ""},
		{"first line trimmed", "  builder-1 \nignored\n", true, "builder-1", ""},
		{"bad character", "my_host\n", true, "", `has '_'`},
		{"too long", strings.Repeat("a", 65), true, "", "1 to 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "hostname")
			if tt.write {
				if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadHostname(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), p) {
					t.Fatalf("err = %v, want %q naming the file", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
