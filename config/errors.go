package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Position is a place in a YAML file. Line and Column count from 1; zero means unknown.
type Position struct {
	File   string
	Line   int
	Column int
}

// String formats p as "file:line:col", leaving out the parts that are unknown.
func (p Position) String() string {
	s := p.File
	if p.Line > 0 {
		if s != "" {
			s += ":"
		}
		s += strconv.Itoa(p.Line)
		if p.Column > 0 {
			s += ":" + strconv.Itoa(p.Column)
		}
	}
	return s
}

// IsZero reports whether p holds no position at all.
func (p Position) IsZero() bool { return p == Position{} }

// Error is one problem found in a system description, located by file, line, column and the
// path of the offending value (e.g. "services[2].capabilities.add[0]").
//
// Functions of this package that can find several problems return them all at once, as an
// errors.Join of *Error values sorted by position; use errors.As to get the first, or the
// Unwrap() []error method of the joined error to get them all.
type Error struct {
	File   string
	Line   int
	Column int
	Path   string
	Msg    string
	// Err is the underlying cause, if any (for example the error of an @pkg: resolver).
	Err error
}

// Error formats e as "file:line:col: path: msg[: cause]".
func (e *Error) Error() string {
	s := Position{File: e.File, Line: e.Line, Column: e.Column}.String()
	if e.Path != "" {
		if s != "" {
			s += ": "
		}
		s += e.Path
	}
	msg := e.Msg
	if e.Err != nil {
		if msg != "" {
			msg += ": "
		}
		msg += e.Err.Error()
	}
	if s != "" {
		s += ": "
	}
	return s + msg
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Pos returns where the error is.
func (e *Error) Pos() Position { return Position{File: e.File, Line: e.Line, Column: e.Column} }

func newError(pos Position, path, format string, args ...any) *Error {
	return &Error{File: pos.File, Line: pos.Line, Column: pos.Column, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// sortErrors orders errs by file (in the order given by files, unknown files last, by name),
// then line, column, path and message. It is stable so equal errors keep their order.
func sortErrors(errs []*Error, files []string) {
	rank := make(map[string]int, len(files))
	for i, f := range files {
		if _, ok := rank[f]; !ok {
			rank[f] = i
		}
	}
	fileRank := func(f string) int {
		if r, ok := rank[f]; ok {
			return r
		}
		return len(files)
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(fileRank(a.File), fileRank(b.File)),
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
}

// joinErrors sorts errs and joins them; nil when there are none.
func joinErrors(errs []*Error, files []string) error {
	if len(errs) == 0 {
		return nil
	}
	sortErrors(errs, files)
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
}
