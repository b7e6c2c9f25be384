package config

import (
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxAliasSteps bounds the values one decode may visit through aliases, so that a small
// document whose aliases expand to an enormous one ("billion laughs") fails instead of
// exhausting memory. Values written out in the document are not counted: their number is
// bounded by the size of the document, which yaml.v3 has already parsed, so a large plain
// file (tens of thousands of files entries) decodes however big it is.
const maxAliasSteps = 200_000

var (
	idValueType = reflect.TypeFor[IDValue]()
	ownPkgPath  = reflect.TypeFor[System]().PkgPath()
)

// origin records where an entry (an image, file, volume or the kernel) and each of its values
// were written, so that checks made after decoding (and after merging files) can still report
// file:line:column.
type origin struct {
	path   string              // the entry's path in its file, e.g. "services[2]"; "" for a label
	fields map[string]Position // by path relative to the entry, e.g. "capabilities.add[0]"
}

// entry is implemented by the types that carry their own origin.
type entry interface {
	setOrigin(pos Position, o *origin)
}

func (k *Kernel) setOrigin(pos Position, o *origin) { k.Pos, k.src = pos, o }
func (f *File) setOrigin(pos Position, o *origin)   { f.Pos, f.src = pos, o }
func (v *Volume) setOrigin(pos Position, o *origin) { v.Pos, v.src = pos, o }
func (i *Image) setOrigin(pos Position, o *origin)  { i.Pos, i.src = pos, o }

// lookup returns the position recorded for rel, or for its closest recorded parent, or def.
func (o *origin) lookup(rel string, def Position) Position {
	if o == nil {
		return def
	}
	for {
		if p, ok := o.fields[rel]; ok {
			return p
		}
		if rel == "" {
			return def
		}
		rel = parentPath(rel)
	}
}

// parentPath strips the last element of a path: "a.b[2]" → "a.b" → "a" → "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			// A quoted map key may itself contain '[': find the '[' that starts the key.
			if j := strings.LastIndex(p, `["`); j >= 0 && strings.HasSuffix(p, `"]`) {
				i = j
			}
			return p[:i]
		}
	}
	// Field names may contain dots ("capabilities.add"); they only matter for lookups, where
	// stripping one component at a time still ends at a recorded parent.
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

func joinPath(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

func indexPath(base string, i int) string { return base + "[" + strconv.Itoa(i) + "]" }

func keyPath(base, key string) string { return base + "[" + strconv.Quote(key) + "]" }

// fieldInfo describes how one struct field is written in YAML.
type fieldInfo struct {
	name      string
	index     int
	omitempty bool
}

// decoder turns yaml.Node trees into Go values by reflection, strictly, collecting every error.
type decoder struct {
	file    string
	errs    []*Error
	steps   int // values visited through an alias
	aliased int // how many aliases the value being decoded was reached through
	active  map[*yaml.Node]bool
	fields  map[reflect.Type][]fieldInfo
	rec     *origin
	recBase string
	top     map[string]Position // positions of values outside any entry (init[i], trust)
}

func newDecoder(file string) *decoder {
	return &decoder{
		file:   file,
		active: map[*yaml.Node]bool{},
		fields: map[reflect.Type][]fieldInfo{},
		top:    map[string]Position{},
	}
}

func (d *decoder) pos(n *yaml.Node) Position {
	return Position{File: d.file, Line: n.Line, Column: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, newError(d.pos(n), path, format, args...))
}

// record notes the position of the value at path, keeping the first one recorded.
func (d *decoder) record(n *yaml.Node, path string) {
	m, rel := d.top, path
	if d.rec != nil {
		m = d.rec.fields
		rel = strings.TrimPrefix(strings.TrimPrefix(path, d.recBase), ".")
	}
	if _, ok := m[rel]; !ok {
		m[rel] = d.pos(n)
	}
}

// recorded returns the position recorded for path in the current entry (or at top level).
func (d *decoder) recorded(path string) (Position, bool) {
	m, rel := d.top, path
	if d.rec != nil {
		m = d.rec.fields
		rel = strings.TrimPrefix(strings.TrimPrefix(path, d.recBase), ".")
	}
	p, ok := m[rel]
	return p, ok
}

// peek follows an alias without reporting anything (resolve reports).
func peek(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// recordField notes where the value of a mapping entry is: at the value when it is a scalar
// (precise), otherwise at the key (a list or mapping value starts on a later line).
func (d *decoder) recordField(key, val *yaml.Node, path string) {
	if v := peek(val); v.Kind == yaml.ScalarNode && !isNull(v) {
		d.record(val, path)
		return
	}
	d.record(key, path)
}

// tick counts one value reached through an alias (n itself being one, or d.aliased > 0) and
// reports whether the budget still allows more. Values outside any alias are free.
func (d *decoder) tick(n *yaml.Node, path string) bool {
	if d.aliased == 0 && n.Kind != yaml.AliasNode {
		return true
	}
	d.steps++
	if d.steps == maxAliasSteps+1 {
		d.errorf(n, path, "aliases expand to too many values (more than %d); write the values out instead of repeating aliases of aliases", maxAliasSteps)
	}
	return d.steps <= maxAliasSteps
}

// enter notes that decoding goes on through n when n is an alias; the caller must call the
// returned function when done.
func (d *decoder) enter(n *yaml.Node) func() {
	if n.Kind != yaml.AliasNode {
		return func() {}
	}
	d.aliased++
	return func() { d.aliased-- }
}

// resolve follows aliases; it returns nil (after reporting) for an alias that refers to a
// node being decoded (a cycle). The caller must call done(n) with the returned node.
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.errorf(n, path, "unknown alias *%s", n.Value)
			return nil
		}
		if d.active[n.Alias] {
			d.errorf(n, path, "alias *%s refers to a value that contains it", n.Value)
			return nil
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// decode stores the value of n into v (which must be settable), reporting problems at path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if !d.tick(n, path) {
		return
	}
	defer d.enter(n)()
	d.record(n, path)
	n = d.resolve(n, path)
	if n == nil {
		return
	}
	d.active[n] = true
	defer delete(d.active, n)

	if isNull(n) {
		v.SetZero()
		return
	}
	t := v.Type()
	if t == idValueType {
		d.decodeID(n, v, path)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		d.decodeValue(n, p.Elem(), path)
		v.Set(p)
	default:
		d.decodeValue(n, v, path)
	}
}

// decodeValue decodes a resolved, non-null node into a non-pointer value (or a pointer to
// pointer, which the schema has not).
func (d *decoder) decodeValue(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if t == idValueType {
		d.decodeID(n, v, path)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		d.decode(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.typeError(n, t, path)
			return
		}
		switch n.ShortTag() {
		case "!!str", "!!timestamp":
			v.SetString(n.Value)
		default:
			d.typeError(n, t, path)
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.typeError(n, t, path)
			return
		}
		b, err := strconv.ParseBool(n.Value)
		if err != nil {
			d.typeError(n, t, path)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		d.decodeInt(n, v, path)
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") {
			d.typeError(n, t, path)
			return
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), t.Bits())
		if err != nil {
			d.errorf(n, path, "invalid number %q", n.Value)
			return
		}
		v.SetFloat(f)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	default:
		d.errorf(n, path, "internal error: cannot decode into %s", t)
	}
}

func (d *decoder) typeError(n *yaml.Node, t reflect.Type, path string) {
	msg := fmt.Sprintf("expected %s, got %s", describeType(t), describeNode(n))
	if t.Kind() == reflect.String && n.Kind == yaml.ScalarNode {
		msg += fmt.Sprintf(" (quote it: %q)", n.Value)
	}
	d.errs = append(d.errs, newError(d.pos(n), path, "%s", msg))
}

// parseInteger parses a YAML integer (decimal, 0x, 0o, 0b, legacy 0-octal, underscores).
func parseInteger(s string) (*big.Int, bool) {
	return new(big.Int).SetString(strings.ReplaceAll(s, "_", ""), 0)
}

// looksInteger reports whether s is written like an integer, even one too large for yaml.v3
// (which then tags it as a float).
func looksInteger(s string) bool {
	s = strings.TrimLeft(s, "+-")
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

func intRange(t reflect.Type) (lo, hi *big.Int) {
	bits := uint(t.Bits())
	one := big.NewInt(1)
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		hi = new(big.Int).Sub(new(big.Int).Lsh(one, bits-1), one)
		lo = new(big.Int).Neg(new(big.Int).Lsh(one, bits-1))
	default:
		hi = new(big.Int).Sub(new(big.Int).Lsh(one, bits), one)
		lo = new(big.Int)
	}
	return lo, hi
}

func (d *decoder) decodeInt(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if n.Kind != yaml.ScalarNode {
		d.typeError(n, t, path)
		return
	}
	tag := n.ShortTag()
	if tag != "!!int" && (tag != "!!float" || !looksInteger(n.Value)) {
		d.typeError(n, t, path)
		return
	}
	x, ok := parseInteger(n.Value)
	if !ok {
		d.errorf(n, path, "invalid integer %q", n.Value)
		return
	}
	lo, hi := intRange(t)
	if x.Cmp(lo) < 0 || x.Cmp(hi) > 0 {
		d.errorf(n, path, "integer %s out of range (%s to %s)", n.Value, lo, hi)
		return
	}
	if lo.Sign() < 0 {
		v.SetInt(x.Int64())
	} else {
		v.SetUint(x.Uint64())
	}
}

func (d *decoder) decodeID(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.ScalarNode {
		switch tag := n.ShortTag(); {
		case tag == "!!int" || (tag == "!!float" && looksInteger(n.Value)):
			var id uint32
			before := len(d.errs)
			d.decodeInt(n, reflect.ValueOf(&id).Elem(), path)
			if len(d.errs) == before {
				v.Set(reflect.ValueOf(IDValue{ID: &id}))
			}
			return
		case tag == "!!str":
			if n.Value == "" {
				d.errorf(n, path, "empty user or group name")
				return
			}
			v.Set(reflect.ValueOf(IDValue{Name: n.Value}))
			return
		}
	}
	d.typeError(n, idValueType, path)
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if n.Kind != yaml.SequenceNode {
		d.typeError(n, t, path)
		return
	}
	s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := indexPath(path, i)
		if isNull(peek(item)) {
			d.record(item, p)
			d.errorf(item, p, "expected %s, got null", describeType(t.Elem()))
			continue
		}
		d.decode(item, s.Index(i), p)
	}
	v.Set(s)
}

// pair is one key/value of a mapping, after merge keys ("<<") have been expanded.
type pair struct {
	key, val *yaml.Node
	name     string
	aliased  bool // reached through an alias: decoding val counts against maxAliasSteps
}

// decodePair decodes p.val into v, counting the work when p was reached through an alias.
func (d *decoder) decodePair(p pair, v reflect.Value, path string) {
	if p.aliased {
		d.aliased++
		defer func() { d.aliased-- }()
	}
	d.decode(p.val, v, path)
}

// pairs lists the entries of mapping n. Explicit keys win over merged ones; an explicit key
// written twice is an error.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var explicit, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if !d.tick(k, path) {
			return explicit
		}
		rk := d.resolve(k, path)
		if rk == nil {
			continue
		}
		if rk.Kind == yaml.ScalarNode && rk.ShortTag() == "!!merge" {
			merged = append(merged, d.mergePairs(val, path)...)
			continue
		}
		if rk.Kind != yaml.ScalarNode || isNull(rk) {
			d.errorf(k, path, "mapping keys must be strings, got %s", describeNode(rk))
			continue
		}
		if first, dup := seen[rk.Value]; dup {
			d.errorf(k, path, "duplicate key %q (first at line %d, column %d)", rk.Value, first.Line, first.Column)
			continue
		}
		seen[rk.Value] = k
		explicit = append(explicit, pair{key: k, val: val, name: rk.Value, aliased: d.aliased > 0})
	}
	for _, p := range merged {
		if _, dup := seen[p.name]; dup {
			continue
		}
		seen[p.name] = p.key
		explicit = append(explicit, p)
	}
	return explicit
}

// mergePairs expands the value of a merge key: a mapping or a list of mappings.
func (d *decoder) mergePairs(val *yaml.Node, path string) []pair {
	if !d.tick(val, path) {
		return nil
	}
	defer d.enter(val)()
	r := d.resolve(val, path)
	if r == nil {
		return nil
	}
	d.active[r] = true
	defer delete(d.active, r)
	switch r.Kind {
	case yaml.MappingNode:
		return d.pairs(r, path)
	case yaml.SequenceNode:
		var out []pair
		seen := map[string]bool{}
		for _, item := range r.Content {
			if ri := peek(item); ri.Kind != yaml.MappingNode && ri.Kind != yaml.AliasNode {
				d.errorf(item, path, "merge key << needs a mapping or a list of mappings, got %s", describeNode(ri))
				continue
			}
			// Earlier mappings in the list win.
			for _, p := range d.mergePairs(item, path) {
				if !seen[p.name] {
					seen[p.name] = true
					out = append(out, p)
				}
			}
		}
		return out
	default:
		d.errorf(val, path, "merge key << needs a mapping or a list of mappings, got %s", describeNode(r))
		return nil
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if n.Kind != yaml.MappingNode {
		d.typeError(n, t, path)
		return
	}
	if t.Key().Kind() != reflect.String {
		d.errorf(n, path, "internal error: map key type %s", t.Key())
		return
	}
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	for _, p := range d.pairs(n, path) {
		kp := keyPath(path, p.name)
		d.recordField(p.key, p.val, kp)
		ev := reflect.New(t.Elem()).Elem()
		d.decodePair(p, ev, kp)
		m.SetMapIndex(reflect.ValueOf(p.name).Convert(t.Key()), ev)
	}
	v.Set(m)
}

// fieldsOf lists the YAML names of t's fields: the yaml tag for kiln's own types, the json tag
// for external ones (runtime-spec), whose JSON names are what LinuxKit files use.
func (d *decoder) fieldsOf(t reflect.Type) []fieldInfo {
	if fs, ok := d.fields[t]; ok {
		return fs
	}
	fs := structFields(t)
	d.fields[t] = fs
	return fs
}

func structFields(t reflect.Type) []fieldInfo {
	tagKey := "yaml"
	if t.PkgPath() != ownPkgPath {
		tagKey = "json"
	}
	var fs []fieldInfo
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get(tagKey)
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
			if tagKey == "yaml" {
				name = strings.ToLower(name)
			}
		}
		fs = append(fs, fieldInfo{name: name, index: i, omitempty: slices.Contains(strings.Split(opts, ","), "omitempty")})
	}
	return fs
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if n.Kind != yaml.MappingNode {
		d.typeError(n, t, path)
		return
	}
	var o *origin
	pos := d.pos(n)
	if _, ok := v.Addr().Interface().(entry); ok {
		// The entry is where its enclosing mapping key or list item was written.
		if p, ok := d.recorded(path); ok {
			pos = p
		}
		o = &origin{path: path, fields: map[string]Position{}}
		prevRec, prevBase := d.rec, d.recBase
		d.rec, d.recBase = o, path
		defer func() { d.rec, d.recBase = prevRec, prevBase }()
		o.fields[""] = pos
	}
	fs := d.fieldsOf(t)
	external := t.PkgPath() != ownPkgPath
	for _, p := range d.pairs(n, path) {
		fi := -1
		for i, f := range fs {
			if f.name == p.name {
				fi = i
				break
			}
		}
		if fi < 0 && external {
			// encoding/json matches names case-insensitively, and LinuxKit's schema spells
			// some runtime-spec names differently ("blockio" for "blockIO").
			for i, f := range fs {
				if strings.EqualFold(f.name, p.name) {
					fi = i
					break
				}
			}
		}
		if fi < 0 {
			d.unknownKey(p, fs, path)
			continue
		}
		fp := joinPath(path, fs[fi].name)
		d.recordField(p.key, p.val, fp)
		d.decodePair(p, v.Field(fs[fi].index), fp)
	}
	if o != nil {
		v.Addr().Interface().(entry).setOrigin(pos, o)
	}
}

func (d *decoder) unknownKey(p pair, fs []fieldInfo, path string) {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	msg := fmt.Sprintf("unknown key %q", p.name)
	if s := suggest(p.name, names); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	msg += "; expected one of " + strings.Join(names, ", ")
	d.errs = append(d.errs, newError(d.pos(p.key), path, "%s", msg))
}

// suggest returns the candidate closest to s, if it is close enough to be a likely typo.
func suggest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if strings.EqualFold(c, s) {
			return c
		}
		if dist := editDistance(strings.ToLower(s), strings.ToLower(c)); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.DocumentNode:
		return "a document"
	case yaml.AliasNode:
		return "an alias"
	}
	switch tag := n.ShortTag(); tag {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	case "!!timestamp":
		return "a timestamp"
	case "!!binary":
		return "binary data"
	default:
		return "a value tagged " + tag
	}
}

func describeType(t reflect.Type) string {
	if t == idValueType {
		return "an integer or a name"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return describeType(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list of " + plural(t.Elem())
	case reflect.Map:
		return "a mapping of " + plural(t.Elem())
	default:
		return "a mapping"
	}
}

func plural(t reflect.Type) string {
	if t == idValueType {
		return "integers or names"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return plural(t.Elem())
	case reflect.String:
		return "strings"
	case reflect.Bool:
		return "booleans"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "integers"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "non-negative integers"
	case reflect.Float32, reflect.Float64:
		return "numbers"
	case reflect.Slice:
		return "lists"
	default:
		return "mappings"
	}
}
