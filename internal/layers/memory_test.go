package layers

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/kiln-os/kiln/internal/testenv"
)

// genLayer is a Layer whose tar stream is generated on the fly, so that large layers cost
// no memory in the test either.
type genLayer []genEntry

type genEntry struct {
	name     string
	typ      byte
	size     int64
	linkname string
}

func (g genLayer) Open() (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		for _, e := range g {
			h := &tar.Header{Name: e.name, Typeflag: e.typ, Size: e.size, Linkname: e.linkname, Mode: 0o644}
			if e.typ != tar.TypeReg {
				h.Size = 0
			}
			if err := tw.WriteHeader(h); err != nil {
				pw.CloseWithError(err)
				return
			}
			if h.Size > 0 {
				if _, err := io.CopyN(tw, pattern{}, h.Size); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
		}
		pw.CloseWithError(tw.Close())
	}()
	return pr, nil
}

// pattern reads as an endless run of non-zero bytes.
type pattern struct{}

func (pattern) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i%251) + 1
	}
	return len(p), nil
}

// discard is an archive.Writer that reads and drops every body.
type discard struct{ n int }

func (d *discard) WriteEntry(e archiveEntry, body io.Reader) error {
	d.n++
	if body != nil {
		if _, err := io.Copy(io.Discard, body); err != nil {
			return err
		}
	}
	return nil
}
func (d *discard) Close() error { return nil }

// sizedImage has 16 files of fileSize in three layers, one of them a hidden hard-link target
// that must be spooled: content grows with fileSize, the number of entries does not.
func sizedImage(fileSize int64) []Layer {
	reg := func(name string) genEntry { return genEntry{name: name, typ: tar.TypeReg, size: fileSize} }
	l0 := genLayer{{name: "d/", typ: tar.TypeDir}}
	for i := range 8 {
		l0 = append(l0, reg(fmt.Sprintf("d/f%d", i)))
	}
	l0 = append(l0, genEntry{name: "d/link", typ: tar.TypeLink, linkname: "d/f0"})
	l1 := genLayer{{name: "d/.wh.f0", typ: tar.TypeReg}}
	for i := 4; i < 8; i++ {
		l1 = append(l1, reg(fmt.Sprintf("d/f%d", i)))
	}
	var l2 genLayer
	for i := range 4 {
		l2 = append(l2, reg(fmt.Sprintf("e/g%d", i)))
	}
	return []Layer{l0, l1, l2}
}

// heapPeak runs f while sampling the bytes of live and not yet swept heap objects, and
// returns the highest sample and the bytes allocated by everything meanwhile.
func heapPeak(f func()) (peak, allocated uint64) {
	runtime.GC()
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(samples)
	base := samples[1].Value.Uint64()
	peak = samples[0].Value.Uint64()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	f()
	close(stop)
	wg.Wait()
	metrics.Read(samples)
	return max(peak, samples[0].Value.Uint64()), samples[1].Value.Uint64() - base
}

// TestFlattenMemoryFlat checks that memory does not grow with content: four times the
// bytes (64 MiB against 256 MiB, 16 MiB of it spooled) may not raise the heap high-water
// mark, nor the bytes allocated, by more than a small slack.
func TestFlattenMemoryFlat(t *testing.T) {
	testenv.Short(t, "streams 640 MiB")
	const slack = 4 << 20
	run := func(fileSize int64) (peak, alloc uint64) {
		var st Stats
		var err error
		peak, alloc = heapPeak(func() {
			st, err = Flatten(context.Background(), sizedImage(fileSize), &discard{}, WithTempDir(t.TempDir()))
		})
		if err != nil {
			t.Fatal(err)
		}
		// Visible: f1..f7, the spooled link, g0..g3.
		if want := 12 * fileSize; st.Bytes != want || st.Spooled != fileSize {
			t.Fatalf("Stats = %+v, want Bytes %d and Spooled %d", st, want, fileSize)
		}
		return peak, alloc
	}
	peakSmall, allocSmall := run(4 << 20)  // 64 MiB of content
	peakLarge, allocLarge := run(16 << 20) // 256 MiB
	t.Logf("64 MiB: peak heap %d B, allocated %d B; 256 MiB: peak heap %d B, allocated %d B",
		peakSmall, allocSmall, peakLarge, allocLarge)
	if peakLarge > peakSmall+slack {
		t.Errorf("heap high-water mark grew with content: %d -> %d bytes", peakSmall, peakLarge)
	}
	if allocLarge > allocSmall+slack {
		t.Errorf("allocations grew with content: %d -> %d bytes", allocSmall, allocLarge)
	}
}

// BenchmarkFlatten flattens 200 MiB of content in three layers, with overwrites, whiteouts
// and a spooled hard link, and reports the heap high-water mark.
func BenchmarkFlatten(b *testing.B) {
	const mib = 1 << 20
	reg := func(name string) genEntry { return genEntry{name: name, typ: tar.TypeReg, size: mib} }
	var l0, l1, l2 genLayer
	for i := range 100 {
		l0 = append(l0, reg(fmt.Sprintf("usr/lib/%02d/f", i)))
	}
	l0 = append(l0, genEntry{name: "usr/bin/x", typ: tar.TypeLink, linkname: "usr/lib/00/f"})
	l1 = append(l1, genEntry{name: "usr/lib/.wh.00", typ: tar.TypeReg})
	for i := range 60 {
		l1 = append(l1, reg(fmt.Sprintf("usr/lib/%02d/f", 50+i)))
	}
	for i := range 40 {
		l2 = append(l2, reg(fmt.Sprintf("opt/%02d", i)))
	}
	layers := []Layer{l0, l1, l2}
	b.SetBytes(200 * mib)
	b.ReportAllocs()
	tmp := b.TempDir()
	var peak uint64
	b.ResetTimer()
	for b.Loop() {
		p, _ := heapPeak(func() {
			if _, err := Flatten(context.Background(), layers, &discard{}, WithTempDir(tmp)); err != nil {
				b.Fatal(err)
			}
		})
		peak = max(peak, p)
	}
	b.ReportMetric(float64(peak), "peak-heap-B")
}

// manyLayer generates n entries (a directory, then 100 small files in it, and again)
// without holding them.
type manyLayer int

func (m manyLayer) Open() (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		for i := range int(m) {
			h := &tar.Header{Typeflag: tar.TypeReg, Size: 10, Mode: 0o644,
				Name: fmt.Sprintf("usr/lib/x86_64-linux-gnu/package-%04d/file-%03d.so", i/101, i%101)}
			if i%101 == 0 {
				h = &tar.Header{Typeflag: tar.TypeDir, Mode: 0o755,
					Name: fmt.Sprintf("usr/lib/x86_64-linux-gnu/package-%04d/", i/101)}
			}
			err := tw.WriteHeader(h)
			if err == nil && h.Size > 0 {
				_, err = tw.Write([]byte("0123456789"))
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(tw.Close())
	}()
	return pr, nil
}

// liveSampler is a discard writer that measures the live heap (after a collection) every
// `every` entries.
type liveSampler struct {
	discard
	every int
	live  uint64
}

func (l *liveSampler) WriteEntry(e archiveEntry, body io.Reader) error {
	if l.n%l.every == l.every-1 {
		runtime.GC()
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		l.live = max(l.live, s[0].Value.Uint64())
	}
	return l.discard.WriteEntry(e, body)
}

// TestFlattenMemoryPerEntry checks that memory grows little with the number of entries:
// from 25k to 200k files, the live heap during pass 2 (the whole index is held then) may grow
// by at most 256 bytes per entry, and the heap high-water mark (live plus garbage not yet
// collected) by at most 640.
func TestFlattenMemoryPerEntry(t *testing.T) {
	testenv.Short(t, "indexes 225k entries")
	const liveMax, peakMax = 256, 640
	run := func(n int) (live, peak uint64) {
		w := &liveSampler{every: n / 4}
		var err error
		peak, _ = heapPeak(func() {
			_, err = Flatten(context.Background(), []Layer{manyLayer(n)}, w, WithTempDir(t.TempDir()))
		})
		if err != nil {
			t.Fatal(err)
		}
		if w.n != n+3 { // and usr, usr/lib, usr/lib/x86_64-linux-gnu
			t.Fatalf("%d entries written, want %d", w.n, n+3)
		}
		return w.live, peak
	}
	const small, large = 25_000, 200_000
	liveSmall, peakSmall := run(small)
	liveLarge, peakLarge := run(large)
	perLive := float64(int64(liveLarge)-int64(liveSmall)) / (large - small)
	perPeak := float64(int64(peakLarge)-int64(peakSmall)) / (large - small)
	t.Logf("live heap %d -> %d B (%.0f B/entry), peak %d -> %d B (%.0f B/entry)",
		liveSmall, liveLarge, perLive, peakSmall, peakLarge, perPeak)
	if perLive > liveMax {
		t.Errorf("live heap grows by %.0f bytes per entry, more than %d", perLive, liveMax)
	}
	if perPeak > peakMax {
		t.Errorf("heap high-water mark grows by %.0f bytes per entry, more than %d", perPeak, peakMax)
	}
}
