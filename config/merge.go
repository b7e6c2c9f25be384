package config

import "maps"

// Merge returns a new System made of a extended by b, with LinuxKit's rules for several
// files given to one build: b's kernel fields override a's when b sets them; init, onboot,
// onshutdown, services, files, volumes and the trust lists are appended in order. Either
// argument may be nil. The result shares the entries (*Image, *File, *Volume) of a and b,
// which keep the position they were written at.
func Merge(a, b *System) *System {
	out := &System{}
	for _, s := range []*System{a, b} {
		if s == nil {
			continue
		}
		out.Kernel = mergeKernel(out.Kernel, s.Kernel)
		out.Init = append(out.Init, s.Init...)
		for i := range s.Init {
			var p Position
			if i < len(s.initPos) {
				p = s.initPos[i]
			}
			out.initPos = append(out.initPos, p)
		}
		out.Onboot = append(out.Onboot, s.Onboot...)
		out.Onshutdown = append(out.Onshutdown, s.Onshutdown...)
		out.Services = append(out.Services, s.Services...)
		out.Files = append(out.Files, s.Files...)
		out.Volumes = append(out.Volumes, s.Volumes...)
		if s.Trust != nil {
			if out.Trust == nil {
				out.Trust = &Trust{}
			}
			out.Trust.Image = append(out.Trust.Image, s.Trust.Image...)
			out.Trust.Org = append(out.Trust.Org, s.Trust.Org...)
		}
		for _, f := range s.files {
			if !containsString(out.files, f) {
				out.files = append(out.files, f)
			}
		}
		out.warnings = append(out.warnings, s.warnings...)
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// mergeKernel overrides the fields of k0 that k1 sets (non-empty strings, a non-nil tar),
// keeping for each field the position it came from. Neither argument is modified.
func mergeKernel(k0, k1 *Kernel) *Kernel {
	if k1 == nil {
		return k0
	}
	if k0 == nil {
		k := *k1
		return &k
	}
	k := *k0
	o := &origin{fields: map[string]Position{}}
	if k0.src != nil {
		o.path = k0.src.path
		maps.Copy(o.fields, k0.src.fields)
	}
	take := func(field string) {
		if k1.src == nil {
			return
		}
		for rel, p := range k1.src.fields {
			if rel == field || (len(rel) > len(field) && rel[:len(field)] == field && (rel[len(field)] == '.' || rel[len(field)] == '[')) {
				o.fields[rel] = p
			}
		}
	}
	if k1.Image != "" {
		k.Image = k1.Image
		take("image")
	}
	if k1.Cmdline != "" {
		k.Cmdline = k1.Cmdline
		take("cmdline")
	}
	if k1.Binary != "" {
		k.Binary = k1.Binary
		take("binary")
	}
	if k1.Tar != nil {
		k.Tar = k1.Tar
		take("tar")
	}
	if k1.UCode != "" {
		k.UCode = k1.UCode
		take("ucode")
	}
	k.src = o
	return &k
}
