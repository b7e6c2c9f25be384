package kmod

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
)

// loadSequence numbers the modules so that every module comes before the modules it depends
// on, the order depmod lists dependencies in (modprobe loads them from the end of the list).
// The numbering is the one depmod computes, so that the relative order of two independent
// dependencies matches its output too: modules nothing depends on are stacked in tree order,
// the top of the stack is numbered next, and each of its dependencies, in depends= order,
// goes on the stack once the last module that needs it has been numbered.
func (t *Tree) loadSequence() (map[*Module]int, error) {
	users := make(map[*Module]int, len(t.Modules))
	for _, m := range t.Modules {
		for _, d := range t.direct(m) {
			users[d]++
		}
	}
	var stack []*Module
	for _, m := range t.Modules {
		if users[m] == 0 {
			stack = append(stack, m)
		}
	}
	seq := make(map[*Module]int, len(t.Modules))
	for len(stack) > 0 {
		m := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		seq[m] = len(seq)
		for _, d := range t.direct(m) {
			users[d]--
			if users[d] == 0 {
				stack = append(stack, d)
			}
		}
	}
	if len(seq) < len(t.Modules) {
		var cycle []string
		for _, m := range t.Modules {
			if _, ok := seq[m]; !ok {
				cycle = append(cycle, m.Name)
			}
		}
		return nil, fmt.Errorf("modules depend on each other in a cycle: %s", strings.Join(cycle, ", "))
	}
	return seq, nil
}

// direct returns the modules m depends on directly, each once, in depends= order.
func (t *Tree) direct(m *Module) []*Module {
	var out []*Module
	seen := map[*Module]bool{}
	for _, name := range m.Depends {
		if d := t.byName[name]; d != nil && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// closure returns every module m needs, directly or not, without m itself.
func (t *Tree) closure(m *Module) []*Module {
	seen := map[*Module]bool{m: true}
	var out []*Module
	var walk func(*Module)
	walk = func(x *Module) {
		for _, d := range t.direct(x) {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
				walk(d)
			}
		}
	}
	walk(m)
	return out
}

// WriteDep writes modules.dep as depmod does: one line per module in tree order,
// "PATH:" followed by " PATH" for each module it needs, directly or not, users before the
// modules they use.
func (t *Tree) WriteDep(w io.Writer) error {
	seq, err := t.loadSequence()
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, m := range t.Modules {
		deps := t.closure(m)
		sort.Slice(deps, func(i, j int) bool { return seq[deps[i]] < seq[deps[j]] })
		b.WriteString(m.Path + ":")
		for _, d := range deps {
			b.WriteString(" " + d.Path)
		}
		b.WriteByte('\n')
	}
	_, err = w.Write(b.Bytes())
	return err
}

// WriteAlias writes modules.alias as depmod does: a comment line, then "alias PATTERN NAME"
// for each alias of each module, in tree order.
func (t *Tree) WriteAlias(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString("# Aliases extracted from modules themselves.\n")
	for _, m := range t.Modules {
		for _, a := range m.Aliases {
			b.WriteString("alias " + a + " " + m.Name + "\n")
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteSoftdep writes modules.softdep as depmod does: a comment line, then
// "softdep NAME pre: ... post: ..." for each softdep= field, in tree order.
func (t *Tree) WriteSoftdep(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString("# Soft dependencies extracted from modules themselves.\n")
	for _, m := range t.Modules {
		for _, s := range m.SoftDeps {
			b.WriteString("softdep " + m.Name + " " + s + "\n")
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteOrder writes modules.order for the tree: the lines of the modules.order it was loaded
// with that name a module of the tree, then its other modules in tree order, so that depmod
// run on the written tree lists modules in the same order.
func (t *Tree) WriteOrder(w io.Writer) error {
	var b bytes.Buffer
	listed := map[string]bool{}
	for _, p := range t.order {
		if m := t.byName[ModuleName(p)]; m != nil && m.Path == p && !listed[p] {
			listed[p] = true
			b.WriteString(p + "\n")
		}
	}
	for _, m := range t.Modules {
		if !listed[m.Path] {
			b.WriteString(m.Path + "\n")
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}
