package assemble

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kiln-os/kiln/assemble/spec"
	"github.com/kiln-os/kiln/config"
	"github.com/kiln-os/kiln/internal/archive"
	"github.com/kiln-os/kiln/internal/layers"
)

// labelKey is the image label whose JSON holds an image's own runtime defaults.
const labelKey = "org.mobyproject.config"

// writeSystem streams the whole system, in LinuxKit's order: kernel, init images, onboot,
// onshutdown, services, volumes, files.
func (b *builder) writeSystem(ctx context.Context, sys *config.System, res resolution, w archive.Writer) error {
	t := newTree(ctx, w, b.warn)
	b.containerIDs = spec.AllocateContainerIDs(sys)
	if sys.Kernel != nil {
		t.setOwner("kernel " + sys.Kernel.Image)
		b.log("adding kernel %s", sys.Kernel.Image)
		if err := b.writeKernel(ctx, t, sys.Kernel, res[sys.Kernel.Image]); err != nil {
			return fmt.Errorf("kernel %s: %w", sys.Kernel.Image, err)
		}
	}
	for _, ref := range sys.Init {
		t.setOwner("init image " + ref)
		b.log("adding init %s", ref)
		if _, err := layers.Flatten(ctx, imageLayers(res[ref]), t); err != nil {
			return fmt.Errorf("init image %s: %w", ref, err)
		}
	}
	sections := []struct {
		kind   string
		images []*config.Image
		dir    func(i int, name string) string
	}{
		{"onboot", sys.Onboot, func(i int, n string) string { return fmt.Sprintf("containers/onboot/%03d-%s", i, n) }},
		{"onshutdown", sys.Onshutdown, func(i int, n string) string { return fmt.Sprintf("containers/onshutdown/%03d-%s", i, n) }},
		{"services", sys.Services, func(_ int, n string) string { return "containers/services/" + n }},
	}
	shared := sharedImages(sys, res)
	if len(shared.order) > 0 && !initSharesRootfs(sys, res) {
		b.log("each container gets its own copy of its image: no init image has the label %s=true "+
			"(kiln's init has it; LinuxKit's init would find empty root file systems)", InitSharedRootfsLabel)
		shared = sharedSet{}
	}
	for _, si := range shared.order {
		t.setOwner("shared image " + si.ref)
		b.log("adding %s once for its %d containers", si.ref, si.users)
		if _, err := layers.Flatten(ctx, imageLayers(res[si.ref]), t, layers.WithPrefix(si.dir+"/rootfs")); err != nil {
			return fmt.Errorf("image %s (shared by %d containers): %w", si.ref, si.users, err)
		}
	}
	for _, s := range sections {
		for i, img := range s.images {
			t.setOwner(s.kind + " container " + img.Name)
			b.log("adding %s %s (%s)", s.kind, img.Name, img.Image)
			if err := b.writeContainer(ctx, t, s.dir(i, img.Name), img, res[img.Image], shared.lower(res[img.Image])); err != nil {
				return fmt.Errorf("%s container %s: %w", s.kind, img.Name, err)
			}
		}
	}
	for _, v := range sys.Volumes {
		t.setOwner("volume " + v.Name)
		if err := b.writeVolume(ctx, t, v, res); err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
	}
	if len(sys.Files) > 0 {
		b.log("adding %d files", len(sys.Files))
	}
	for _, f := range sys.Files {
		t.setOwner("files entry " + f.Path)
		if err := b.writeFile(t, sys, res, f); err != nil {
			return fmt.Errorf("files: %s: %w", f.Path, err)
		}
	}
	return nil
}

// writeKernel adds boot/kernel, boot/cmdline, the microcode and the modules from the kernel
// image's kernel.tar, unpacked into the root.
func (b *builder) writeKernel(ctx context.Context, t *tree, k *config.Kernel, r *resolved) error {
	binary := strings.TrimPrefix(k.Binary, "/")
	if binary == "" {
		binary = "kernel"
	}
	tarName := "kernel.tar"
	if k.Tar != nil {
		tarName = strings.TrimPrefix(*k.Tar, "/")
	}
	ls := imageLayers(r)
	// Microcode goes first in the initramfs, so it is read before anything else streams.
	if k.UCode != "" {
		data, err := layers.ReadFile(ctx, ls, k.UCode, 64<<20)
		if err != nil {
			return fmt.Errorf("microcode %s: %w", k.UCode, err)
		}
		if err := t.WriteEntry(regular(bootUcode, 0o644, len(data)), bytes.NewReader(data)); err != nil {
			return err
		}
	}
	kw := &kernelWriter{t: t, binary: binary, tarName: tarName}
	if _, err := layers.Flatten(ctx, ls, kw); err != nil {
		return err
	}
	if !kw.sawBinary {
		return fmt.Errorf("the image has no /%s (set kernel.binary to the kernel's file name)", binary)
	}
	if tarName != "none" && !kw.sawTar {
		return fmt.Errorf("the image has no /%s (set kernel.tar to its name, or to \"none\")", tarName)
	}
	return t.WriteEntry(regular(bootCmdline, 0o644, len(k.Cmdline)), strings.NewReader(k.Cmdline))
}

func regular(name string, mode int64, size int) archive.Entry {
	return archive.Entry{Header: &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(size)}}
}

// kernelWriter picks the kernel binary and the modules tar out of the kernel image.
type kernelWriter struct {
	t                 *tree
	binary, tarName   string
	sawBinary, sawTar bool
}

func (k *kernelWriter) WriteEntry(e archive.Entry, body io.Reader) error {
	switch {
	case e.Name == k.binary && e.Typeflag == tar.TypeReg:
		k.sawBinary = true
		if e.Size == 0 {
			return fmt.Errorf("the image's /%s is empty: a kernel binary is needed (set kernel.binary if it has another name)", k.binary)
		}
		return k.t.WriteEntry(archive.Entry{Header: &tar.Header{
			Typeflag: tar.TypeReg, Name: bootKernel, Mode: 0o644, Size: e.Size}}, body)
	case e.Name == k.tarName && e.Typeflag == tar.TypeReg:
		k.sawTar = true
		return copyTar(k.t, body, "/"+k.tarName)
	}
	return nil
}

func (k *kernelWriter) Close() error { return nil }

// copyTar unpacks a tar stream into the system at its root. Hard links inside it become
// copies' links only when the target came first, which is how tar writes them.
func copyTar(w archive.Writer, r io.Reader, what string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", what, err)
		}
		for _, el := range strings.Split(hdr.Name, "/") {
			if el == ".." {
				return fmt.Errorf("%s: entry %q escapes the root", what, hdr.Name)
			}
		}
		name := path.Clean("/" + hdr.Name)
		hdr.Name = strings.TrimPrefix(name, "/")
		if hdr.Typeflag == tar.TypeLink {
			return fmt.Errorf("%s: hard link %s -> %s is not supported in this tar; store a copy", what, hdr.Name, hdr.Linkname)
		}
		if hdr.Name == "" {
			continue
		}
		if err := w.WriteEntry(archive.Entry{Header: hdr}, tr); err != nil {
			return err
		}
	}
}

// sharedImagesDir holds the one copy of each image that several containers are made from.
const sharedImagesDir = "containers/images"

// sharedImage is an image two or more containers are made from.
type sharedImage struct {
	ref   string // the first reference naming it, for messages
	dir   string // sharedImagesDir/ALGORITHM-HEX; its files are under rootfs/
	users int
}

// sharedSet lists the images the system holds one copy of, in the order containers first use
// them, and maps each digest to its entry.
type sharedSet struct {
	order  []*sharedImage
	byHash map[string]*sharedImage
}

// InitSharedRootfsLabel is the label an init image carries (value "true") when its PID 1 makes
// the root file systems of containers that share an image: runtime.json's "kiln.rootfs" key,
// an overlay of the shared copy. Only then does a build write shared images once; with any
// other init (LinuxKit's, say) every container gets its own copy, as LinuxKit lays it out.
const InitSharedRootfsLabel = "org.kiln.init.shared-rootfs"

// initSharesRootfs reports whether an init image of sys declares InitSharedRootfsLabel.
func initSharesRootfs(sys *config.System, res resolution) bool {
	for _, ref := range sys.Init {
		if r := res[ref]; r != nil && r.config != nil && r.config.Config.Labels[InitSharedRootfsLabel] == "true" {
			return true
		}
	}
	return false
}

// sharedImages finds the images that two or more onboot, onshutdown or service containers
// are made from. Sameness is the resolved manifest's digest, never the name: two references
// to one manifest share, one name resolving to two manifests cannot happen within a build.
func sharedImages(sys *config.System, res resolution) sharedSet {
	count := map[string]int{}
	var first []string // digests in order of first use
	refs := map[string]string{}
	for _, list := range [][]*config.Image{sys.Onboot, sys.Onshutdown, sys.Services} {
		for _, img := range list {
			r := res[img.Image]
			if r == nil {
				continue
			}
			d := r.digest.String()
			if count[d] == 0 {
				first = append(first, d)
				refs[d] = img.Image
			}
			count[d]++
		}
	}
	s := sharedSet{byHash: map[string]*sharedImage{}}
	for _, d := range first {
		if count[d] < 2 {
			continue
		}
		h := res[refs[d]].digest
		si := &sharedImage{ref: refs[d], dir: sharedImagesDir + "/" + h.Algorithm + "-" + h.Hex, users: count[d]}
		s.order = append(s.order, si)
		s.byHash[d] = si
	}
	return s
}

// lower returns the path, in the booted system, of the shared copy a container made from r
// mounts as its root file system's lower layer; "" when the container has its own copy.
func (s sharedSet) lower(r *resolved) string {
	if r == nil {
		return ""
	}
	if si := s.byHash[r.digest.String()]; si != nil {
		return "/" + si.dir + "/rootfs"
	}
	return ""
}

// writeContainer writes config.json, runtime.json and rootfs/ of one container. With lower
// set, rootfs/ is an empty mount point and runtime.json's "kiln.rootfs" key tells kiln-init to
// mount an overlay of lower (the image's shared copy) there.
func (b *builder) writeContainer(ctx context.Context, t *tree, dir string, img *config.Image, r *resolved, lower string) error {
	var label *config.Image
	if r.config.Config.Labels != nil {
		if data, ok := r.config.Config.Labels[labelKey]; ok {
			var err error
			label, err = config.ParseImageLabel(fmt.Sprintf("label %s of %s", labelKey, img.Image), []byte(data))
			if err != nil {
				return err
			}
		}
	}
	ls := imageLayers(r)
	s, rt, err := spec.Generate(spec.Input{
		Name:  img.Name,
		YAML:  img,
		Label: label,
		Image: *r.config,
		// Names LinuxKit gives each container (its id counter) come first, then the image's
		// own /etc/passwd and /etc/group, read only if a name needs them.
		IDs: spec.Chain{b.containerIDs, &lazyIDs{ctx: ctx, layers: ls}},
	})
	if err != nil {
		return err
	}
	cfg, err := spec.Marshal(s)
	if err != nil {
		return err
	}
	var from *spec.SharedRootfs
	if lower != "" {
		from = &spec.SharedRootfs{Lower: lower}
	}
	rtJSON, err := spec.MarshalRuntimeShared(rt, from)
	if err != nil {
		return err
	}
	if err := t.mkdirAll(dir); err != nil {
		return err
	}
	if err := t.WriteEntry(regular(dir+"/config.json", 0o644, len(cfg)), bytes.NewReader(cfg)); err != nil {
		return err
	}
	if err := t.WriteEntry(regular(dir+"/runtime.json", 0o644, len(rtJSON)), bytes.NewReader(rtJSON)); err != nil {
		return err
	}
	if lower != "" {
		return t.mkdirAll(dir + "/rootfs")
	}
	_, err = layers.Flatten(ctx, ls, t, layers.WithPrefix(dir+"/rootfs"))
	return err
}

// lazyIDs reads /etc/passwd and /etc/group from the image only when a name needs them.
type lazyIDs struct {
	ctx    context.Context
	layers []layers.Layer
	users  spec.IDLookup
	groups spec.IDLookup
}

func (l *lazyIDs) load(file string, parse func(io.Reader) (spec.IDLookup, error)) (spec.IDLookup, error) {
	data, err := layers.ReadFile(l.ctx, l.layers, file, 16<<20)
	if errors.Is(err, fs.ErrNotExist) {
		data = nil
	} else if err != nil {
		return nil, err
	}
	return parse(bytes.NewReader(data))
}

func (l *lazyIDs) User(name string) (uint32, uint32, error) {
	if l.users == nil {
		u, err := l.load("etc/passwd", spec.ParsePasswd)
		if err != nil {
			return 0, 0, err
		}
		l.users = u
	}
	return l.users.User(name)
}

func (l *lazyIDs) Group(name string) (uint32, error) {
	if l.groups == nil {
		g, err := l.load("etc/group", spec.ParseGroup)
		if err != nil {
			return 0, err
		}
		l.groups = g
	}
	return l.groups.Group(name)
}

// writeVolume writes a named volume under containers/volumes/NAME: empty without an image,
// the image's files for format "filesystem" (the default), and an OCI layout of the image
// for format "oci".
func (b *builder) writeVolume(ctx context.Context, t *tree, v *config.Volume, res resolution) error {
	dir := "containers/volumes/" + v.Name
	if err := t.mkdirAll(dir); err != nil {
		return err
	}
	if v.Image == "" {
		return nil
	}
	r := res[v.Image]
	switch v.Format {
	case "", "filesystem":
		_, err := layers.Flatten(ctx, imageLayers(r), t, layers.WithPrefix(dir+"/rootfs"))
		return err
	case "oci":
		return writeOCILayout(t, dir+"/image", r)
	}
	return fmt.Errorf("unknown volume format %q; expected \"filesystem\" or \"oci\"", v.Format)
}

// writeFile adds one entry of the files section.
func (b *builder) writeFile(t *tree, sys *config.System, res resolution, f *config.File) error {
	name := strings.TrimPrefix(path.Clean("/"+f.Path), "/")
	if name == "" {
		return errors.New("path must name something below /")
	}
	mode, err := fileMode(f)
	if err != nil {
		return err
	}
	// The same rules as validation (config.FileID): numbers, root, or a container's name.
	uid, err := config.FileID(f.UID, b.containerIDs)
	if err != nil {
		return fmt.Errorf("uid: %w", err)
	}
	gid, err := config.FileID(f.GID, b.containerIDs)
	if err != nil {
		return fmt.Errorf("gid: %w", err)
	}
	hdr := &tar.Header{Name: name, Mode: mode, Uid: int(uid), Gid: int(gid)}
	switch {
	case f.Directory:
		hdr.Typeflag = tar.TypeDir
		return t.WriteEntry(archive.Entry{Header: hdr}, nil)
	case f.Symlink != "":
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, f.Symlink
		if f.Mode == "" {
			hdr.Mode = 0o777 // the convention; Linux ignores a symlink's mode
		}
		return t.WriteEntry(archive.Entry{Header: hdr}, nil)
	case f.Contents != nil:
		hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(*f.Contents))
		return t.WriteEntry(archive.Entry{Header: hdr}, strings.NewReader(*f.Contents))
	case f.Metadata != "":
		if f.Metadata != "yaml" {
			return fmt.Errorf("metadata %q: expected \"yaml\"", f.Metadata)
		}
		var buf bytes.Buffer
		if err := res.pin(sys).Encode(&buf); err != nil {
			return err
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, int64(buf.Len())
		return t.WriteEntry(archive.Entry{Header: hdr}, &buf)
	case f.Source != "":
		return writeSourceFile(t, hdr, f)
	}
	return errors.New("needs one of directory, symlink, contents, metadata or source")
}

func writeSourceFile(t *tree, hdr *tar.Header, f *config.File) error {
	src := f.Source
	if strings.HasPrefix(src, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return err
		}
		src = filepath.Join(home, src[2:])
	} else if !filepath.IsAbs(src) && f.BaseDir() != "" {
		src = filepath.Join(f.BaseDir(), src)
	}
	file, st, err := openRegular(src)
	if errors.Is(err, fs.ErrNotExist) && f.Optional {
		return nil
	}
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer file.Close()
	hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size()
	return t.WriteEntry(archive.Entry{Header: hdr}, io.LimitReader(file, st.Size()))
}

// fileMode parses an octal mode; directories default to 0755 and everything else to 0600,
// as in LinuxKit.
func fileMode(f *config.File) (int64, error) {
	if f.Mode == "" {
		if f.Directory {
			return 0o755, nil
		}
		return 0o600, nil
	}
	m, err := config.ParseMode(f.Mode) // the rule validation applies
	if err != nil {
		return 0, fmt.Errorf("mode: %w", err)
	}
	return int64(m), nil
}

// openRegular opens a regular file for reading, and refuses anything else with an error
// naming it: a named pipe or a device would block the build (or never end), and neither a
// directory nor a socket has content to copy. It checks before opening, and opens without
// blocking so that a file swapped for a pipe in between cannot hang it either.
func openRegular(name string) (*os.File, fs.FileInfo, error) {
	st, err := os.Stat(name)
	if err != nil {
		return nil, nil, err
	}
	if err := checkRegular(name, st); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st2, err := f.Stat()
	if err == nil {
		err = checkRegular(name, st2)
	}
	if err == nil && !os.SameFile(st, st2) {
		err = fmt.Errorf("%s changed while kiln opened it", name)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st2, nil
}

// checkRegular fails, naming the file and what it is, unless st is a regular file.
func checkRegular(name string, st fs.FileInfo) error {
	m := st.Mode()
	if m.IsRegular() {
		return nil
	}
	var what string
	switch {
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	case m&fs.ModeCharDevice != 0:
		what = "a character device"
	case m&fs.ModeDevice != 0:
		what = "a block device"
	case m.IsDir():
		what = "a directory"
	default:
		return fmt.Errorf("%s is not a regular file (mode %v); kiln reads only regular files", name, m)
	}
	return fmt.Errorf("%s is %s, not a regular file; kiln reads only regular files", name, what)
}
