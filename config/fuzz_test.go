package config

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzParse checks that no input makes Parse, Validate, Warnings or Encode panic, and that
// whatever parses encodes to YAML that parses back to the same encoding.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yml")
	more, _ := filepath.Glob("testdata/merge/*.yml")
	corpus, _ := filepath.Glob("testdata/corpus/*.yml")
	for _, p := range slices.Concat(seeds, more, corpus) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("init: &x [*x]\n"))
	f.Add([]byte("services:\n  - <<: {name: a, image: b}\n    uid: 99999999999999999999\n"))
	f.Add([]byte(`{"onboot":[{"name":"a","image":"b","sysctl":{"a":"b"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yml", data)
		if err != nil {
			return
		}
		_ = s.Validate()
		_ = s.Warnings()
		var out bytes.Buffer
		if err := s.Encode(&out); err != nil {
			t.Fatalf("Encode: %v", err)
		}
		again, err := Parse("again.yml", out.Bytes())
		if err != nil {
			t.Fatalf("encoded output does not parse: %v\n%s", err, out.Bytes())
		}
		var out2 bytes.Buffer
		if err := again.Encode(&out2); err != nil {
			t.Fatalf("Encode: %v", err)
		}
		if !bytes.Equal(out.Bytes(), out2.Bytes()) {
			t.Fatalf("round trip changed the encoding:\n%s\n---\n%s", out.Bytes(), out2.Bytes())
		}
		_, _ = ParseImageLabel("label", data)
	})
}
