package main

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// entry is one file, directory or symlink of a tar the seed writes. A regular file's body
// comes from src (a host file, streamed) or, when src is empty, from data.
type entry struct {
	name     string // slash-separated, relative, no trailing slash
	typ      byte   // tar.TypeReg, tar.TypeDir or tar.TypeSymlink
	mode     int64
	linkname string
	src      string
	data     []byte
}

// writeTar writes entries sorted by name, every one owned by 0:0 with mtime, so the same
// entries give the same bytes on any machine. Names must be unique.
func writeTar(w io.Writer, entries []entry, mtime time.Time) error {
	sorted := append([]entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	tw := tar.NewWriter(w)
	for i, e := range sorted {
		if i > 0 && sorted[i-1].name == e.name {
			return fmt.Errorf("tar entry %s given twice", e.name)
		}
		if e.name == "" || strings.HasPrefix(e.name, "/") || strings.HasSuffix(e.name, "/") {
			return fmt.Errorf("tar entry %q: want a relative name without a trailing slash", e.name)
		}
		hdr := &tar.Header{
			Typeflag: e.typ,
			Name:     e.name,
			Mode:     e.mode,
			ModTime:  mtime,
			Linkname: e.linkname,
		}
		if e.typ == tar.TypeDir {
			hdr.Name += "/"
		}
		if err := writeEntry(tw, hdr, e); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, hdr *tar.Header, e entry) error {
	if e.typ != tar.TypeReg {
		return tw.WriteHeader(hdr)
	}
	if e.src == "" {
		hdr.Size = int64(len(e.data))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(e.data)
		return err
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr.Size = fi.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("adding %s: %w", e.name, err)
	}
	return nil
}

// writeTarFile writes a tar of entries to file.
func writeTarFile(file string, entries []entry, mtime time.Time) (err error) {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	return writeTar(f, entries, mtime)
}

// fileLayer writes entries to file and returns an OCI layer read from it (gzip-compressed on
// the fly by go-containerregistry at a fixed level, so its digest is stable). The file must
// outlive every use of the layer.
func fileLayer(file string, entries []entry, mtime time.Time) (v1.Layer, error) {
	if err := writeTarFile(file, entries, mtime); err != nil {
		return nil, fmt.Errorf("writing layer %s: %w", file, err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(file) },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", file, err)
	}
	return l, nil
}

// oneLayerImage makes an OCI image for linux/arch from one layer and the given runtime config.
// Every time in it is mtime.
func oneLayerImage(arch string, mtime time.Time, cfg v1.Config, layer v1.Layer, createdBy string) (v1.Image, error) {
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	cf := &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Variant:      variant(arch),
		Created:      v1.Time{Time: mtime.UTC()},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	}
	img, err := mutate.ConfigFile(base, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: mtime.UTC()}, CreatedBy: createdBy},
	})
}

// variant is the OCI platform variant conventionally recorded for arch.
func variant(arch string) string {
	if arch == "arm64" {
		return "v8"
	}
	return ""
}
