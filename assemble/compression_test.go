package assemble

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/kiln-os/kiln/internal/archive"
)

// TestBuildInitrdCompression builds the same system with each initramfs compression, twice
// each: the bytes repeat, and every initramfs holds the same entries as the gzip one.
func TestBuildInitrdCompression(t *testing.T) {
	cache := seedCache(t)
	yml := writeYAML(t, systemYAML)
	f, err := LookupFormats("kernel+initrd")
	if err != nil {
		t.Fatal(err)
	}
	var wantNames []string
	var wantBodies map[string]string
	for _, c := range archive.Compressions() {
		var first []byte
		for i := range 2 {
			out := t.TempDir()
			if _, err := build(t, Options{Files: []string{yml}, Dir: out, Cache: cache, Formats: f, Compression: c}); err != nil {
				t.Fatalf("%s: %v", c, err)
			}
			data, err := os.ReadFile(InitrdFile(filepath.Join(out, "system")))
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = data
				continue
			}
			if !bytes.Equal(first, data) {
				t.Fatalf("%s: two builds gave different initramfs bytes", c)
			}
		}
		var plain []byte
		switch c {
		case archive.Gzip:
			names, bodies := listInitrd(t, writeTemp(t, first))
			wantNames, wantBodies = names, bodies
			continue
		case archive.Zstd:
			if !bytes.HasPrefix(first, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
				t.Fatalf("zstd initramfs starts % x", first[:4])
			}
			// A decoder with no stream for DecodeAll: one given a reader keeps its decoder busy
			// streaming, and DecodeAll then waits for it for ever when GOMAXPROCS is 1.
			r, err := zstd.NewReader(nil)
			if err != nil {
				t.Fatal(err)
			}
			plain, err = r.DecodeAll(first, nil)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
		case archive.None:
			plain = first
		}
		names, bodies := readArchive(t, archive.NewCpioReader(bytes.NewReader(plain)))
		if !slices.Equal(names, wantNames) || len(bodies) != len(wantBodies) || bodies["etc/motd"] != wantBodies["etc/motd"] {
			t.Errorf("%s: entries differ from gzip's:\n%s\nwant\n%s", c, strings.Join(names, "\n"), strings.Join(wantNames, "\n"))
		}
	}
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "initrd")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckCompression(t *testing.T) {
	for _, tt := range []struct {
		opt     Options
		level   int
		wantErr string
	}{
		{opt: Options{}, level: archive.DefaultGzipLevel},
		{opt: Options{GzipLevel: 9}, level: 9},
		{opt: Options{Compression: archive.Zstd}, level: archive.DefaultZstdLevel},
		{opt: Options{Compression: archive.Zstd, ZstdLevel: 4}, level: 4},
		{opt: Options{Compression: archive.None}},
		{opt: Options{GzipLevel: 12}, wantErr: "gzip level 12: expected 1 (fastest) to 9 (smallest)"},
		{opt: Options{Compression: archive.Zstd, ZstdLevel: 5}, wantErr: "zstd level 5: expected 1 (fastest) to 4 (smallest)"},
		{opt: Options{Compression: archive.Zstd, GzipLevel: 3}, wantErr: "a gzip level (3) was given with compression zstd"},
		{opt: Options{ZstdLevel: 3}, wantErr: "a zstd level (3) was given with compression gzip"},
		{opt: Options{Compression: archive.None, GzipLevel: 1}, wantErr: "compression none"},
		{opt: Options{Compression: "xz"}, wantErr: `unknown compression "xz"`},
	} {
		opt := tt.opt
		err := checkCompression(&opt)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%+v: error %v, want %q", tt.opt, err, tt.wantErr)
		case tt.wantErr == "" && err != nil:
			t.Errorf("%+v: %v", tt.opt, err)
		case tt.wantErr == "" && opt.initrdLevel() != tt.level:
			t.Errorf("%+v: level %d, want %d", tt.opt, opt.initrdLevel(), tt.level)
		}
	}
}
