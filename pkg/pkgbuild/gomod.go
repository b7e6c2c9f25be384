package pkgbuild

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GoModulesContext is the name of the named context that holds the Go modules of a package
// with a go.mod: a module proxy tree (GOPROXY=file://...) of exactly the modules its build
// list needs. A Dockerfile uses it as
//
//	RUN --mount=type=bind,from=gomodules,target=/gomodules \
//	    GOPROXY=file:///gomodules GOSUMDB=off go build ...
//
// so Go programs build with no network: go.sum checks every module as usual.
//
// The go.mod files that count are those at the top of the package folder and at the top of
// each of its extra sources: a package whose Go code comes in through extra-sources (as
// system/kiln builds kiln from the repository's root module) gets that module's requirements.
const GoModulesContext = "gomodules"

// goModules downloads the modules that the go.mod in each of dirs needs with the host's go
// command (which checks them against go.sum and the checksum database) and links them into a
// fresh folder laid out as a module proxy; a module that several go.mod files need is there
// once. cleanup removes the folder. When no folder has a go.mod, goModules returns "" and no
// error.
func goModules(ctx context.Context, dirs ...string) (string, func(), error) {
	var mods []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			mods = append(mods, d)
		}
	}
	if len(mods) == 0 {
		return "", func() {}, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", nil, fmt.Errorf("%s has a go.mod: kiln downloads its modules with the go command, which is not installed: %w", display(mods[0]), err)
	}
	tmp, err := os.MkdirTemp("", "kiln-gomodules-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	for _, d := range mods {
		if err := downloadModules(ctx, goBin, d, tmp); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	return tmp, cleanup, nil
}

// downloadModules downloads the modules the go.mod in dir needs and links their files into the
// module proxy tree proxy, skipping files already there (the same module version, whose files
// go.sum pins).
func downloadModules(ctx context.Context, goBin, dir, proxy string) error {
	root, err := goOutput(ctx, goBin, dir, "env", "GOMODCACHE")
	if err != nil {
		return err
	}
	root = filepath.Join(strings.TrimSpace(root), "cache", "download")
	out, err := goOutput(ctx, goBin, dir, "mod", "download", "-json")
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var m struct {
			Path, Version, Error string
			Info, GoMod, Zip     string
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("go mod download -json in %s: %w", display(dir), err)
		}
		if m.Error != "" {
			return fmt.Errorf("%s: module %s@%s: %s", display(dir), m.Path, m.Version, m.Error)
		}
		for _, f := range []string{m.Info, m.GoMod, m.Zip} {
			if f == "" {
				continue
			}
			rel, err := filepath.Rel(root, f)
			if err != nil || strings.HasPrefix(rel, "..") {
				return fmt.Errorf("module file %s is outside the module cache %s", f, root)
			}
			dst := filepath.Join(proxy, rel)
			if _, err := os.Lstat(dst); err == nil {
				continue
			}
			if err := linkOrCopy(f, dst); err != nil {
				return fmt.Errorf("preparing the Go module context: %w", err)
			}
		}
	}
}

// goOutput runs the go command in dir and returns its standard output; an error carries its
// standard error.
func goOutput(ctx context.Context, goBin, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), display(dir), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// linkOrCopy hard-links src to dst (creating dst's folder), copying when linking fails (for
// example across file systems).
func linkOrCopy(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return copyFile(src, dst, 0o644)
}
