package archive

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// checkName reports whether name is a relative, clean, slash-separated path below the archive
// root, as Writer requires for entry names and hard-link targets.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name")
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("name %q contains a NUL byte", name)
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("name %q is absolute; names are relative to the archive root", name)
	case name == ".":
		return fmt.Errorf("name %q names the archive root itself", name)
	case path.Clean(name) != name:
		return fmt.Errorf("name %q is not clean (want %q, no trailing slash)", name, path.Clean(name))
	case name == ".." || strings.HasPrefix(name, "../"):
		return fmt.Errorf("name %q leaves the archive root", name)
	}
	return nil
}

// copyBody copies exactly size bytes of body to w and checks that body holds no more.
func copyBody(w io.Writer, body io.Reader, size int64) error {
	if body == nil {
		if size == 0 {
			return nil
		}
		return fmt.Errorf("no body for %d bytes of content", size)
	}
	n, err := io.CopyN(w, body, size)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("body has %d bytes, header says %d", n, size)
		}
		return fmt.Errorf("copying body: %w", err)
	}
	var one [1]byte
	for range 100 {
		k, err := body.Read(one[:])
		if k > 0 {
			return fmt.Errorf("body is longer than the %d bytes the header says", size)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading body: %w", err)
		}
	}
	return fmt.Errorf("reading body: %w", io.ErrNoProgress)
}
