package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kiln-os/kiln/internal/fatimg"
)

// configDrive writes the NoCloud config drive of `kiln run qemu -data` to a temporary file
// and returns its path (the caller removes it). A file becomes the drive's user-data; a
// folder's regular files are the drive's files (no subfolders: NoCloud has none). When there
// is no meta-data, one is added with an instance-id derived from the content, so the same data
// is the same instance.
func configDrive(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("-data: %w", err)
	}
	var files []fatimg.File
	switch {
	case fi.Mode().IsRegular():
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("-data: %w", err)
		}
		files = append(files, fatimg.File{Name: "user-data", Data: b})
	case fi.IsDir():
		ents, err := os.ReadDir(path)
		if err != nil {
			return "", fmt.Errorf("-data: %w", err)
		}
		for _, e := range ents {
			p := filepath.Join(path, e.Name())
			if !e.Type().IsRegular() {
				return "", fmt.Errorf("-data %s: %s is not a regular file (a config drive holds files at its root only)", path, e.Name())
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return "", fmt.Errorf("-data: %w", err)
			}
			files = append(files, fatimg.File{Name: e.Name(), Data: b})
		}
	default:
		return "", fmt.Errorf("-data %s: want a file (the user-data) or a folder (the drive's files)", path)
	}
	hasMeta := false
	h := sha256.New()
	for _, f := range files {
		hasMeta = hasMeta || f.Name == "meta-data"
		fmt.Fprintf(h, "%s\x00%d\x00", f.Name, len(f.Data))
		h.Write(f.Data)
	}
	if !hasMeta {
		id := "kiln-" + hex.EncodeToString(h.Sum(nil))[:16]
		files = append(files, fatimg.File{Name: "meta-data", Data: []byte("instance-id: " + id + "\n")})
	}
	var img bytes.Buffer
	if err := fatimg.Write(&img, "cidata", files); err != nil {
		return "", fmt.Errorf("-data %s: %w", path, err)
	}
	f, err := os.CreateTemp("", "kiln-cidata-*.img")
	if err != nil {
		return "", err
	}
	if _, err := f.Write(img.Bytes()); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
