package layers

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"

	"github.com/kiln-os/kiln/internal/archive"
)

// emitter is pass 2.
type emitter struct {
	idx     *index
	w       archive.Writer
	prefix  string
	tempDir string
	stats   Stats

	spool    *os.File
	spoolEnd int64
}

func (e *emitter) run(ctx context.Context, layers []Layer) error {
	root := e.idx.root
	if e.prefix == "" {
		root.emitted = true
	} else if err := e.writeDir(root); err != nil {
		return err
	}
	var order []int
	for li, evs := range e.idx.events {
		if len(evs) > 0 {
			order = append(order, li)
		}
	}
	if len(order) > 0 {
		ra := newReadAhead(layers, order)
		defer ra.close()
		for _, li := range order {
			if err := e.layer(ctx, ra, li, e.idx.events[li]); err != nil {
				return err
			}
		}
	}
	// Directories nothing has written yet: synthesised parents whose contents are gone.
	return e.rest(root)
}

// layer writes the entries of layer li that evs name, reading it from ra.
func (e *emitter) layer(ctx context.Context, ra *readAhead, li int, evs []event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := ra.openLayer(li)
	if err != nil {
		return fmt.Errorf("layer %d: open: %w", li, err)
	}
	if err := e.entries(ctx, li, r, evs); err != nil {
		// A layer that does not read as it should may be a corrupt one: closing it (a
		// verifying Layer checks its digest then) says so, and that comes first. This is
		// the only read of the layer when its header index came from a store.
		if ctx.Err() == nil && (errors.Is(err, ErrInvalidLayer) || errors.Is(err, ErrLayerChanged)) {
			if cerr := r.finish(); cerr != nil {
				return closeError(li, err, cerr)
			}
		}
		return err
	}
	if err := r.finish(); err != nil {
		return fmt.Errorf("layer %d: close: %w", li, err)
	}
	return nil
}

func (e *emitter) entries(ctx context.Context, li int, rc io.Reader, evs []event) error {
	// Bodies are read through ctx too: a cancel stops a large file in its middle.
	tr := tar.NewReader(ctxReader{ctx, rc})
	for i, k := int32(0), 0; k < len(evs); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := next(tr)
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("layer %d: %w: ends before entry %d", li, ErrLayerChanged, evs[k].idx)
		}
		if err != nil {
			return fmt.Errorf("layer %d entry %d: %w: %w", li, i, ErrInvalidLayer, err)
		}
		if i != evs[k].idx {
			continue
		}
		ev := evs[k]
		k++
		if err := e.entry(li, i, h, tr, ev); err != nil {
			return err
		}
	}
	return nil
}

// entry handles the events of one layer entry.
func (e *emitter) entry(li int, i int32, h *tar.Header, body io.Reader, ev event) error {
	n := ev.n
	if n == nil {
		n = ev.group.src
	}
	typ, err := normType(h.Typeflag)
	name, nerr := cleanName(h.Name)
	if err != nil || nerr != nil || !n.nameIs(name) ||
		(typ == tar.TypeDir) != n.isDir() || (!n.isDir() && typ != n.typ) {
		return fmt.Errorf("layer %d entry %d (%q): %w: expected %q", li, i, h.Name, ErrLayerChanged, n.rel())
	}
	if g := ev.group; g != nil {
		g.hdr = cleanHeader(h, typ)
		if g.spool {
			if err := e.spoolBody(g, body); err != nil {
				return fmt.Errorf("layer %d entry %d (%q): spool: %w", li, i, h.Name, err)
			}
		}
	}
	if ev.n == nil {
		return nil
	}
	if n.isDir() {
		return e.writeDir(n)
	}
	return e.writeNode(n, typ, h, body)
}

// writeDir writes directory n (after its parents) unless it is written already.
func (e *emitter) writeDir(n *node) error {
	if n.emitted {
		return nil
	}
	if n.parent != nil {
		if err := e.writeDir(n.parent); err != nil {
			return err
		}
	}
	var h tar.Header
	if n.hdr != nil {
		h = *n.hdr
	} else {
		h = tar.Header{Typeflag: tar.TypeDir, Mode: 0o755}
	}
	return e.write(n, h, 0, nil)
}

// writeNode writes non-directory n from its winning entry h.
func (e *emitter) writeNode(n *node, typ byte, h *tar.Header, body io.Reader) error {
	if err := e.writeDir(n.parent); err != nil {
		return err
	}
	g := n.group
	switch {
	case g == nil || n == g.src:
		links := 0
		if g != nil && g.head == n {
			links = g.count
		}
		return e.write(n, *cleanHeader(h, typ), links, body)
	case g.copyHdr:
		return e.write(n, *g.hdr, 0, nil)
	case n == g.head:
		return e.write(n, *g.hdr, g.count, io.NewSectionReader(e.spool, g.off, g.size))
	default:
		if !g.head.emitted {
			return fmt.Errorf("internal error: hard link %q before its target", n.rel())
		}
		// g.out is an output name: it carries the prefix already.
		return e.write(n, tar.Header{Typeflag: tar.TypeLink, Linkname: g.out}, 0, nil)
	}
}

// write sends one entry named after n's place in the output.
func (e *emitter) write(n *node, h tar.Header, links int, body io.Reader) error {
	var out string
	switch {
	case n.parent == nil:
		out = e.prefix
	case n.parent.out == "":
		out = n.name
	default:
		out = n.parent.out + "/" + n.name
	}
	// Only what later entries name is kept: directories (their children's names start with
	// theirs) and the members hard links point at.
	switch {
	case n.isDir():
		n.out = out
	case n.group != nil && n.group.head == n:
		n.group.out = out
	}
	h.Name = out
	if h.PAXRecords != nil {
		h.PAXRecords = maps.Clone(h.PAXRecords)
	}
	if h.Typeflag != tar.TypeReg {
		h.Size = 0
		body = nil
	}
	if err := e.w.WriteEntry(archive.Entry{Header: &h, Links: links}, body); err != nil {
		return fmt.Errorf("write %q: %w", h.Name, err)
	}
	n.emitted = true
	e.stats.Entries++
	if h.Typeflag == tar.TypeReg {
		e.stats.Files++
		e.stats.Bytes += h.Size
	}
	return nil
}

// rest writes, in name order, the visible directories pass 2 has not reached.
func (e *emitter) rest(n *node) error {
	if !n.isDir() {
		if !n.emitted {
			return fmt.Errorf("internal error: %q was never written", n.rel())
		}
		return nil
	}
	if err := e.writeDir(n); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(n.children)) {
		if err := e.rest(n.children[name]); err != nil {
			return err
		}
	}
	return nil
}

func (e *emitter) spoolBody(g *group, body io.Reader) error {
	if e.spool == nil {
		f, err := os.CreateTemp(e.tempDir, "kiln-layers-spool-*")
		if err != nil {
			return err
		}
		e.spool = f
	}
	n, err := io.Copy(e.spool, body)
	if err != nil {
		return err
	}
	g.off, g.size = e.spoolEnd, n
	e.spoolEnd += n
	e.stats.Spooled += n
	return nil
}

// closeSpool removes the spool file; it may be called more than once.
func (e *emitter) closeSpool() error {
	if e.spool == nil {
		return nil
	}
	f := e.spool
	e.spool = nil
	cerr := f.Close()
	rerr := os.Remove(f.Name())
	return errors.Join(cerr, rerr)
}

// readEntry returns the body of the regular file at n.at, at most max bytes.
func readEntry(ctx context.Context, layers []Layer, n *node, max int64) (b []byte, err error) {
	li := int(n.at.layer)
	rc, err := layers[li].Open()
	if err != nil {
		return nil, fmt.Errorf("layer %d: open: %w", li, err)
	}
	defer func() {
		if ctx.Err() != nil {
			abandon(rc)
			return
		}
		if cerr := rc.Close(); cerr != nil {
			err = closeError(li, err, cerr)
		}
	}()
	tr := tar.NewReader(ctxReader{ctx, rc})
	for i := int32(0); ; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := next(tr)
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("layer %d: %w: ends before entry %d", li, ErrLayerChanged, n.at.idx)
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d entry %d: %w: %w", li, i, ErrInvalidLayer, err)
		}
		if i != n.at.idx {
			continue
		}
		if name, err := cleanName(h.Name); err != nil || !n.nameIs(name) {
			return nil, fmt.Errorf("layer %d entry %d (%q): %w: expected %q", li, i, h.Name, ErrLayerChanged, n.rel())
		}
		if h.Size > max {
			return nil, fmt.Errorf("%q: %d bytes, more than the limit of %d", n.rel(), h.Size, max)
		}
		b := make([]byte, h.Size)
		if _, err := io.ReadFull(tr, b); err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
			return nil, fmt.Errorf("layer %d entry %d (%q): %w", li, i, h.Name, err)
		}
		return b, nil
	}
}
