package buildyml

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrUnknownField is wrapped by the *Error for a key that the schema does not have.
var ErrUnknownField = errors.New("unknown field")

// Error is a problem in a build.yml file, at a position when one is known.
type Error struct {
	File   string // the file, as given to Load or Parse
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based; 0 when unknown
	Path   string // the field, as a path such as "depends.docker-images.list[2]"; "" for the file
	Err    error  // what is wrong
}

// Error returns "file:line:column: path: problem", leaving out the parts that are unknown (the
// format of package config's errors).
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteString(":" + strconv.Itoa(e.Column))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the problem.
func (e *Error) Unwrap() error { return e.Err }

var (
	specType            = reflect.TypeFor[Spec]()
	nodeType            = reflect.TypeFor[yaml.Node]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkShape checks that the YAML node n can be decoded into a value of type t: mappings
// only have the keys that t declares, and every value has the kind the field wants. field is
// n's path, for errors. The *Error it returns has no File.
//
// A null value of a struct field means "not set" and is accepted; a null list element or map
// value is not. A yaml.Node field accepts anything (it is checked where it is used).
func checkShape(n *yaml.Node, t reflect.Type, field string) *Error {
	n = resolve(n)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nodeType {
		return nil
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		if n.Kind != yaml.ScalarNode || isNull(n) {
			return mismatch(n, t, field)
		}
		u := reflect.New(t).Interface().(encoding.TextUnmarshaler)
		if err := u.UnmarshalText([]byte(n.Value)); err != nil {
			return errorAt(n, field, err)
		}
		return nil
	}

	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return mismatch(n, t, field)
		}
		if err := duplicateKey(n, field); err != nil {
			return err
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				return errorAt(k, field, errors.New("merge keys (<<) are not supported"))
			}
			if k.Kind != yaml.ScalarNode {
				return errorAt(k, field, fmt.Errorf("expected a field name, got %s", describe(k)))
			}
			name := join(field, k.Value)
			ft, ok := fieldType(t, k.Value)
			if !ok {
				return errorAt(k, name, ErrUnknownField)
			}
			if isNull(v) {
				continue
			}
			if err := checkShape(v, ft, name); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return mismatch(n, t, field)
		}
		for i, e := range n.Content {
			name := fmt.Sprintf("%s[%d]", field, i)
			if isNull(e) {
				return mismatch(e, t.Elem(), name)
			}
			if err := checkShape(e, t.Elem(), name); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return mismatch(n, t, field)
		}
		if err := duplicateKey(n, field); err != nil {
			return err
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || isNull(k) || k.Tag == "!!merge" {
				return errorAt(k, field, fmt.Errorf("expected a name, got %s", describe(k)))
			}
			if err := checkShape(k, t.Key(), field); err != nil {
				return err
			}
			name := join(field, k.Value)
			if isNull(v) {
				return mismatch(v, t.Elem(), name)
			}
			if err := checkShape(v, t.Elem(), name); err != nil {
				return err
			}
		}
	default:
		if n.Kind != yaml.ScalarNode {
			return mismatch(n, t, field)
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return mismatch(n, t, field)
		}
	}
	return nil
}

// duplicateKey returns an error for the second of two equal scalar keys of the mapping n.
func duplicateKey(n *yaml.Node, field string) *Error {
	first := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			continue
		}
		if f, ok := first[k.Value]; ok {
			return errorAt(k, join(field, k.Value), fmt.Errorf("already set at line %d", f.Line))
		}
		first[k.Value] = k
	}
	return nil
}

// fieldType returns the type of the field of the struct type t whose YAML name is name.
func fieldType(t reflect.Type, name string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		yname, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if yname == "" {
			yname = strings.ToLower(f.Name) // yaml.v3's default
		}
		if yname == name && yname != "-" {
			return f.Type, true
		}
	}
	return nil, false
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func join(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func errorAt(n *yaml.Node, field string, err error) *Error {
	return &Error{Line: n.Line, Column: n.Column, Path: field, Err: err}
}

// mismatch is the error for a node n of another kind than the type t wants.
func mismatch(n *yaml.Node, t reflect.Type, field string) *Error {
	return errorAt(n, field, fmt.Errorf("expected %s, got %s", kindName(t), describe(n)))
}

// kindName names what a value of type t is written as in YAML.
func kindName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	default:
		return "a string"
	}
}

// describe names what the node n is, for errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if isNull(n) {
		return "null"
	}
	return strconv.Quote(n.Value)
}
