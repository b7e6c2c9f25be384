package layers

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// memStore is an IndexStore in memory.
type memStore struct {
	mu       sync.Mutex
	b        []byte
	opens    atomic.Int32
	writes   atomic.Int32
	writeErr error
}

func (s *memStore) OpenIndex() (io.ReadSeekCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opens.Add(1)
	if s.b == nil {
		return nil, fs.ErrNotExist
	}
	return nopSeekCloser{bytes.NewReader(bytes.Clone(s.b))}, nil
}

func (s *memStore) WriteIndex(write func(io.Writer) error) error {
	s.writes.Add(1)
	if s.writeErr != nil {
		return s.writeErr
	}
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = buf.Bytes()
	return nil
}

// storedLayer is a memLayer with a store.
type storedLayer struct {
	*memLayer
	store *memStore
}

func (l storedLayer) IndexStore() IndexStore { return l.store }

func withStores(ls []Layer) []Layer {
	out := make([]Layer, len(ls))
	for i, l := range ls {
		out[i] = storedLayer{l.(*memLayer), &memStore{}}
	}
	return out
}

func opens(ls []Layer) (n int32) {
	for _, l := range ls {
		n += l.(storedLayer).opens.Load()
	}
	return n
}

// richLayers has every kind of record the index encodes: directories with owners, names and
// extended attributes, hard links, whiteouts, opaque directories, devices, a root entry.
func richLayers(t testing.TB) []Layer {
	l0 := []ent{
		dir(".").mode(0o751),
		dir("etc").mode(0o700).owner(3, 4),
		file("etc/passwd", "root"),
		dir("home/u").owner(1000, 1000).xattr("user.a", "1").xattr("trusted.b", "2"),
		file("home/u/f", "y").xattr("security.capability", "cap"),
		hardlink("home/u/g", "home/u/f"),
		device(tar.TypeChar, "dev/null", 1, 3),
		fifo("run/fifo"),
		symlink("bin/sh", "busybox"),
		file("bin/busybox", "bb"),
		file("opt/a/x", "x"),
	}
	l0[1].h.Uname, l0[1].h.Gname = "root", "wheel"
	l1 := []ent{
		whiteout("bin/busybox"),
		opaque("opt/a"),
		file("opt/a/y", "y"),
		whiteout("home/u/f"),
		dir("etc").mode(0o755),
	}
	return mkLayers(t, l0, l1, []ent{file("top", "t"), dir("home/u").mode(0o700)})
}

func TestIndexStoreReuse(t *testing.T) {
	for name, base := range map[string][]Layer{"rich": richLayers(t), "mixed": mixedLayers(t)} {
		t.Run(name, func(t *testing.T) {
			want, _ := flatten(t, base)
			ls := withStores(base)
			first, _ := flatten(t, ls)
			diffLines(t, first.listing(), want.listing())
			firstOpens := opens(ls)
			for _, l := range ls {
				if s := l.(storedLayer).store; s.writes.Load() != 1 || s.b == nil {
					t.Fatalf("index not stored: %d writes", s.writes.Load())
				}
			}
			again, _ := flatten(t, ls)
			diffLines(t, again.listing(), want.listing())
			// The second flattening reads each layer for its content only.
			if got := opens(ls) - firstOpens; got > int32(len(ls)) {
				t.Errorf("second Flatten opened layers %d times, want at most %d", got, len(ls))
			}
			for _, l := range ls {
				if s := l.(storedLayer).store; s.writes.Load() != 1 {
					t.Errorf("a sound stored index was written again")
				}
			}
		})
	}
}

// TestIndexStoreDamaged: a stored index that is damaged anywhere, cut short, or of another
// version is rebuilt from the layer, and the output does not change.
func TestIndexStoreDamaged(t *testing.T) {
	base := richLayers(t)
	want, _ := flatten(t, base)
	ls := withStores(base)
	flatten(t, ls)
	good := bytes.Clone(ls[0].(storedLayer).store.b)
	damage := map[string]func([]byte) []byte{
		"empty":     func([]byte) []byte { return []byte{} },
		"truncated": func(b []byte) []byte { return b[:len(b)/2] },
		"no sum":    func(b []byte) []byte { return b[:len(b)-32] },
		"trailing":  func(b []byte) []byte { return append(b, 0) },
		"version": func(b []byte) []byte {
			b[len(indexMagic)] = indexVersion + 1
			return b
		},
	}
	for i := range len(good) {
		damage[fmt.Sprintf("flip %d", i)] = func(b []byte) []byte { b[i] ^= 0x40; return b }
	}
	for name, f := range damage {
		s := ls[0].(storedLayer).store
		s.b = f(bytes.Clone(good))
		s.writes.Store(0)
		got, _ := flatten(t, ls)
		diffLines(t, got.listing(), want.listing())
		if s.writes.Load() != 1 || !bytes.Equal(s.b, good) {
			t.Fatalf("%s: index not rebuilt (%d writes)", name, s.writes.Load())
		}
	}
}

// TestIndexStoreWriteFails: a store that cannot keep the index costs nothing but time.
func TestIndexStoreWriteFails(t *testing.T) {
	base := mixedLayers(t)
	want, _ := flatten(t, base)
	ls := withStores(base)
	for _, l := range ls {
		l.(storedLayer).store.writeErr = errors.New("read-only")
	}
	for range 2 {
		got, _ := flatten(t, ls)
		diffLines(t, got.listing(), want.listing())
	}
}

// TestIndexSpilled: an index larger than spillMemMax goes through a temporary file, which is
// gone afterwards, with the same output.
func TestIndexSpilled(t *testing.T) {
	base := mixedLayers(t)
	want, _ := flatten(t, base)
	old := spillMemMax
	spillMemMax = 64
	defer func() { spillMemMax = old }()
	tmp := t.TempDir()
	got, _ := flatten(t, base, WithTempDir(tmp))
	diffLines(t, got.listing(), want.listing())
	got, _ = flatten(t, withStores(base), WithTempDir(tmp))
	diffLines(t, got.listing(), want.listing())
	if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
		t.Errorf("temporary files left: %v %v", ents, err)
	}
}

// TestReadFileWithStore: ReadFile fills the store and reads from it.
func TestReadFileWithStore(t *testing.T) {
	ls := withStores(richLayers(t))
	for range 2 {
		b, err := ReadFile(context.Background(), ls, "home/u/g", 100)
		if err != nil || string(b) != "y" {
			t.Fatalf("ReadFile = %q, %v", b, err)
		}
	}
}

// gzipLayer is a Layer over a gzip-compressed tar, inflated at every Open.
type gzipLayer struct{ b []byte }

func (g gzipLayer) Open() (io.ReadCloser, error) { return gzip.NewReader(bytes.NewReader(g.b)) }

type storedGzipLayer struct {
	gzipLayer
	store *memStore
}

func (l storedGzipLayer) IndexStore() IndexStore { return l.store }

// BenchmarkFlattenIndexReuse flattens 50k small files in one layer, plain or gzip: "none"
// reads the headers every time (two passes over the layer), "stored" keeps the index in a
// store after the first run, as kiln build does with the cache (one pass).
func BenchmarkFlattenIndexReuse(b *testing.B) {
	const n = 50_000
	var buf bytes.Buffer
	rc, _ := manyLayer(n).Open()
	if _, err := io.Copy(&buf, rc); err != nil {
		b.Fatal(err)
	}
	raw := buf.Bytes()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw); err != nil || zw.Close() != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"plain/none", "plain/stored", "gzip/none", "gzip/stored"} {
		b.Run(mode, func(b *testing.B) {
			var l Layer
			switch mode {
			case "plain/none":
				l = &memLayer{b: raw}
			case "plain/stored":
				l = storedLayer{&memLayer{b: raw}, &memStore{}}
			case "gzip/none":
				l = gzipLayer{gz.Bytes()}
			case "gzip/stored":
				l = storedGzipLayer{gzipLayer{gz.Bytes()}, &memStore{}}
			}
			tmp := b.TempDir()
			flat := func() {
				if _, err := Flatten(context.Background(), []Layer{l}, &discard{}, WithTempDir(tmp)); err != nil {
					b.Fatal(err)
				}
			}
			flat() // fills the store
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				flat()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/entry")
		})
	}
}
