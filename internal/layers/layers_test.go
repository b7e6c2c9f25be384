package layers

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"
)

func flatten(t *testing.T, layers []Layer, opts ...Option) (*recorder, Stats) {
	t.Helper()
	rec := &recorder{keep: 1 << 20}
	st, err := Flatten(context.Background(), layers, rec, opts...)
	if err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	return rec, st
}

func diffLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") == strings.Join(want, "\n") {
		return
	}
	t.Errorf("listing mismatch\n--- got\n%s\n--- want\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
}

func TestFlatten(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		layers [][]ent
		want   []string
	}{
		{
			name: "single layer keeps every type and its metadata",
			layers: [][]ent{{
				dir("etc").mode(0o700),
				file("etc/passwd", "root:x:0:0"),
				file("bin/su", "su").mode(0o4755),
				file("bin/sg", "sg").mode(0o2711).owner(0, 42),
				dir("tmp").mode(0o1777),
				symlink("bin/sh", "busybox"),
				device(tar.TypeChar, "dev/null", 1, 3),
				device(tar.TypeBlock, "dev/sda", 8, 0).mode(0o660).owner(0, 6),
				fifo("run/fifo"),
				file("home/u/f", "y").owner(1000, 1001).xattr("user.a", "1").xattr("security.capability", "cap"),
				dir("home/u/d").xattr("trusted.overlay.opaque", "y"),
				file("mode", "m").mode(0o100640), // type bits in the mode field are dropped
			}},
			want: []string{
				`d etc 0700 0:0`,
				`f etc/passwd 0644 0:0 "root:x:0:0"`,
				`d bin 0755 0:0`,
				`f bin/su 4755 0:0 "su"`,
				`f bin/sg 2711 0:42 "sg"`,
				`d tmp 1777 0:0`,
				`l bin/sh -> busybox 0777 0:0`,
				`d dev 0755 0:0`,
				`c dev/null 1,3 0666 0:0`,
				`b dev/sda 8,0 0660 0:6`,
				`d run 0755 0:0`,
				`p run/fifo 0644 0:0`,
				`d home 0755 0:0`,
				`d home/u 0755 0:0`,
				`f home/u/f 0644 1000:1001 "y" security.capability=cap user.a=1`,
				`d home/u/d 0755 0:0 trusted.overlay.opaque=y`,
				`f mode 0640 0:0 "m"`,
			},
		},
		{
			name: "names are normalised",
			layers: [][]ent{{
				dir(".").named("./").mode(0o700), // the root: not written without a prefix
				dir("a").named("./a"),
				file("/a/b", "b"),
				dir("c").named("c/").mode(0o750),
				file("//c//d/../e", "e"),
				file("", "").typ(tar.TypeDir).named("."),
			}},
			want: []string{
				`d a 0755 0:0`,
				`f a/b 0644 0:0 "b"`,
				`d c 0750 0:0`,
				`f c/e 0644 0:0 "e"`,
			},
		},
		{
			name:   "missing parents are synthesised where first needed",
			layers: [][]ent{{file("x", "x"), file("a/b/c", "c"), dir("a/b").mode(0o700).owner(3, 3)}},
			want: []string{
				`f x 0644 0:0 "x"`,
				`d a 0755 0:0`,
				`d a/b 0700 3:3`, // written early, with the metadata of the entry that names it later
				`f a/b/c 0644 0:0 "c"`,
			},
		},
		{
			name:   "whiteout hides a lower file",
			layers: [][]ent{{file("a", "1"), file("b", "2")}, {whiteout("a")}},
			want:   []string{`f b 0644 0:0 "2"`},
		},
		{
			name: "whiteout hides a lower tree",
			layers: [][]ent{
				{dir("d"), file("d/x", "x"), dir("d/e"), file("d/e/y", "y"), file("k", "k")},
				{whiteout("d")},
			},
			want: []string{`f k 0644 0:0 "k"`},
		},
		{
			name: "whiteout in a nested directory keeps the directory",
			layers: [][]ent{
				{dir("d"), file("d/x", "x"), file("d/y", "y")},
				{whiteout("d/x")},
			},
			want: []string{`d d 0755 0:0`, `f d/y 0644 0:0 "y"`},
		},
		{
			name: "whiteout after a same-layer entry hides only lower layers",
			layers: [][]ent{
				{dir("d"), file("d/x", "old")},
				{dir("d").mode(0o700), file("d/y", "new"), whiteout("d"), file("f", "f"), whiteout("f")},
			},
			want: []string{`d d 0700 0:0`, `f d/y 0644 0:0 "new"`, `f f 0644 0:0 "f"`},
		},
		{
			name: "whiteout before a same-layer entry",
			layers: [][]ent{
				{dir("d"), file("d/x", "old")},
				{whiteout("d"), dir("d").mode(0o700), file("d/y", "new")},
			},
			want: []string{`d d 0700 0:0`, `f d/y 0644 0:0 "new"`},
		},
		{
			name:   "whiteouts in the bottom layer are dropped and create nothing",
			layers: [][]ent{{whiteout("a"), file("b", "2"), whiteout("c/d"), opaque("e")}},
			want:   []string{`f b 0644 0:0 "2"`},
		},
		{
			name: "opaque directory hides lower children and keeps the directory",
			layers: [][]ent{
				{dir("d"), file("d/x", "x"), dir("d/sub"), file("d/sub/z", "z"), file("k", "k")},
				{dir("d").mode(0o700), opaque("d"), file("d/n", "n")},
			},
			want: []string{`d d 0700 0:0`, `f k 0644 0:0 "k"`, `f d/n 0644 0:0 "n"`},
		},
		{
			name: "opaque marker after same-layer children keeps them",
			layers: [][]ent{
				{dir("d"), file("d/x", "x")},
				{dir("d"), file("d/n", "n"), opaque("d")},
			},
			want: []string{`d d 0755 0:0`, `f d/n 0644 0:0 "n"`},
		},
		{
			name:   "opaque root",
			layers: [][]ent{{file("a", "a"), dir("b")}, {opaque("."), file("c", "c")}},
			want:   []string{`f c 0644 0:0 "c"`},
		},
		{
			name:   "file over file",
			layers: [][]ent{{file("a", "old"), file("b", "b")}, {file("a", "new").mode(0o600)}},
			want:   []string{`f b 0644 0:0 "b"`, `f a 0600 0:0 "new"`},
		},
		{
			name:   "file over directory removes the lower tree",
			layers: [][]ent{{dir("a"), file("a/x", "x"), dir("a/y"), file("c", "c")}, {file("a", "file")}},
			want:   []string{`f c 0644 0:0 "c"`, `f a 0644 0:0 "file"`},
		},
		{
			name:   "symlink over directory",
			layers: [][]ent{{dir("lib"), file("lib/x", "x")}, {symlink("lib", "usr/lib")}},
			want:   []string{`l lib -> usr/lib 0777 0:0`},
		},
		{
			name:   "directory over file",
			layers: [][]ent{{file("a", "f"), file("b", "b")}, {dir("a").mode(0o700), file("a/x", "x")}},
			want:   []string{`f b 0644 0:0 "b"`, `d a 0700 0:0`, `f a/x 0644 0:0 "x"`},
		},
		{
			name: "directory over directory merges and takes the upper metadata",
			layers: [][]ent{
				{dir("a"), file("a/x", "x"), file("b", "b")},
				{dir("a").mode(0o700).owner(1, 2).xattr("user.k", "v"), file("a/y", "y")},
			},
			want: []string{
				`d a 0700 1:2 user.k=v`,
				`f a/x 0644 0:0 "x"`,
				`f b 0644 0:0 "b"`,
				`f a/y 0644 0:0 "y"`,
			},
		},
		{
			name:   "a lower file in the way of a parent is replaced by a directory",
			layers: [][]ent{{file("a", "f")}, {file("a/b", "b")}},
			want:   []string{`d a 0755 0:0`, `f a/b 0644 0:0 "b"`},
		},
		{
			name:   "duplicates in one layer: the later wins",
			layers: [][]ent{{file("a", "1"), file("a", "2").mode(0o600), dir("d").mode(0o700), dir("d").mode(0o750)}},
			want:   []string{`f a 0600 0:0 "2"`, `d d 0750 0:0`},
		},
		{
			name:   "duplicates in one layer: a file replaces a directory and its tree",
			layers: [][]ent{{dir("a"), file("a/x", "x"), file("a", "f")}},
			want:   []string{`f a 0644 0:0 "f"`},
		},
		{
			name:   "a directory recreated after a whiteout starts afresh",
			layers: [][]ent{{dir("a").mode(0o700), file("a/x", "x")}, {whiteout("a")}, {dir("a"), file("a/y", "y")}},
			want:   []string{`d a 0755 0:0`, `f a/y 0644 0:0 "y"`},
		},
		{
			name:   "aufs metadata is dropped",
			layers: [][]ent{{dir(".wh..wh.plnk"), file(".wh..wh.plnk/1.2", "x"), file(".wh..wh.aufs", ""), file("a", "a")}},
			want:   []string{`f a 0644 0:0 "a"`},
		},
		{
			name:   "prefix: root metadata from the image, the last root entry wins",
			prefix: "/p/q/",
			layers: [][]ent{
				{dir(".").named("./").mode(0o700), file("a", "a")},
				{dir(".").named("/").mode(0o750).owner(5, 5)},
			},
			want: []string{`d p/q 0750 5:5`, `f p/q/a 0644 0:0 "a"`},
		},
		{
			name:   "prefix: names and hard-link targets, not symlink targets",
			prefix: "containers/onboot/000-x/rootfs",
			layers: [][]ent{{file("a/b", "1"), hardlink("a/c", "a/b"), symlink("s", "/a/b"), symlink("t", "a/b")}},
			want: []string{
				`d containers/onboot/000-x/rootfs 0755 0:0`,
				`d containers/onboot/000-x/rootfs/a 0755 0:0`,
				`f containers/onboot/000-x/rootfs/a/b 0644 0:0 "1" links=1`,
				`h containers/onboot/000-x/rootfs/a/c -> containers/onboot/000-x/rootfs/a/b`,
				`l containers/onboot/000-x/rootfs/s -> /a/b 0777 0:0`,
				`l containers/onboot/000-x/rootfs/t -> a/b 0777 0:0`,
			},
		},
		{
			name:   "prefix with no layers writes the prefix directory",
			prefix: "p",
			layers: nil,
			want:   []string{`d p 0755 0:0`},
		},
		{
			name:   "hard links to a visible file, also through another link",
			layers: [][]ent{{file("a", "x"), hardlink("b", "a"), hardlink("c", "b"), file("d", "d")}},
			want:   []string{`f a 0644 0:0 "x" links=2`, `h b -> a`, `h c -> a`, `f d 0644 0:0 "d"`},
		},
		{
			name: "hard link target hidden: the first link takes the content",
			layers: [][]ent{
				{file("a", "data").mode(0o600).owner(7, 7), dir("x"), hardlink("x/b", "a"), hardlink("c", "a")},
				{whiteout("a")},
			},
			want: []string{`d x 0755 0:0`, `f x/b 0600 7:7 "data" links=1`, `h c -> x/b`},
		},
		{
			name:   "hard link target replaced: the link keeps the old content",
			layers: [][]ent{{file("a", "old"), hardlink("b", "a")}, {file("a", "new")}},
			want:   []string{`f b 0644 0:0 "old"`, `f a 0644 0:0 "new"`},
		},
		{
			name: "hard link target hidden and some links hidden too",
			layers: [][]ent{
				{file("a", "data"), hardlink("b", "a"), hardlink("c", "a"), hardlink("d", "a")},
				{whiteout("a"), whiteout("b")},
			},
			want: []string{`f c 0644 0:0 "data" links=1`, `h d -> c`},
		},
		{
			name:   "hidden hard link does not count",
			layers: [][]ent{{file("a", "x"), hardlink("b", "a")}, {whiteout("b")}},
			want:   []string{`f a 0644 0:0 "x"`},
		},
		{
			name: "hard link to a file of a lower layer",
			layers: [][]ent{
				{file("a", "x")},
				{hardlink("b", "a")},
			},
			want: []string{`f a 0644 0:0 "x" links=1`, `h b -> a`},
		},
		{
			name: "two link groups, one spooled, in a tree replaced by a file",
			layers: [][]ent{
				{dir("t"), file("t/a", "A"), hardlink("t/b", "t/a"), file("u", "U"), hardlink("v", "t/a"), hardlink("w", "u")},
				{file("t", "T")},
			},
			want: []string{`f u 0644 0:0 "U" links=1`, `f v 0644 0:0 "A"`, `h w -> u`, `f t 0644 0:0 "T"`},
		},
		{
			name:   "hard link replacing its own target",
			layers: [][]ent{{file("a", "x"), hardlink("a", "a")}},
			want:   []string{`f a 0644 0:0 "x"`},
		},
		{
			name:   "hard link replacing the directory that holds its target",
			layers: [][]ent{{dir("a"), file("a/x", "x"), hardlink("a", "a/x")}},
			want:   []string{`f a 0644 0:0 "x"`},
		},
		{
			name:   "hard link to the older of two duplicates",
			layers: [][]ent{{file("a", "1"), hardlink("b", "a"), file("a", "2")}},
			want:   []string{`f b 0644 0:0 "1"`, `f a 0644 0:0 "2"`},
		},
		{
			name:   "hard link to a symlink is written as a copy",
			layers: [][]ent{{symlink("s", "t"), hardlink("h", "s"), device(tar.TypeChar, "n", 1, 3), hardlink("m", "n")}},
			want:   []string{`l s -> t 0777 0:0`, `l h -> t 0777 0:0`, `c n 1,3 0666 0:0`, `c m 1,3 0666 0:0`},
		},
		{
			name:   "hard link to a hidden symlink",
			layers: [][]ent{{symlink("s", "t"), hardlink("h", "s")}, {whiteout("s")}},
			want:   []string{`l h -> t 0777 0:0`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []Option
			if tc.prefix != "" {
				opts = append(opts, WithPrefix(tc.prefix))
			}
			opts = append(opts, WithTempDir(t.TempDir()))
			rec, st := flatten(t, mkLayers(t, tc.layers...), opts...)
			diffLines(t, rec.listing(), tc.want)
			prefix, _ := cleanName(tc.prefix)
			if prefix == "." {
				prefix = ""
			}
			if err := checkInvariants(rec.entries, prefix); err != nil {
				t.Error(err)
			}
			if st.Entries != len(rec.entries) {
				t.Errorf("Stats.Entries = %d, wrote %d", st.Entries, len(rec.entries))
			}
			if rec.closed {
				t.Error("Flatten closed the writer")
			}
		})
	}
}

func TestFlattenErrors(t *testing.T) {
	good := []ent{dir("d"), file("d/f", "f")}
	tests := []struct {
		name  string
		layer []ent // placed as layer 1, above good
		raw   func([]byte) []byte
		want  string
	}{
		{name: "dot-dot", layer: []ent{file("x", ""), file("../a", "")}, want: `layer 1 entry 1 ("../a")`},
		{name: "dot-dot after cleaning", layer: []ent{file("a/../../b", "")}, want: `layer 1 entry 0 ("a/../../b")`},
		{name: "absolute dot-dot", layer: []ent{file("/../b", "")}, want: `layer 1 entry 0 ("/../b")`},
		{name: "hard link to nothing", layer: []ent{hardlink("l", "nope")}, want: `layer 1 entry 0 ("l")`},
		{name: "hard link to a directory", layer: []ent{hardlink("l", "d")}, want: `layer 1 entry 0 ("l"): invalid layer: hard link target "d" is a directory`},
		{name: "hard link escaping", layer: []ent{hardlink("l", "../x")}, want: `layer 1 entry 0 ("l")`},
		{name: "empty whiteout", layer: []ent{file("d/.wh.", "")}, want: `layer 1 entry 0 ("d/.wh.")`},
		{name: "whiteout as a directory", layer: []ent{file("d/.wh.x/y", "")}, want: `layer 1 entry 0 ("d/.wh.x/y")`},
		{name: "unsupported type", layer: []ent{file("v", "").typ('V')}, want: `layer 1 entry 0 ("v")`},
		{name: "root as a file", layer: []ent{file(".", "")}, want: `layer 1 entry 0 ("."): invalid layer: root is not a directory`},
		{
			name:  "truncated tar",
			layer: []ent{file("a", strings.Repeat("x", 3000)), file("b", "")},
			raw:   func(b []byte) []byte { return b[:2048] },
			want:  `layer 1 entry 1`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tarBytes(t, tc.layer)
			if tc.raw != nil {
				b = tc.raw(b)
			}
			layers := []Layer{&memLayer{b: tarBytes(t, good)}, &memLayer{b: b}}
			_, err := Flatten(context.Background(), layers, &recorder{})
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalidLayer) {
				t.Errorf("error %v is not ErrInvalidLayer", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestCleanName(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{in: "a", want: "a"},
		{in: "./a", want: "a"},
		{in: "/a", want: "a"},
		{in: "a/", want: "a"},
		{in: "a//b/./c/", want: "a/b/c"},
		{in: "a/../b", want: "b"},
		{in: ".", want: "."},
		{in: "", want: "."},
		{in: "/", want: "."},
		{in: "./", want: "."},
		{in: "..", err: "escapes"},
		{in: "../a", err: "escapes"},
		{in: "/../a", err: "escapes"},
		{in: "a/../..", err: "escapes"},
		{in: "a\x00b", err: "NUL"},
		{in: "..a", want: "..a"},
	}
	for _, tc := range tests {
		got, err := cleanName(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("cleanName(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := Flatten(context.Background(), nil, &recorder{}, WithPrefix("../x")); err == nil {
		t.Error("WithPrefix(../x) accepted")
	}
}

// mixedLayers builds three layers with many entries, whiteouts, opaque directories and hard
// links, so that map iteration order would show if it leaked into the output.
func mixedLayers(t testing.TB) []Layer {
	var l0, l1, l2 []ent
	for i := range 40 {
		d := fmt.Sprintf("d%02d", i)
		l0 = append(l0, dir(d))
		for j := range 10 {
			l0 = append(l0, file(fmt.Sprintf("%s/f%d", d, j), fmt.Sprintf("%d.%d", i, j)))
		}
		l0 = append(l0, hardlink(d+"/link", d+"/f0"))
		switch i % 4 {
		case 0:
			l1 = append(l1, whiteout(d))
		case 1:
			l1 = append(l1, opaque(d), file(d+"/new", "n"), hardlink(d+"/new2", d+"/new"))
		case 2:
			l1 = append(l1, whiteout(d+"/f0"), file(fmt.Sprintf("x%02d/deep/er/f", i), "deep"))
		case 3:
			l1 = append(l1, file(d, "now a file"))
		}
		l2 = append(l2, dir(d).mode(0o700), file(fmt.Sprintf("%s/up", d), "u"))
	}
	return mkLayers(t, l0, l1, l2)
}

func TestFlattenDeterministic(t *testing.T) {
	layers := mixedLayers(t)
	first, _ := flatten(t, layers)
	if err := checkInvariants(first.entries, ""); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		again, _ := flatten(t, layers)
		diffLines(t, again.listing(), first.listing())
	}
}

func TestFlattenSpoolAndStats(t *testing.T) {
	tmp := t.TempDir()
	big := strings.Repeat("0123456789", 1000)
	layers := mkLayers(t,
		[]ent{file("a", big), hardlink("b", "a"), hardlink("c", "a"), file("small", "s"), symlink("s", "a")},
		[]ent{whiteout("a")},
	)
	rec, st := flatten(t, layers, WithTempDir(tmp))
	diffLines(t, rec.listing(), []string{
		fmt.Sprintf(`f b 0644 0:0 %q links=1`, big),
		`h c -> b`,
		`f small 0644 0:0 "s"`,
		`l s -> a 0777 0:0`,
	})
	want := Stats{Entries: 4, Files: 2, Bytes: int64(len(big) + 1), Spooled: int64(len(big))}
	if st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("spool not cleaned up: %v", left)
	}
}

func TestFlattenSpoolCleanedUpOnError(t *testing.T) {
	tmp := t.TempDir()
	layers := mkLayers(t, []ent{file("a", "data"), hardlink("b", "a"), file("c", "c")}, []ent{whiteout("a")})
	w := &failWriter{failAt: "c"}
	if _, err := Flatten(context.Background(), layers, w, WithTempDir(tmp)); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v, want the writer's error", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("spool not cleaned up: %v", left)
	}
}

type failWriter struct{ failAt string }

func (f *failWriter) WriteEntry(e archiveEntry, body io.Reader) error {
	if e.Name == f.failAt {
		return errors.New("boom")
	}
	return nil
}
func (f *failWriter) Close() error { return nil }

func TestFlattenOpensOnlyWhatItNeeds(t *testing.T) {
	l0 := &memLayer{b: tarBytes(t, []ent{file("a", "a")})}
	l1 := &memLayer{b: tarBytes(t, []ent{file("a", "b")})}
	flatten(t, []Layer{l0, l1})
	if got := l0.opens.Load(); got != 1 {
		t.Errorf("fully hidden layer opened %d times, want 1 (index only)", got)
	}
	if got := l1.opens.Load(); got != 2 {
		t.Errorf("visible layer opened %d times, want 2", got)
	}
}

func TestFlattenLayerChanged(t *testing.T) {
	first := tarBytes(t, []ent{file("a", "a"), file("b", "b")})
	second := tarBytes(t, []ent{file("a", "a"), file("c", "b")})
	n := 0
	l := LayerFunc(func() (io.ReadCloser, error) {
		n++
		if n == 1 {
			return io.NopCloser(bytes.NewReader(first)), nil
		}
		return io.NopCloser(bytes.NewReader(second)), nil
	})
	_, err := Flatten(context.Background(), []Layer{l}, &recorder{})
	if !errors.Is(err, ErrLayerChanged) {
		t.Fatalf("err = %v, want ErrLayerChanged", err)
	}
}

func TestFlattenOpenError(t *testing.T) {
	boom := errors.New("boom")
	l := LayerFunc(func() (io.ReadCloser, error) { return nil, boom })
	_, err := Flatten(context.Background(), []Layer{l}, &recorder{})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "layer 0") {
		t.Fatalf("err = %v", err)
	}
}

func TestFlattenCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Flatten(ctx, mkLayers(t, []ent{file("a", "a")}), &recorder{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestReadFile(t *testing.T) {
	layers := mkLayers(t,
		[]ent{
			dir("etc"), file("etc/passwd", "root:x:0:0"), file("etc/group", "old"), file("gone", "g"),
			file("big", strings.Repeat("b", 100)), file("orig", "linked"), hardlink("etc/link", "orig"),
			symlink("sym", "etc/passwd"),
		},
		[]ent{file("etc/group", "new"), whiteout("gone"), whiteout("orig")},
	)
	tests := []struct {
		path, want, err string
		notExist        bool
	}{
		{path: "/etc/passwd", want: "root:x:0:0"},
		{path: "etc/group", want: "new"},
		{path: "./etc/link", want: "linked"},
		{path: "/gone", notExist: true},
		{path: "/orig", notExist: true},
		{path: "/etc/passwd/x", notExist: true},
		{path: "/nope", notExist: true},
		{path: "/etc", err: "not a regular file"},
		{path: "/sym", err: "not a regular file"},
		{path: "/big", err: "more than the limit"},
		{path: "/../x", err: "escapes"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			got, err := ReadFile(context.Background(), layers, tc.path, 64)
			switch {
			case tc.notExist:
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("err = %v, want fs.ErrNotExist", err)
				}
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("err = %v, want %q", err, tc.err)
				}
			case err != nil:
				t.Errorf("err = %v", err)
			case string(got) != tc.want:
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
