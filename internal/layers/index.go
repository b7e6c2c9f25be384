package layers

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// pos names one entry of one layer: the idx-th header (from 0) of layer number layer.
type pos struct {
	layer, idx int32
}

var noPos = pos{-1, -1}

func (p pos) valid() bool { return p.layer >= 0 }

// node is one path of the flattened view as pass 1 leaves it. Nodes that an upper layer
// removes are detached from the tree (they may still be referenced as hard-link sources).
// A build keeps one per path, so what only directories need is in dirNode: a file's node is 64
// bytes.
type node struct {
	name     string
	parent   *node
	*dirNode        // non-nil exactly for directories
	group    *group // non-directories sharing content through hard links
	at       pos    // entry written by pass 2 (for directories: the first one naming it)
	typ      byte   // non-directories: the normalised type flag of the winning entry

	visible bool // reachable from the root once every layer is indexed
	emitted bool // pass 2: written
}

// dirNode is what a directory's node has beyond a file's.
type dirNode struct {
	children map[string]*node
	hdr      *tar.Header // cleaned header of the winning entry, nil when synthesised
	out      string      // pass 2: output name, once written
}

func (n *node) isDir() bool { return n.dirNode != nil }

// rel is the path of n relative to the image root ("." for the root).
func (n *node) rel() string {
	if n.parent == nil {
		return "."
	}
	var parts []string
	for m := n; m.parent != nil; m = m.parent {
		parts = append(parts, m.name)
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, "/")
}

// nameIs reports whether the cleaned name of an entry is n's path, without building it.
func (n *node) nameIs(name string) bool {
	if n.parent == nil {
		return name == "."
	}
	for m := n; m.parent != nil; m = m.parent {
		if !strings.HasSuffix(name, m.name) {
			return false
		}
		name = name[:len(name)-len(m.name)]
		if m.parent.parent != nil {
			if !strings.HasSuffix(name, "/") {
				return false
			}
			name = name[:len(name)-1]
		}
	}
	return name == ""
}

// group is a set of entries sharing one content through tar hard links: the source entry
// that carries the body and the TypeLink entries that resolved to it.
type group struct {
	src   *node
	links []*node // in stream order

	// Decided once every layer is indexed.
	head    *node // member written with the content; the other visible members link to it
	count   int   // visible TypeLink entries that will name head
	copyHdr bool  // src is not a regular file: visible links are written as copies of it
	spool   bool  // src is hidden: pass 2 copies its body to the spool file

	// Pass 2.
	hdr       *tar.Header // cleaned header of src
	off, size int64       // spooled content
	out       string      // output name of head, once written
}

// event is something pass 2 must do at one entry of a layer.
type event struct {
	idx   int32
	n     *node  // write n from this entry
	group *group // this entry is the source of group: keep its header (and spool its body)
}

// index is the result of pass 1.
type index struct {
	root   *node
	events [][]event // per layer, by entry index
	groups []*group  // in creation order
}

// rec is what pass 1 keeps of one entry while it indexes that entry's layer.
type rec struct {
	idx      int32
	name     string // cleaned
	kind     recKind
	typ      byte        // normalised type flag
	linkname string      // hard links: cleaned target
	hdr      *tar.Header // directories: cleaned header
}

type recKind uint8

const (
	recEntry recKind = iota
	recWhiteout
	recOpaque
)

func newDir(name string, parent *node, hdr *tar.Header, at pos) *node {
	return &node{name: name, parent: parent, dirNode: &dirNode{children: map[string]*node{}, hdr: hdr}, at: at}
}

// buildIndex is pass 1. The headers of the layers are read in parallel (at most
// GOMAXPROCS layers at a time, claimed bottom first), each into its encoded index (from the
// layer's IndexStore when it has a sound one, else from the layer, spilling to tempDir), and
// applied to the index in layer order, each as soon as it and every layer below it are read.
// The error returned is the one of the lowest layer that fails, as if the layers were read one
// after the other; a failure cancels the reading of the layers above it.
func buildIndex(ctx context.Context, layers []Layer, tempDir string) (*index, error) {
	idx := &index{root: newDir("", nil, nil, noPos), events: make([][]event, len(layers))}
	type result struct {
		src       io.ReadSeekCloser
		whiteouts bool
		err       error
		done      chan struct{}
	}
	res := make([]result, len(layers))
	ctxs := make([]context.Context, len(layers))
	cancels := make([]context.CancelFunc, len(layers))
	for i := range layers {
		res[i].done = make(chan struct{})
		ctxs[i], cancels[i] = context.WithCancel(ctx)
	}
	// cancelFrom stops the reading of layer i and of every layer above it.
	cancelFrom := func(i int) {
		for _, c := range cancels[i:] {
			c()
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	defer func() {
		cancelFrom(0)
		wg.Wait()
		for i := range res {
			if res[i].src != nil {
				_ = res[i].src.Close()
			}
		}
	}()
	for range min(runtime.GOMAXPROCS(0), len(layers)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(layers) {
					return
				}
				res[i].src, res[i].whiteouts, res[i].err = layerIndex(ctxs[i], i, layers[i], tempDir)
				if res[i].err != nil {
					cancelFrom(i + 1)
				}
				close(res[i].done)
			}
		})
	}
	for i := range layers {
		<-res[i].done
		if err := res[i].err; err != nil {
			return nil, err
		}
		err := idx.apply(ctx, int32(i), res[i].src, res[i].whiteouts)
		cerr := res[i].src.Close()
		res[i].src = nil
		if err != nil {
			return nil, err
		}
		if cerr != nil {
			return nil, fmt.Errorf("layer %d: index: %w", i, cerr)
		}
	}
	idx.finish()
	return idx, nil
}

// layerIndex returns the encoded index of layer li, positioned at its start: the stored one
// when the layer has a store holding a sound one, else one read from the layer (and then
// stored).
func layerIndex(ctx context.Context, li int, l Layer, tempDir string) (src io.ReadSeekCloser, whiteouts bool, err error) {
	var store IndexStore
	if il, ok := l.(IndexedLayer); ok {
		store = il.IndexStore()
	}
	if store != nil {
		if src, err := store.OpenIndex(); err == nil {
			whiteouts, err := verifyIndex(src)
			if err == nil {
				return src, whiteouts, nil
			}
			_ = src.Close() // damaged or from another version: rebuilt below
		}
	}
	sp := &spill{dir: tempDir}
	enc, err := newIndexEncoder(sp)
	if err == nil {
		err = readHeaders(ctx, li, l, enc)
	}
	if err == nil {
		err = enc.close()
	}
	if err != nil {
		sp.discard()
		return nil, false, err
	}
	if store != nil {
		_ = store.WriteIndex(sp.writeTo) // a cache that cannot keep it costs the next build time only
	}
	src, err = sp.reader()
	if err != nil {
		return nil, false, fmt.Errorf("layer %d: index: %w", li, err)
	}
	return src, enc.whiteouts > 0, nil
}

// readHeaders reads the headers of one layer, skipping the bodies, into enc, and drains the
// stream so that a verifying Layer sees its end.
func readHeaders(ctx context.Context, li int, l Layer, enc *indexEncoder) (err error) {
	rc, err := l.Open()
	if err != nil {
		return fmt.Errorf("layer %d: open: %w", li, err)
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
	// Skipping a large body reads it: check the context there too, not only between entries.
	r := ctxReader{ctx, rc}
	tr := tar.NewReader(r)
	for i := int32(0); ; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := next(tr)
		if errors.Is(err, io.EOF) {
			break
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			return fmt.Errorf("layer %d entry %d: %w: %w", li, i, ErrInvalidLayer, err)
		}
		r, keep, err := newRec(i, h)
		if err != nil {
			return fmt.Errorf("layer %d entry %d (%q): %w: %w", li, i, h.Name, ErrInvalidLayer, err)
		}
		if keep {
			if err := enc.add(r); err != nil {
				return fmt.Errorf("layer %d: index: %w", li, err)
			}
		}
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return fmt.Errorf("layer %d: %w", li, err)
	}
	return nil
}

// Abandoner is implemented by layer readers whose Close does more than release resources, for
// example reading the rest of the stream to check its digest. Flatten and ReadFile call
// Abandon instead of Close when they stop early, so that a cancelled build does not first
// read the rest of a large layer.
type Abandoner interface {
	Abandon()
}

// abandon releases rc without the work its Close might do.
func abandon(rc io.ReadCloser) {
	if a, ok := rc.(Abandoner); ok {
		a.Abandon()
		return
	}
	_ = rc.Close()
}

// ContextReader returns a reader of r that fails with ctx's error once ctx is done, so a
// cancelled build stops in the middle of a large body.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

// ctxReader stops reading once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// next is tr.Next, tolerating the ErrInsecurePath that GODEBUG=tarinsecurepath=0 adds (names
// are checked here).
func next(tr *tar.Reader) (*tar.Header, error) {
	h, err := tr.Next()
	if errors.Is(err, tar.ErrInsecurePath) && h != nil {
		err = nil
	}
	return h, err
}

// newRec classifies one header. keep is false for entries that are dropped silently.
func newRec(i int32, h *tar.Header) (r rec, keep bool, err error) {
	name, err := cleanName(h.Name)
	if err != nil {
		return rec{}, false, err
	}
	r = rec{idx: i, name: name}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if strings.Contains(dir, whiteoutPrefix) {
		for part := range strings.SplitSeq(dir, "/") {
			if strings.HasPrefix(part, whiteoutMeta) {
				return rec{}, false, nil // inside aufs metadata such as .wh..wh.plnk
			}
			if strings.HasPrefix(part, whiteoutPrefix) {
				return rec{}, false, errors.New("whiteout used as a directory")
			}
		}
	}
	if dir == "" {
		dir = "."
	}
	switch {
	case base == whiteoutOpaque:
		r.kind = recOpaque
		r.name = dir
		return r, true, nil
	case strings.HasPrefix(base, whiteoutMeta):
		return rec{}, false, nil
	case strings.HasPrefix(base, whiteoutPrefix):
		hidden := base[len(whiteoutPrefix):]
		if hidden == "" || hidden == "." || hidden == ".." {
			return rec{}, false, errors.New("invalid whiteout")
		}
		r.kind = recWhiteout
		r.name = path.Join(dir, hidden)
		return r, true, nil
	}
	r.typ, err = normType(h.Typeflag)
	if err != nil {
		return rec{}, false, err
	}
	if strings.IndexByte(h.Linkname, 0) >= 0 {
		return rec{}, false, errors.New("link target contains NUL")
	}
	switch r.typ {
	case tar.TypeDir:
		r.hdr = cleanHeader(h, tar.TypeDir)
	case tar.TypeLink:
		if r.linkname, err = cleanName(h.Linkname); err != nil {
			return rec{}, false, fmt.Errorf("hard link target: %w", err)
		}
		if r.linkname == "." {
			return rec{}, false, errors.New("hard link to the root")
		}
	}
	if name == "." && r.typ != tar.TypeDir {
		return rec{}, false, errors.New("root is not a directory")
	}
	return r, true, nil
}

// normType maps the type flags that mean the same thing to one and rejects the rest.
func normType(t byte) (byte, error) {
	switch t {
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse:
		return tar.TypeReg, nil
	case tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return t, nil
	}
	return 0, fmt.Errorf("unsupported entry type %q", t)
}

func isRegular(t byte) bool { return t == tar.TypeReg }

// cleanHeader copies what the output keeps of h: type, mode (permissions and
// setuid/setgid/sticky), owner, symlink target, device numbers, size of regular files and
// the extended attributes. Names are set by the caller; timestamps stay zero.
func cleanHeader(h *tar.Header, typ byte) *tar.Header {
	c := &tar.Header{
		Typeflag: typ,
		Mode:     h.Mode & 0o7777,
		Uid:      h.Uid,
		Gid:      h.Gid,
		Uname:    h.Uname,
		Gname:    h.Gname,
	}
	switch typ {
	case tar.TypeReg:
		c.Size = h.Size
	case tar.TypeSymlink:
		c.Linkname = h.Linkname
	case tar.TypeChar, tar.TypeBlock:
		c.Devmajor, c.Devminor = h.Devmajor, h.Devminor
	}
	for k, v := range h.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			if c.PAXRecords == nil {
				c.PAXRecords = map[string]string{}
			}
			c.PAXRecords[k] = v
		}
	}
	return c
}

// apply indexes one layer from its encoded index: its whiteouts first (they hide lower
// layers only, wherever they appear in the layer), then its entries in order (a later
// duplicate wins).
func (x *index) apply(ctx context.Context, layer int32, src io.ReadSeeker, whiteouts bool) error {
	each := func(fn func(rec) error) error {
		if _, err := src.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("layer %d: index: %w", layer, err)
		}
		d, err := newIndexDecoder(src)
		if err != nil {
			return fmt.Errorf("layer %d: index: %w", layer, err)
		}
		for n := 0; ; n++ {
			if n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			r, ok, err := d.next()
			if err != nil {
				return fmt.Errorf("layer %d: index: %w", layer, err)
			}
			if !ok {
				return nil
			}
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	if whiteouts {
		err := each(func(r rec) error {
			switch r.kind {
			case recWhiteout:
				if n := x.lookup(r.name); n != nil {
					detach(n)
				}
			case recOpaque:
				if d := x.lookup(r.name); d != nil && d.isDir() {
					clear(d.children)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return each(func(r rec) error {
		if r.kind != recEntry {
			return nil
		}
		if err := x.add(pos{layer, r.idx}, r); err != nil {
			return fmt.Errorf("layer %d entry %d (%q): %w: %w", layer, r.idx, r.name, ErrInvalidLayer, err)
		}
		return nil
	})
}

func (x *index) add(at pos, r rec) error {
	if r.name == "." {
		x.root.hdr = r.hdr
		if !x.root.at.valid() {
			x.root.at = at
		}
		return nil
	}
	var target *node
	if r.typ == tar.TypeLink {
		target = x.lookup(r.linkname)
		if target == nil {
			return fmt.Errorf("hard link target %q does not exist", r.linkname)
		}
		if target.isDir() {
			return fmt.Errorf("hard link target %q is a directory", r.linkname)
		}
	}
	dir, base := path.Split(r.name)
	parent := x.mkdirAll(strings.TrimSuffix(dir, "/"))
	old := parent.children[base]
	if r.typ == tar.TypeDir {
		if old != nil && old.isDir() {
			old.hdr = r.hdr
			if !old.at.valid() {
				old.at = at
			}
			return nil
		}
		d := newDir(strings.Clone(base), parent, r.hdr, at)
		parent.children[d.name] = d
		return nil
	}
	// The name is cloned: base is part of the record's whole path, which is not kept.
	n := &node{name: strings.Clone(base), parent: parent, at: at, typ: r.typ}
	if target != nil {
		g := target.group
		if g == nil {
			g = &group{src: target}
			target.group = g
			x.groups = append(x.groups, g)
		}
		n.group = g
		g.links = append(g.links, n)
	}
	parent.children[n.name] = n
	return nil
}

// lookup finds the node at a cleaned name, or nil.
func (x *index) lookup(name string) *node {
	n := x.root
	if name == "." {
		return n
	}
	for part := range strings.SplitSeq(name, "/") {
		if !n.isDir() {
			return nil
		}
		if n = n.children[part]; n == nil {
			return nil
		}
	}
	return n
}

// mkdirAll returns the directory at a cleaned name ("" or "." for the root), synthesising
// missing directories and replacing non-directories on the way.
func (x *index) mkdirAll(name string) *node {
	n := x.root
	if name == "" || name == "." {
		return n
	}
	for part := range strings.SplitSeq(name, "/") {
		c := n.children[part]
		if c == nil || !c.isDir() {
			c = newDir(strings.Clone(part), n, nil, noPos)
			n.children[c.name] = c
		}
		n = c
	}
	return n
}

// detach removes n (and so its subtree) from the view.
func detach(n *node) {
	if n.parent != nil && n.parent.children[n.name] == n {
		delete(n.parent.children, n.name)
	}
}

// finish marks the visible nodes, decides how each hard-link group is written and sorts
// the work of pass 2 by position.
func (x *index) finish() {
	// Count first, so that each layer's events take one allocation of the exact size (a
	// growing slice would double the memory of the largest layer's).
	counts := make([]int, len(x.events))
	var walk func(n *node)
	walk = func(n *node) {
		n.visible = true
		if n != x.root && n.at.valid() {
			counts[n.at.layer]++
		}
		if n.isDir() {
			for _, c := range n.children {
				walk(c)
			}
		}
	}
	walk(x.root)
	for _, g := range x.groups {
		if g.src.at.valid() {
			counts[g.src.at.layer]++
		}
	}
	for li, c := range counts {
		x.events[li] = make([]event, 0, c)
	}
	var collect func(n *node)
	collect = func(n *node) {
		if n != x.root && n.at.valid() {
			x.events[n.at.layer] = append(x.events[n.at.layer], event{idx: n.at.idx, n: n})
		}
		if n.isDir() {
			for _, c := range n.children {
				collect(c)
			}
		}
	}
	collect(x.root)

	for _, g := range x.groups {
		var vis []*node
		for _, l := range g.links {
			if l.visible {
				vis = append(vis, l)
			}
		}
		if len(vis) == 0 {
			continue
		}
		switch {
		case !isRegular(g.src.typ):
			g.copyHdr = true
		case g.src.visible:
			g.head, g.count = g.src, len(vis)
			continue // the source writes itself; nothing to capture
		default:
			g.spool = true
			g.head, g.count = vis[0], len(vis)-1
		}
		at := g.src.at
		x.events[at.layer] = append(x.events[at.layer], event{idx: at.idx, group: g})
	}

	for li, evs := range x.events {
		sort.Slice(evs, func(i, j int) bool {
			if evs[i].idx != evs[j].idx {
				return evs[i].idx < evs[j].idx
			}
			return evs[i].n != nil // the writing event first, then the capture (merged below)
		})
		merged := evs[:0]
		for _, ev := range evs {
			if k := len(merged) - 1; k >= 0 && merged[k].idx == ev.idx {
				if ev.group != nil {
					merged[k].group = ev.group
				}
				if ev.n != nil {
					merged[k].n = ev.n
				}
				continue
			}
			merged = append(merged, ev)
		}
		x.events[li] = merged
	}
}
