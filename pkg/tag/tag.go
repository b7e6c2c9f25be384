// Package tag computes the content-addressed tag of a kiln package: the git tree hash of the
// package folder at HEAD (combined with the tree hashes of its extra sources, if any), with a
// "-dirty-<content hash>" suffix when the working tree differs from HEAD.
//
// A clean tag is the same everywhere the same commit is checked out, and for a folder without
// extra sources it equals LinuxKit's tag for that folder (`git rev-parse HEAD:<folder>`). A dirty
// tag names the content of the working tree, so the same uncommitted content gives the same tag
// in any clone.
//
// Files lists the files a folder's working tree hash covers, so that a build context made of
// the folder holds exactly what its tag names (and no ignored, generated files).
//
// The package shells out to the git command; it does not read build.yml (see package buildyml)
// and it does not build or look up images.
//
// # How a tag is computed
//
// For each source (the package folder first, then each extra source in the order given), two
// tree hashes are taken from the repository that contains it:
//
//   - the committed tree: `git rev-parse HEAD:<path>`;
//   - the working tree: the tree git would record for that folder if everything in it were
//     committed now. It is computed in a temporary index (GIT_INDEX_FILE): a copy of the
//     repository's index (or HEAD's tree when there is none), updated with `git add -A` for the
//     folder (modified and deleted files, and new files unless ignored; a tracked or staged
//     file counts even if it matches .gitignore), then `git write-tree`. What is staged but
//     changed back in the work tree does not count: the work tree is what gets built.
//     Modes are git's: the executable bit and symlinks count, other permission bits do not.
//     The objects this writes go to a temporary object directory (GIT_OBJECT_DIRECTORY, with
//     the repository's as an alternate), so the repository itself is not changed at all.
//
// An extra source may leave paths out (Source.Exclude): both of its trees are then the trees
// git would record without them (they are removed from the temporary index before `git
// write-tree`; the committed tree is computed the same way from HEAD's), so that nothing
// under them counts, whether committed, changed or new.
//
// Several hashes are combined the way LinuxKit combines a package with its extra sources: the
// hexadecimal SHA-1 of the concatenation of their hexadecimal forms, in order. One hash is
// used as it is. Hash is the combination of the committed trees. The tag is dirty when any
// working tree differs from its committed tree; its suffix is then the first ContentLen
// characters of the combination of the working trees. Without extra sources, the suffix is
// thus a prefix of the tree hash the folder will have once its changes are committed.
package tag

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// ContentLen is the number of hexadecimal characters of the content hash in a dirty tag.
const ContentLen = 12

// Errors that Of wraps; test them with errors.Is.
var (
	// ErrGitNotFound means the git command is not installed or not on PATH.
	ErrGitNotFound = errors.New("git not found")
	// ErrNotRepository means a folder is not inside a git repository.
	ErrNotRepository = errors.New("not a git repository")
	// ErrOutsideWorkTree means a folder is inside a repository but not in its work tree
	// (for example inside .git, or in a bare repository).
	ErrOutsideWorkTree = errors.New("outside the git work tree")
	// ErrNotCommitted means the folder's repository has no commit yet. (A folder missing
	// from HEAD in a repository with commits gets a dirty tag based on EmptyTree.)
	ErrNotCommitted = errors.New("not committed at HEAD")
)

// EmptyTree is git's hash of the empty tree: the committed tree of a folder that is not in
// HEAD yet, so that a new package gets the tag "<EmptyTree>-dirty-<content>" until committed.
const EmptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

// Tag is the content-addressed tag of a package.
type Tag struct {
	// Hash is the committed tree hash of the package folder, or the combination of the
	// committed tree hashes of the folder and its extra sources (see the package doc).
	Hash string
	// Dirty is true when the folder or an extra source differs from HEAD: modified, deleted,
	// staged or untracked (but not ignored) files.
	Dirty bool
	// Content is the content hash of the working state (ContentLen hexadecimal characters),
	// set only when Dirty.
	Content string
}

// String returns Hash for a clean tag and "<Hash>-dirty-<Content>" for a dirty one.
func (t Tag) String() string {
	if !t.Dirty {
		return t.Hash
	}
	return t.Hash + "-dirty-" + t.Content
}

// Of returns the tag of the folder dir, combined with the given extra sources. Relative extra
// sources are taken relative to dir (as in build.yml). Each folder may be in a different
// repository; each must exist in a repository with at least one commit. A folder not yet
// committed gets a dirty tag on EmptyTree.
func Of(ctx context.Context, dir string, extraSources ...string) (Tag, error) {
	srcs := make([]Source, len(extraSources))
	for i, s := range extraSources {
		srcs[i] = Source{Dir: s}
	}
	return OfSources(ctx, dir, srcs)
}

// Source is an extra source of a package: a folder, with paths inside it left out.
type Source struct {
	// Dir is the folder, relative to the package folder unless absolute.
	Dir string
	// Exclude are files or folders inside Dir (slash-separated, relative to Dir) that the
	// tag does not cover: both tree hashes are taken as if they were not there. Each must
	// name something git records, in the working state or in HEAD, so that a misspelt path
	// is an error (an *ExcludeError) rather than a no-op.
	Exclude []string
}

// OfSources is Of with extra sources that leave paths out (see Source).
func OfSources(ctx context.Context, dir string, extraSources []Source) (Tag, error) {
	if _, err := exec.LookPath(gitCommand); err != nil {
		return Tag{}, fmt.Errorf("%w: %w", ErrGitNotFound, err)
	}
	srcs := make([]Source, 0, 1+len(extraSources))
	srcs = append(srcs, Source{Dir: dir})
	for _, src := range extraSources {
		if !filepath.IsAbs(src.Dir) {
			src.Dir = filepath.Join(dir, src.Dir)
		}
		srcs = append(srcs, src)
	}

	committed := make([]string, 0, len(srcs))
	working := make([]string, 0, len(srcs))
	dirty := false
	for _, src := range srcs {
		s, err := inspect(ctx, src.Dir, src.Exclude)
		if err != nil {
			return Tag{}, err
		}
		committed = append(committed, s.committed)
		working = append(working, s.working)
		if s.committed != s.working {
			dirty = true
		}
	}

	t := Tag{Hash: combine(committed), Dirty: dirty}
	if dirty {
		t.Content = combine(working)[:ContentLen]
	}
	return t, nil
}

// combine turns one or more hexadecimal hashes into one: a single hash is returned as it is,
// several give the hexadecimal SHA-1 of their concatenation.
func combine(hashes []string) string {
	if len(hashes) == 1 {
		return hashes[0]
	}
	sum := sha1.Sum([]byte(strings.Join(hashes, "")))
	return hex.EncodeToString(sum[:])
}

// state is the pair of tree hashes of one folder.
type state struct {
	committed string // tree at HEAD
	working   string // tree of the working state
}

// inspect returns the committed and working tree hashes of the folder dir, without the paths
// exclude names (relative to dir).
func inspect(ctx context.Context, dir string, exclude []string) (state, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return state{}, fmt.Errorf("tag: %w", err)
	}
	if !info.IsDir() {
		return state{}, fmt.Errorf("tag: %s: not a directory", dir)
	}
	if err := checkExclude(dir, exclude); err != nil {
		return state{}, err
	}

	r, err := locate(ctx, dir)
	if err != nil {
		return state{}, err
	}

	committed, err := r.git(ctx, nil, "rev-parse", "--verify", "--quiet", "HEAD:"+r.prefix)
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return state{}, fmt.Errorf("tag: %s: %w", dir, err)
		}
		// A new folder in a repository that has commits: nothing of it is committed, so its
		// committed tree is the empty tree and its tag is dirty until it is committed.
		if _, herr := r.git(ctx, nil, "rev-parse", "--verify", "--quiet", "HEAD"); herr != nil {
			return state{}, fmt.Errorf("tag: %s: %w (the repository has no commit yet: commit the package first)", dir, ErrNotCommitted)
		}
		committed = EmptyTree
	} else if len(exclude) > 0 {
		// HEAD's tree of the folder, less the excluded paths.
		err := r.withIndex(ctx, false, exclude, func(env []string) error {
			committed, err = r.tree(ctx, env)
			return err
		})
		if err != nil {
			return state{}, fmt.Errorf("tag: %s: %w", dir, err)
		}
	}

	var working string
	err = r.withIndex(ctx, true, exclude, func(env []string) error {
		working, err = r.tree(ctx, env)
		return err
	})
	if err != nil {
		return state{}, fmt.Errorf("tag: %s: %w", dir, err)
	}
	return state{committed: committed, working: working}, nil
}

// ExcludeError is the error for an excluded path that is not a path inside its folder, or that
// names nothing: neither in the working state (what git would record now) nor in HEAD.
type ExcludeError struct {
	Dir  string // the folder
	Path string // the excluded path, as given (relative to Dir, slash-separated)
	Err  error  // ErrExcludeOutside or ErrExcludeMissing
}

func (e *ExcludeError) Error() string {
	return fmt.Sprintf("excluded path %q: %v", e.Path, e.Err)
}

// Unwrap returns the problem.
func (e *ExcludeError) Unwrap() error { return e.Err }

// The problems of an ExcludeError.
var (
	ErrExcludeOutside = errors.New("not a path inside the folder")
	ErrExcludeMissing = errors.New("names nothing git records (in the work tree or in HEAD)")
)

// checkExclude checks that each path of exclude is a path inside dir (slash-separated); that
// it names something is checked by withIndex.
func checkExclude(dir string, exclude []string) error {
	for _, x := range exclude {
		p := filepath.FromSlash(x)
		if !filepath.IsLocal(p) || filepath.Clean(p) == "." {
			return fmt.Errorf("tag: %s: %w", dir, &ExcludeError{Dir: dir, Path: x, Err: ErrExcludeOutside})
		}
	}
	return nil
}

// repo is a folder located in its repository.
type repo struct {
	top     string // the work tree's top folder
	prefix  string // the folder relative to top, slash-separated, "" for top itself
	index   string // the repository's index file (it may not exist)
	objects string // the repository's object directory
}

// locate finds the repository that holds dir.
func locate(ctx context.Context, dir string) (repo, error) {
	in := repo{top: dir}
	inside, err := in.git(ctx, nil, "rev-parse", "--is-inside-work-tree")
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return repo{}, fmt.Errorf("tag: %s: %w: %w", dir, ErrNotRepository, err)
		}
		return repo{}, fmt.Errorf("tag: %s: %w", dir, err)
	}
	if inside != "true" {
		return repo{}, fmt.Errorf("tag: %s: %w", dir, ErrOutsideWorkTree)
	}
	out, err := in.git(ctx, nil, "rev-parse", "--show-toplevel", "--show-prefix",
		"--git-path", "index", "--git-path", "objects")
	if err != nil {
		return repo{}, fmt.Errorf("tag: %s: %w", dir, err)
	}
	lines := strings.Split(out, "\n")
	if len(lines) != 4 {
		return repo{}, fmt.Errorf("tag: %s: unexpected output of git rev-parse: %q", dir, out)
	}
	// --git-path answers relative to the folder git ran in, symlinks resolved: top/prefix.
	cwd := filepath.Join(lines[0], filepath.FromSlash(lines[1]))
	abs := func(p string) (string, error) {
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		return filepath.Abs(p)
	}
	index, err := abs(lines[2])
	if err != nil {
		return repo{}, fmt.Errorf("tag: %s: %w", dir, err)
	}
	objects, err := abs(lines[3])
	if err != nil {
		return repo{}, fmt.Errorf("tag: %s: %w", dir, err)
	}
	return repo{
		top:     lines[0],
		prefix:  strings.TrimSuffix(lines[1], "/"),
		index:   index,
		objects: objects,
	}, nil
}

// tree returns the tree hash of the folder in the index that env names (see withIndex),
// writing the index's trees to its temporary object directory.
func (r repo) tree(ctx context.Context, env []string) (string, error) {
	root, err := r.git(ctx, env, "write-tree")
	if err != nil {
		return "", err
	}
	tree, err := r.git(ctx, env, "rev-parse", "--verify", "--quiet", root+":"+r.prefix)
	var exit *exec.ExitError
	if err != nil && errors.As(err, &exit) {
		// The folder holds nothing git would record (all its files were deleted, are
		// ignored or excluded): its tree is the empty tree.
		tree, err = r.gitStdin(ctx, "", "hash-object", "-t", "tree", "--stdin")
	}
	return tree, err
}

// withIndex calls f with the environment of a temporary index (and object directory), so
// that the repository is not changed. With working set, the index records the working state
// of the folder: the repository's index, or HEAD's tree when there is none, updated with
// `git add --all` for the folder. Without it, the index is HEAD's tree. Either way the paths
// of exclude (relative to the folder) are then removed from it.
func (r repo) withIndex(ctx context.Context, working bool, exclude []string, f func(env []string) error) error {
	tmp, err := os.MkdirTemp("", "kiln-tag-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	index := filepath.Join(tmp, "index")
	objects := filepath.Join(tmp, "objects")
	if err := os.Mkdir(objects, 0o700); err != nil {
		return err
	}
	env := []string{
		"GIT_INDEX_FILE=" + index,
		"GIT_OBJECT_DIRECTORY=" + objects,
		"GIT_ALTERNATE_OBJECT_DIRECTORIES=" + r.objects,
	}

	err = fs.ErrNotExist
	if working {
		err = copyFile(index, r.index)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// HEAD's tree; for the working state, when there is no index (possible after
		// `rm .git/index`), so that tracked files matched by .gitignore still count.
		if _, err := r.git(ctx, env, "read-tree", "HEAD"); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("copying the git index: %w", err)
	}

	if working {
		if _, err := r.git(ctx, env, "--literal-pathspecs", "add", "--all", "--", r.pathspec()); err != nil {
			return err
		}
	}
	if len(exclude) > 0 {
		args := []string{"--literal-pathspecs", "rm", "-r", "-f", "--cached", "--quiet", "--ignore-unmatch", "--"}
		for _, x := range exclude {
			p := path.Join(r.prefix, path.Clean(x))
			if working {
				// A misspelt path would exclude nothing, silently: it must name something in
				// the working state or in HEAD (a path deleted but committed still counts).
				// Through a symbolic link it names nothing, as git records the link only.
				in, err := r.git(ctx, env, "--literal-pathspecs", "ls-files", "--cached", "-z", "--", p)
				if err != nil {
					return err
				}
				if in == "" {
					if in, err = r.git(ctx, nil, "--literal-pathspecs", "ls-tree", "--name-only", "-z", "HEAD", "--", p); err != nil {
						in = "" // no HEAD: nothing committed
					}
				}
				if in == "" {
					return &ExcludeError{Dir: filepath.Join(r.top, filepath.FromSlash(r.prefix)), Path: x, Err: ErrExcludeMissing}
				}
			}
			args = append(args, p)
		}
		if _, err := r.git(ctx, env, args...); err != nil {
			return err
		}
	}
	return f(env)
}

// pathspec is the folder as a git pathspec (taken literally).
func (r repo) pathspec() string {
	if r.prefix == "" {
		return "."
	}
	return r.prefix
}

// Files returns the files of the folder dir that its working tree hash covers, the hash a
// dirty tag is made of (see the package doc): tracked files that still exist and untracked
// files that are not ignored (a tracked file counts even if it matches .gitignore), as
// slash-separated paths relative to dir, sorted as git sorts them. Symbolic links are listed
// as files, as git records them; a submodule or nested repository is listed as its folder
// (git records only its commit). Nothing else in dir is listed: ignored files, .git.
//
// Files is what a build context made from dir should hold so that the tag covers all of it;
// it does not read the files' contents, so a file changed after the call is not detected.
// The paths of exclude (relative to dir, as in Source) and everything under them are left
// out, as they are from the tag.
func Files(ctx context.Context, dir string, exclude ...string) ([]string, error) {
	if _, err := exec.LookPath(gitCommand); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGitNotFound, err)
	}
	if info, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("tag: %w", err)
	} else if !info.IsDir() {
		return nil, fmt.Errorf("tag: %s: not a directory", dir)
	}
	if err := checkExclude(dir, exclude); err != nil {
		return nil, err
	}
	r, err := locate(ctx, dir)
	if err != nil {
		return nil, err
	}
	var out string
	err = r.withIndex(ctx, true, exclude, func(env []string) error {
		// -z: names unquoted, NUL-terminated; paths are relative to the top (git runs there).
		out, err = r.git(ctx, env, "--literal-pathspecs", "ls-files", "-z", "--cached", "--", r.pathspec())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tag: %s: %w", dir, err)
	}
	var files []string
	for _, name := range strings.Split(out, "\x00") {
		if name == "" {
			continue
		}
		if r.prefix != "" {
			rel, ok := strings.CutPrefix(name, r.prefix+"/")
			if !ok {
				return nil, fmt.Errorf("tag: %s: git listed %q, outside %s", dir, name, r.prefix)
			}
			name = rel
		}
		files = append(files, name)
	}
	return files, nil
}

// copyFile copies the file src to dst (created).
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// gitCommand is the git executable, looked up on PATH.
const gitCommand = "git"

// git runs git in the folder r.top with the extra environment env and returns its standard
// output without its final newlines.
func (r repo) git(ctx context.Context, env []string, args ...string) (string, error) {
	return r.run(ctx, env, nil, args...)
}

// gitStdin is git with stdin as standard input.
func (r repo) gitStdin(ctx context.Context, stdin string, args ...string) (string, error) {
	return r.run(ctx, nil, strings.NewReader(stdin), args...)
}

func (r repo) run(ctx context.Context, env []string, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, gitCommand, append([]string{"-C", r.top}, args...)...)
	cmd.Env = append(gitEnv(), env...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), ctxErr)
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
		}
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return strings.TrimRight(stdout.String(), "\n"), nil
}

// gitEnv is the process environment without the variables that would make git use another
// repository, work tree or index than the one found from the folder (as set, for example,
// inside a git hook).
func gitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_COMMON_DIR",
			"GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE":
			continue
		}
		env = append(env, kv)
	}
	return env
}
