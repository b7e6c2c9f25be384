package pkgbuild

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// fromRef is an image a FROM line names.
type fromRef struct {
	Ref  string
	Line int
}

// fromRefs returns the images the Dockerfile's FROM lines name for a build on platform, in
// order and without repeats: global ARGs are expanded with their defaults, then buildArgs,
// then BuildKit's platform arguments; "scratch" and names of earlier stages are left out.
func fromRefs(df []byte, buildArgs map[string]string, platform string) ([]fromRef, error) {
	res, err := parser.Parse(bytes.NewReader(df))
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	pl, err := platforms.Parse(platform)
	if err != nil {
		return nil, err
	}
	host := platforms.DefaultSpec()
	for k, v := range platformArgs("TARGET", pl) {
		env[k] = v
	}
	for k, v := range platformArgs("BUILD", host) {
		env[k] = v
	}
	lex := shell.NewLex(res.EscapeToken)
	getter := func() shell.EnvGetter {
		kv := make([]string, 0, len(env))
		for k, v := range env {
			kv = append(kv, k+"="+v)
		}
		return shell.EnvsFromSlice(kv)
	}
	stages := map[string]bool{}
	seen := map[string]bool{}
	var out []fromRef
	sawFrom := false
	for _, n := range res.AST.Children {
		switch strings.ToLower(n.Value) {
		case "arg":
			if sawFrom {
				continue
			}
			for a := n.Next; a != nil; a = a.Next {
				name, def, hasDef := strings.Cut(a.Value, "=")
				if v, ok := buildArgs[name]; ok {
					env[name] = v
				} else if hasDef {
					w, _, err := lex.ProcessWord(def, getter())
					if err != nil {
						return nil, fmt.Errorf("line %d: %w", n.StartLine, err)
					}
					env[name] = w
				}
			}
		case "from":
			sawFrom = true
			var args []string
			for a := n.Next; a != nil; a = a.Next {
				args = append(args, a.Value)
			}
			if len(args) == 0 {
				continue
			}
			img, _, err := lex.ProcessWord(args[0], getter())
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n.StartLine, err)
			}
			skip := img == "" || strings.EqualFold(img, "scratch") || stages[strings.ToLower(img)] || seen[img]
			if len(args) >= 3 && strings.EqualFold(args[1], "as") {
				stages[strings.ToLower(args[2])] = true
			}
			if !skip {
				seen[img] = true
				out = append(out, fromRef{Ref: img, Line: n.StartLine})
			}
		}
	}
	return out, nil
}

// platformArgs returns BuildKit's automatic platform ARGs with the given prefix (TARGET or
// BUILD): PLATFORM, OS, ARCH, VARIANT.
func platformArgs(prefix string, p platforms.Platform) map[string]string {
	p = platforms.Normalize(p)
	return map[string]string{
		prefix + "PLATFORM": platforms.Format(p),
		prefix + "OS":       p.OS,
		prefix + "ARCH":     p.Architecture,
		prefix + "VARIANT":  p.Variant,
	}
}
