package config

import (
	"path/filepath"
	"reflect"
)

// Clone returns a deep copy of s: changing the copy (pinning image references, for example)
// leaves s untouched. Positions are kept.
func (s *System) Clone() *System {
	if s == nil {
		return nil
	}
	return deepCopy(reflect.ValueOf(s)).Interface().(*System)
}

// deepCopy copies v, following exported pointers, slices and maps. Unexported fields are
// copied as they are: they hold positions and warnings, which are never modified in place.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(deepCopy(v.Elem()))
		return p
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			s.Index(i).Set(deepCopy(v.Index(i)))
		}
		return s
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		m := reflect.MakeMapWithSize(v.Type(), v.Len())
		iter := v.MapRange()
		for iter.Next() {
			m.SetMapIndex(iter.Key(), deepCopy(iter.Value()))
		}
		return m
	case reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				c.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return c
	default:
		return v
	}
}

// BaseDir returns the folder of the file this entry was written in, against which a relative
// source is read; "" when unknown (built in code, or read from standard input as "-").
func (f *File) BaseDir() string {
	if f.Pos.File == "" || f.Pos.File == "-" {
		return ""
	}
	return filepath.Dir(f.Pos.File)
}
