// Package atomicfile is kiln's one way to write a file completely or not at all: content goes
// to a temporary file beside the final name, which is synced and renamed into place on Commit,
// so a reader sees the old file or the whole new one, never a part.
//
// Every temporary file is named with Prefix and held under an exclusive flock(2) for as long
// as its writer lives. A writer killed with SIGKILL leaves its temporary file behind, but not
// its lock: CleanStale removes exactly the temporary files no live writer holds, so the next
// build (or `kiln cache clean`) reclaims what a killed one left.
//
// It is not a general transaction: several files committed one after another can be seen
// half-way through by a reader of the folder.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Prefix starts the name of every temporary file this package creates.
const Prefix = ".kiln-tmp-"

// File is a temporary file that becomes Final on Commit. Write to it like an *os.File.
type File struct {
	*os.File
	final string
	mode  fs.FileMode
	done  bool
}

// Create opens a locked temporary file in the folder of final (made if missing). Call Commit
// to put it in place or Abort to drop it; Abort after Commit does nothing, so
// `defer f.Abort()` is the usual pattern.
func Create(final string, mode fs.FileMode) (*File, error) {
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("writing %s: %w", final, err)
	}
	// A cleaner may open a new temporary file in the instant before it is locked and take it
	// for stale; the file is then gone or locked by the cleaner, and we try a new name.
	for try := 0; ; try++ {
		f, err := os.CreateTemp(dir, Prefix+tempStem(final)+"-*")
		if err != nil {
			return nil, fmt.Errorf("writing %s: %w", final, err)
		}
		ok, err := lockOwn(f)
		if ok {
			return &File{File: f, final: final, mode: mode}, nil
		}
		f.Close()
		os.Remove(f.Name())
		if err != nil || try == 3 {
			if err == nil {
				err = errors.New("temporary file taken by a cleaner")
			}
			return nil, fmt.Errorf("writing %s: locking %s: %w", final, f.Name(), err)
		}
	}
}

// lockOwn takes the lock of a new temporary file and checks it is still the file at its name.
func lockOwn(f *os.File) (bool, error) {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil
		}
		return false, err
	}
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(f.Name())
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

// tempStem keeps temporary names short and recognisable.
func tempStem(final string) string {
	b := filepath.Base(final)
	if len(b) > 40 {
		b = b[:40]
	}
	return b
}

// Final is the name the file gets on Commit.
func (f *File) Final() string { return f.final }

// SetFinal changes the name Commit gives the file, for content whose name is known only once
// it is written (a blob named by its digest). It must be in the folder of the first name, where
// the temporary file is, so that the rename stays atomic.
func (f *File) SetFinal(final string) error {
	if filepath.Dir(final) != filepath.Dir(f.final) {
		return fmt.Errorf("writing %s: %s is not in the same folder", f.final, final)
	}
	f.final = final
	return nil
}

// Commit sets the mode, syncs, closes and renames the file into place, then syncs the folder.
// On error the temporary file is removed and the final name is left as it was.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("writing %s: already committed or aborted", f.final)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Abort()
		return fmt.Errorf("writing %s: %w", f.final, err)
	}
	if err := f.Chmod(f.mode); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	// Rename while the lock is still held, so CleanStale never sees an unlocked temp file
	// that is about to become final.
	if err := os.Rename(tmp, f.final); err != nil {
		return fail(err)
	}
	f.done = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", f.final, err)
	}
	if err := SyncDir(filepath.Dir(f.final)); err != nil {
		return fmt.Errorf("writing %s: %w", f.final, err)
	}
	return nil
}

// Abort closes and removes the temporary file. It does nothing after Commit or Abort.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}

// WriteFile writes path through write, completely or not at all.
func WriteFile(path string, mode fs.FileMode, write func(io.Writer) error) error {
	f, err := Create(path, mode)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := write(f); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Commit()
}

// Write replaces path with data, completely or not at all.
func Write(path string, data []byte, mode fs.FileMode) error {
	return WriteFile(path, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// SyncDir fsyncs a folder, so a rename in it survives a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// CleanStale removes the temporary files in dir (not below it) that no live writer holds,
// and returns their names and the bytes they took. A missing dir is not an error.
func CleanStale(dir string) (removed []string, bytes int64, err error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("cleaning temporary files: %w", err)
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), Prefix) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		stale, size, err := isStale(p)
		if err != nil {
			return removed, bytes, fmt.Errorf("cleaning temporary files: %w", err)
		}
		if !stale {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, bytes, fmt.Errorf("cleaning temporary files: %w", err)
		}
		removed = append(removed, p)
		bytes += size
	}
	return removed, bytes, nil
}

// isStale reports whether no process holds the lock of the temporary file at p.
func isStale(p string) (bool, int64, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, 0, nil // committed or aborted meanwhile
	}
	if err != nil {
		return false, 0, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, 0, nil
		}
		return false, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return false, 0, err
	}
	return true, fi.Size(), nil
}
