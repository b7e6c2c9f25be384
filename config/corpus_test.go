package config

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestCorpus loads every file of testdata/corpus (LinuxKit-style systems written for kiln),
// checks that each is valid and survives an encode/parse round trip, and that together they
// set every field of the schema: a field added to types.go without an example here fails.
func TestCorpus(t *testing.T) {
	paths, err := filepath.Glob("testdata/corpus/*.yml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	set := map[string]bool{}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			res, err := Load(p)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			for _, w := range res.Warnings {
				if !strings.Contains(w.Msg, "is relative") && !strings.Contains(w.Msg, "content trust") {
					t.Errorf("unexpected warning: %v", w)
				}
			}
			out := encode(t, res.System)
			again, err := Parse(p, out)
			if err != nil {
				t.Fatalf("Parse of encoded output: %v\n%s", err, out)
			}
			if out2 := encode(t, again); !bytes.Equal(out, out2) {
				t.Errorf("round trip changed the encoding:\n--- first\n%s\n--- second\n%s", out, out2)
			}
			markSet(reflect.ValueOf(res.System).Elem(), set)
		})
	}
	// The schema: kiln's own types whole, and the runtime-spec types the YAML embeds down to
	// their first level (resources' own sub-structures are the spec's business).
	for _, typ := range []reflect.Type{
		reflect.TypeFor[System](), reflect.TypeFor[Kernel](), reflect.TypeFor[File](),
		reflect.TypeFor[Volume](), reflect.TypeFor[Image](), reflect.TypeFor[Device](),
		reflect.TypeFor[Runtime](), reflect.TypeFor[Interface](), reflect.TypeFor[BindNS](),
		reflect.TypeFor[Trust](), reflect.TypeFor[specs.Mount](), reflect.TypeFor[specs.LinuxIDMapping](),
		reflect.TypeFor[specs.LinuxResources](),
	} {
		for _, f := range structFields(typ) {
			if key := typ.Name() + "." + f.name; !set[key] {
				t.Errorf("no corpus file sets %s", key)
			}
		}
	}
	for _, key := range []string{"IDValue.number", "IDValue.name"} {
		if !set[key] {
			t.Errorf("no corpus file writes a uid or gid as a %s", strings.TrimPrefix(key, "IDValue."))
		}
	}
}

// markSet records "Type.field" for every field that holds a non-zero value in v, recursively.
func markSet(v reflect.Value, set map[string]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			markSet(v.Elem(), set)
		}
	case reflect.Slice:
		for i := range v.Len() {
			markSet(v.Index(i), set)
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			markSet(it.Value(), set)
		}
	case reflect.Struct:
		t := v.Type()
		if t == idValueType {
			if v.Field(0).IsNil() {
				set["IDValue.name"] = true
			} else {
				set["IDValue.number"] = true
			}
			return
		}
		for _, f := range structFields(t) {
			fv := v.Field(f.index)
			if !fv.IsZero() {
				set[t.Name()+"."+f.name] = true
			}
			markSet(fv, set)
		}
	}
}
