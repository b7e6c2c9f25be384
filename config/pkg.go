package config

import (
	"path/filepath"
	"strings"
)

// PkgPrefix starts an image reference that names a package folder instead of an image:
// "@pkg:./services/sshd" is the image built from that folder, relative to the YAML file.
const PkgPrefix = "@pkg:"

// ExpandPkgs replaces every image reference of the form "@pkg:path" (kernel.image, init,
// onboot, onshutdown and services images, volume images) by resolve(dir), where dir is the
// absolute package folder: path taken relative to the folder of the file the reference was
// written in. baseDir anchors relative file names (and references with no file, such as those
// read from standard input); "" means the current directory.
//
// resolve is called once per folder. Every failure is reported, with its position, as an
// errors.Join of *Error wrapping the resolver's error; references that resolved are replaced
// even when others fail.
func (s *System) ExpandPkgs(resolve func(dir string) (string, error), baseDir string) error {
	type result struct {
		ref string
		err error
	}
	cache := map[string]result{}
	var errs []*Error
	expand := func(ref *string, pos Position, path string) {
		if !strings.HasPrefix(*ref, PkgPrefix) {
			return
		}
		rel := strings.TrimPrefix(*ref, PkgPrefix)
		if rel == "" {
			errs = append(errs, newError(pos, path, "empty package path in %q", *ref))
			return
		}
		dir, err := pkgDir(rel, pos.File, baseDir)
		if err != nil {
			errs = append(errs, &Error{File: pos.File, Line: pos.Line, Column: pos.Column, Path: path,
				Msg: "resolve " + *ref, Err: err})
			return
		}
		r, ok := cache[dir]
		if !ok {
			r.ref, r.err = resolve(dir)
			cache[dir] = r
		}
		if r.err != nil {
			errs = append(errs, &Error{File: pos.File, Line: pos.Line, Column: pos.Column, Path: path,
				Msg: "resolve " + *ref, Err: r.err})
			return
		}
		*ref = r.ref
	}

	if k := s.Kernel; k != nil {
		expand(&k.Image, k.FieldPos("image"), "kernel.image")
	}
	for i := range s.Init {
		expand(&s.Init[i], s.InitPos(i), indexPath("init", i))
	}
	for _, sec := range []struct {
		name string
		list []*Image
	}{{"onboot", s.Onboot}, {"onshutdown", s.Onshutdown}, {"services", s.Services}} {
		for i, img := range sec.list {
			if img == nil {
				continue
			}
			base := img.Path()
			if base == "" {
				base = indexPath(sec.name, i)
			}
			expand(&img.Image, img.FieldPos("image"), base+".image")
		}
	}
	for i, vol := range s.Volumes {
		if vol == nil {
			continue
		}
		base := indexPath("volumes", i)
		if vol.src != nil && vol.src.path != "" {
			base = vol.src.path
		}
		expand(&vol.Image, vol.FieldPos("image"), base+".image")
	}
	return joinErrors(errs, s.files)
}

// pkgDir makes the absolute folder of a package path written in file.
func pkgDir(rel, file, baseDir string) (string, error) {
	p := filepath.FromSlash(rel)
	if !filepath.IsAbs(p) {
		dir := "."
		if file != "" && file != "-" {
			dir = filepath.Dir(file)
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(baseDir, dir)
		}
		p = filepath.Join(dir, p)
	}
	return filepath.Abs(p)
}
