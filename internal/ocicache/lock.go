package ocicache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lock takes a flock on root/name and returns the function that releases it. Each call opens
// its own file description, so two goroutines of one process exclude each other exactly as two
// processes do.
//
// Two lock files are used (see README.md): kiln.lock is shared by every reader and writer and
// held exclusively by garbage collection (Remove, Clean), so blobs written but not yet named
// in index.json are never collected; kiln-index.lock is held exclusively, inside a shared
// kiln.lock, while index.json is read, modified and replaced. Order: kiln.lock, then
// kiln-index.lock. Functions that take locks never call each other.
func (c *Cache) lock(name string, exclusive bool) (func(), error) {
	f, err := os.OpenFile(filepath.Join(c.root, name), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking cache: %w", err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking cache %s: %w", f.Name(), err)
	}
	// Closing the descriptor releases the lock.
	return func() { f.Close() }, nil
}

// readLock is held while reading: blobs cannot be collected under it.
func (c *Cache) readLock() (func(), error) { return c.lock(gcLockFile, false) }

// gcLock is held while collecting garbage: nobody else reads or writes.
func (c *Cache) gcLock() (func(), error) { return c.lock(gcLockFile, true) }

// indexLock is taken inside readLock to read-modify-write index.json.
func (c *Cache) indexLock() (func(), error) { return c.lock(indexLockFile, true) }

// readAndIndexLock takes both, in order.
func (c *Cache) readAndIndexLock() (func(), error) {
	u1, err := c.readLock()
	if err != nil {
		return nil, err
	}
	u2, err := c.indexLock()
	if err != nil {
		u1()
		return nil, err
	}
	return func() { u2(); u1() }, nil
}

// Hold keeps garbage collection (Remove and Clean, in this process or any other) from running
// until release is called; every other read and write proceeds. Blobs stored by WriteBlob or
// ImportBlobs are named by nothing until the caller writes the manifest or index that reaches
// them and names it with Tag; holding from before the first blob until after Tag keeps a
// concurrent `kiln cache clean` from deleting them in between. Call release exactly once.
func (c *Cache) Hold() (release func(), err error) {
	return c.readLock()
}
