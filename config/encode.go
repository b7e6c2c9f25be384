package config

import (
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MarshalYAML returns s as a YAML node tree in LinuxKit's field order, with map keys sorted,
// so that the same System always produces the same bytes. A field that is set to an empty
// list is kept (as []), since it overrides the image's own value.
func (s *System) MarshalYAML() (any, error) {
	return encodeNode(reflect.ValueOf(s).Elem())
}

// Encode writes s as YAML (two-space indentation) to w. Parse reads the output back to an
// equal System.
func (s *System) Encode(w io.Writer) error {
	n, err := encodeNode(reflect.ValueOf(s).Elem())
	if err != nil {
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return fmt.Errorf("config: encode: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("config: encode: %w", err)
	}
	return nil
}

func scalar(tag, value string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
	if tag == "!!str" && strings.Contains(value, "\n") {
		// Multi-line text reads best as a literal block, but yaml.v3 writes some texts (only
		// white space, leading newlines) as blocks that read back differently: keep the block
		// only when it reads back the same, else quote.
		n.Style = yaml.LiteralStyle
		if !literalRoundTrips(n) {
			n.Style = yaml.DoubleQuotedStyle
		}
	}
	return n
}

func literalRoundTrips(n *yaml.Node) bool {
	out, err := yaml.Marshal(&yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{n}})
	if err != nil {
		return false
	}
	var back []string
	return yaml.Unmarshal(out, &back) == nil && len(back) == 1 && back[0] == n.Value
}

func encodeNode(v reflect.Value) (*yaml.Node, error) {
	t := v.Type()
	if t == idValueType {
		id := v.Interface().(IDValue)
		if id.ID != nil {
			return scalar("!!int", strconv.FormatUint(uint64(*id.ID), 10)), nil
		}
		return scalar("!!str", id.Name), nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return scalar("!!null", "null"), nil
		}
		return encodeNode(v.Elem())
	case reflect.String:
		return scalar("!!str", v.String()), nil
	case reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(v.Bool())), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10)), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return scalar("!!int", strconv.FormatUint(v.Uint(), 10)), nil
	case reflect.Float32, reflect.Float64:
		return scalar("!!float", strconv.FormatFloat(v.Float(), 'g', -1, t.Bits())), nil
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			c, err := encodeNode(v.Index(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		return n, nil
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			c, err := encodeNode(v.MapIndex(k))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, scalar("!!str", k.String()), c)
		}
		return n, nil
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		external := t.PkgPath() != ownPkgPath
		for _, f := range structFields(t) {
			fv := v.Field(f.index)
			// An empty string decodes the same as an absent one; leave it out of runtime-spec
			// values too (e.g. a mount's destination, which has a default).
			if omit(fv, f.omitempty || (external && fv.Kind() == reflect.String)) {
				continue
			}
			c, err := encodeNode(fv)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, scalar("!!str", f.name), c)
		}
		if len(n.Content) == 0 {
			n.Style = yaml.FlowStyle
		}
		return n, nil
	default:
		return nil, fmt.Errorf("config: encode: unsupported type %s", t)
	}
}

// omit reports whether a field is left out: nil pointers always (null means unset), other
// zero values when the field is omitempty. A pointer to an empty list is kept.
func omit(v reflect.Value, omitempty bool) bool {
	switch v.Kind() {
	case reflect.Pointer:
		return v.IsNil()
	case reflect.Slice, reflect.Map:
		return omitempty && v.Len() == 0
	}
	if v.Type() == idValueType {
		return v.IsZero()
	}
	return omitempty && v.IsZero()
}
