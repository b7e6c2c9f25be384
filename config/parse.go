package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// LoadResult is a loaded, merged and validated system description.
type LoadResult struct {
	System *System
	// Warnings are problems that do not stop a build (a trust section, a container name used
	// twice outside services), sorted by position. They use the Error type for its position.
	Warnings []*Error
}

// Load reads, parses and merges the files at paths in order (later files extend earlier
// ones, see Merge), then validates the result. Reading "-" as standard input is the
// caller's business: read it and call Parse.
//
// Every decoding error of every file is reported at once; validation runs only when all files
// decoded cleanly, so that a value that failed to decode is not also reported as missing.
func Load(paths ...string) (*LoadResult, error) {
	if len(paths) == 0 {
		return nil, errors.New("config: no files to load")
	}
	var (
		merged *System
		errs   []*Error
	)
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		sys, perrs := parse(p, data)
		errs = append(errs, perrs...)
		merged = Merge(merged, sys)
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs, paths)
	}
	if err := merged.Validate(); err != nil {
		return nil, err
	}
	return &LoadResult{System: merged, Warnings: merged.Warnings()}, nil
}

// Parse decodes one system description strictly: unknown keys, values of the wrong type,
// duplicate keys and out-of-range integers are errors, each reported as an *Error with
// file:line:column (file is used only in messages and positions). All errors are returned at
// once. Parse does not validate: see Validate, which needs the merged description.
func Parse(file string, data []byte) (*System, error) {
	sys, errs := parse(file, data)
	if len(errs) > 0 {
		return nil, joinErrors(errs, []string{file})
	}
	return sys, nil
}

func parse(file string, data []byte) (*System, []*Error) {
	sys := &System{files: []string{file}}
	root, perr := parseYAML(file, data)
	if perr != nil {
		return sys, []*Error{perr}
	}
	if root == nil {
		return sys, nil
	}
	d := newDecoder(file)
	if r := d.resolve(root, ""); r != nil && !isNull(r) && r.Kind != yaml.MappingNode {
		d.errorf(root, "", "expected a mapping of sections (kernel, init, onboot, ...), got %s", describeNode(r))
		return sys, d.errs
	}
	d.decode(root, reflect.ValueOf(sys).Elem(), "")
	if len(sys.Init) > 0 {
		sys.initPos = make([]Position, len(sys.Init))
		for i := range sys.Init {
			sys.initPos[i] = d.top[indexPath("init", i)]
		}
	}
	if sys.Trust != nil {
		sys.warnings = append(sys.warnings, newError(d.top["trust"], "trust",
			"content trust is not supported and the section is ignored; kiln pins every image by digest instead"))
	}
	if len(d.errs) > 0 {
		return sys, d.errs
	}
	return sys, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML parses exactly one YAML document and returns its root node, or nil for an empty
// document.
func parseYAML(file string, data []byte) (root *yaml.Node, perr *Error) {
	defer func() {
		// yaml.v3 is not known to panic on any input since v3.0.0; should it, report an error
		// rather than take the caller down.
		if r := recover(); r != nil {
			root, perr = nil, &Error{File: file, Msg: fmt.Sprintf("invalid YAML: parser failure: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, syntaxError(file, err)
		}
		return nil, &Error{File: file, Line: extra.Line, Column: extra.Column, Msg: "more than one YAML document; put one system description per file"}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

func syntaxError(file string, err error) *Error {
	e := &Error{File: file, Msg: "invalid YAML: " + err.Error()}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = "invalid YAML: " + m[2]
	}
	return e
}

// ParseImageLabel decodes the org.mobyproject.config label of an image (JSON, read as YAML)
// with the same strict rules as a YAML file, and checks its values. source names the label in
// messages, e.g. "docker.io/library/sshd:1.0 label org.mobyproject.config". The label may not
// set name or image.
func ParseImageLabel(source string, data []byte) (*Image, error) {
	root, perr := parseYAML(source, data)
	if perr != nil {
		return nil, joinErrors([]*Error{perr}, nil)
	}
	img := &Image{}
	if root == nil {
		return img, nil
	}
	d := newDecoder(source)
	if r := d.resolve(root, ""); r != nil && r.Kind != yaml.MappingNode {
		d.errorf(root, "", "expected a mapping (a JSON object), got %s", describeNode(r))
		return nil, joinErrors(d.errs, nil)
	}
	d.decode(root, reflect.ValueOf(img).Elem(), "")
	if len(d.errs) > 0 {
		return nil, joinErrors(d.errs, nil)
	}
	v := &validator{}
	v.image(img, locOf(img.src, img.Pos, ""), nil, true)
	if len(v.errs) > 0 {
		return nil, joinErrors(v.errs, nil)
	}
	return img, nil
}
