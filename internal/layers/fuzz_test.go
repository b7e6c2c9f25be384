package layers

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"strings"
	"testing"
)

// fuzzInput encodes one or two layers for FuzzFlatten: a flag byte (bit 0: use a prefix),
// the length of the first layer (uint16, modulo what is left) and the layers' bytes. When
// the first layer does not take everything, the rest is a second layer.
func fuzzInput(prefix bool, first []byte, second []byte) []byte {
	b := []byte{0, 0, 0}
	if prefix {
		b[0] = 1
	}
	binary.LittleEndian.PutUint16(b[1:], uint16(len(first)))
	b = append(b, first...)
	return append(b, second...)
}

func FuzzFlatten(f *testing.F) {
	seeds := [][2][]ent{
		{{dir("a"), file("a/b", "b"), hardlink("c", "a/b"), symlink("s", "a")}, {whiteout("a/b"), opaque("a"), file("a/n", "n")}},
		{{file("./x", "x"), dir("/y/"), device(tar.TypeChar, "y/null", 1, 3), fifo("p")}, {file("y", "now file"), hardlink("z", "x")}},
		{{dir("."), file("a", "a").xattr("user.x", "1"), hardlink("b", "a")}, {whiteout("a"), dir("a")}},
		{{file("a/b/c", "c")}, nil},
	}
	for _, s := range seeds {
		first := tarBytes(f, s[0])
		var second []byte
		if s[1] != nil {
			second = tarBytes(f, s[1])
		}
		f.Add(fuzzInput(false, first, second))
		f.Add(fuzzInput(true, first, second))
	}
	tmp := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		prefix := ""
		if data[0]&1 != 0 {
			prefix = "p"
		}
		rest := data[3:]
		n := int(binary.LittleEndian.Uint16(data[1:3])) % (len(rest) + 1)
		layers := []Layer{&memLayer{b: rest[:n]}}
		if n < len(rest) {
			layers = append(layers, &memLayer{b: rest[n:]})
		}
		var opts []Option
		if prefix != "" {
			opts = append(opts, WithPrefix(prefix))
		}
		opts = append(opts, WithTempDir(tmp))
		rec := &recorder{keep: 1 << 16, maxSize: 1 << 20}
		if _, err := Flatten(context.Background(), layers, rec, opts...); err != nil {
			return
		}
		if err := checkInvariants(rec.entries, prefix); err != nil {
			t.Fatal(err)
		}
		again := &recorder{keep: 1 << 16, maxSize: 1 << 20}
		if _, err := Flatten(context.Background(), layers, again, opts...); err != nil {
			t.Fatalf("second run failed: %v", err)
		}
		if a, b := strings.Join(rec.listing(), "\n"), strings.Join(again.listing(), "\n"); a != b {
			t.Fatalf("not deterministic:\n%s\n---\n%s", a, b)
		}
	})
}
