package spec

import (
	"errors"
	"strings"
	"testing"

	"github.com/kiln-os/kiln/config"
)

func TestOnbootTimeoutAnnotation(t *testing.T) {
	cases := []struct {
		name    string
		yaml    map[string]string
		label   map[string]string
		wantErr string // "" for accepted
	}{
		{name: "none"},
		{name: "duration", yaml: map[string]string{AnnotationOnbootTimeout: "90s"}},
		{name: "no limit", yaml: map[string]string{AnnotationOnbootTimeout: "0"}},
		{name: "other annotations untouched", yaml: map[string]string{"kiln.optional": "true", "x": "not a duration"}},
		{name: "not a duration", yaml: map[string]string{AnnotationOnbootTimeout: "soon"}, wantErr: `kiln.onboot.timeout: "soon" is not a duration`},
		{name: "bare number", yaml: map[string]string{AnnotationOnbootTimeout: "300"}, wantErr: `"300" is not a duration`},
		{name: "empty", yaml: map[string]string{AnnotationOnbootTimeout: ""}, wantErr: `"" is not a duration`},
		{name: "negative", yaml: map[string]string{AnnotationOnbootTimeout: "-1m"}, wantErr: `"-1m" is negative`},
		{name: "from the label", label: map[string]string{AnnotationOnbootTimeout: "1 minute"}, wantErr: `"1 minute" is not a duration`},
		{name: "the YAML replaces a bad label", yaml: map[string]string{AnnotationOnbootTimeout: "1m"}, label: map[string]string{AnnotationOnbootTimeout: "bad"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := Input{Name: "slow", YAML: &config.Image{}, Label: &config.Image{}, Image: testImage(), IDs: testIDs(t)}
			if c.yaml != nil {
				in.YAML.Annotations = &c.yaml
			}
			if c.label != nil {
				in.Label.Annotations = &c.label
			}
			s, _, err := Generate(in)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("Generate: %v", err)
				}
				if c.yaml != nil && s.Annotations[AnnotationOnbootTimeout] != c.yaml[AnnotationOnbootTimeout] {
					t.Errorf("annotation = %q, want %q", s.Annotations[AnnotationOnbootTimeout], c.yaml[AnnotationOnbootTimeout])
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "annotations" || fe.Container != "slow" {
				t.Fatalf("got %v, want a *FieldError for annotations of container slow", err)
			}
			if !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("error %q lacks %q", err, c.wantErr)
			}
		})
	}
}
