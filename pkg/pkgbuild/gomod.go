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
const GoModulesContext = "gomodules"

// goModules downloads the modules that the go.mod in dir needs with the host's go command
// (which checks them against go.sum and the checksum database) and links them into a fresh
// folder laid out as a module proxy. cleanup removes the folder. A package without go.mod
// gets "" and no error.
func goModules(ctx context.Context, dir string) (string, func(), error) {
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", func() {}, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", nil, fmt.Errorf("%s has a go.mod: kiln downloads its modules with the go command, which is not installed: %w", display(dir), err)
	}
	root, err := goOutput(ctx, goBin, dir, "env", "GOMODCACHE")
	if err != nil {
		return "", nil, err
	}
	root = filepath.Join(strings.TrimSpace(root), "cache", "download")
	out, err := goOutput(ctx, goBin, dir, "mod", "download", "-json")
	if err != nil {
		return "", nil, err
	}
	tmp, err := os.MkdirTemp("", "kiln-gomodules-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var m struct {
			Path, Version, Error string
			Info, GoMod, Zip     string
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			cleanup()
			return "", nil, fmt.Errorf("go mod download -json in %s: %w", display(dir), err)
		}
		if m.Error != "" {
			cleanup()
			return "", nil, fmt.Errorf("%s: module %s@%s: %s", display(dir), m.Path, m.Version, m.Error)
		}
		for _, f := range []string{m.Info, m.GoMod, m.Zip} {
			if f == "" {
				continue
			}
			rel, err := filepath.Rel(root, f)
			if err != nil || strings.HasPrefix(rel, "..") {
				cleanup()
				return "", nil, fmt.Errorf("module file %s is outside the module cache %s", f, root)
			}
			if err := linkOrCopy(f, filepath.Join(tmp, rel)); err != nil {
				cleanup()
				return "", nil, fmt.Errorf("preparing the Go module context: %w", err)
			}
		}
	}
	return tmp, cleanup, nil
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
