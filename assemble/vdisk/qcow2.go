// Package vdisk writes virtual machine disk formats (qcow2, VHD fixed and dynamic, VMDK) from
// a raw disk image, such as the ones assemble writes for raw-efi and raw-bios.
//
// Each writer reads the raw image twice through an io.ReaderAt: once to find the clusters
// that hold data (all-zero ones are left out, so the result is as small as the content), and
// once to copy them, in order, behind the tables; the output is written front to back in one
// stream. Nothing depends on time or chance: the same raw image gives the same bytes.
package vdisk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

const (
	qcowClusterBits = 16
	qcowCluster     = 1 << qcowClusterBits // 64 KiB, qemu-img's default
	l2Entries       = qcowCluster / 8      // an L2 table maps 512 MiB
	refcountBits    = 16
	refcountEntries = qcowCluster * 8 / refcountBits // a refcount block counts 32768 clusters
	qcowHeaderLen   = 104
	qcowCopied      = uint64(1) << 63 // the cluster's refcount is exactly 1
)

// dataClusters lists the indexes of the clusters of size bytes (read through r) that hold
// anything but zeros. When r is a file, the holes the file system reports (SEEK_HOLE) are
// skipped unread: they read as zeros. Which clusters count is decided by their bytes alone,
// so the result does not depend on how the file system stores the file.
func dataClusters(r io.ReaderAt, size int64, cluster int) ([]int64, error) {
	buf := make([]byte, cluster)
	var out []int64
	next := int64(0) // the first cluster not looked at yet
	check := func(i int64) error {
		n := min(int64(cluster), size-i*int64(cluster))
		if _, err := r.ReadAt(buf[:n], i*int64(cluster)); err != nil {
			return fmt.Errorf("reading the raw image at %d: %w", i*int64(cluster), err)
		}
		if !zero(buf[:n]) {
			out = append(out, i)
		}
		return nil
	}
	for _, ext := range dataExtents(r, size) {
		first, last := max(next, ext[0]/int64(cluster)), ceilDiv(ext[1], int64(cluster))
		for i := first; i < last; i++ {
			if err := check(i); err != nil {
				return nil, err
			}
		}
		next = max(next, last)
	}
	return out, nil
}

// dataExtents are the byte ranges [start, end) of r's first size bytes that may hold data: the
// file system's data extents when r is a file that reports them (SEEK_DATA, SEEK_HOLE), else
// the whole range.
func dataExtents(r io.ReaderAt, size int64) [][2]int64 {
	whole := [][2]int64{{0, size}}
	f, ok := r.(interface{ Fd() uintptr })
	if !ok {
		return whole
	}
	fd := int(f.Fd())
	var out [][2]int64
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) || (err == nil && data >= size) {
			break // no data after off
		}
		if err != nil {
			return whole
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return whole
		}
		out = append(out, [2]int64{data, min(hole, size)})
		off = hole
	}
	return out
}

func zero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// QCOW2 writes the raw image of size bytes (read through r) to w as a qcow2 (version 3) image
// of the same virtual size, with 64 KiB clusters: the header, the L1 table, the refcount
// table and blocks, the L2 tables, then the data clusters.
func QCOW2(w io.Writer, r io.ReaderAt, size int64) error {
	if size <= 0 || size%512 != 0 {
		return fmt.Errorf("qcow2: the raw image is %d bytes, not a whole number of sectors", size)
	}
	data, err := dataClusters(r, size, qcowCluster)
	if err != nil {
		return fmt.Errorf("qcow2: %w", err)
	}
	virtual := ceilDiv(size, qcowCluster)
	l1Size := ceilDiv(virtual, l2Entries)
	l1Clusters := ceilDiv(l1Size*8, qcowCluster)
	// The L2 tables: one for each 512 MiB that holds data, in order.
	var l2s []int64 // L1 index of each L2 table
	for _, c := range data {
		if i := c / l2Entries; len(l2s) == 0 || l2s[len(l2s)-1] != i {
			l2s = append(l2s, i)
		}
	}
	// Every cluster of the file has a refcount, the refcount structures' own included: grow
	// them until they count themselves.
	fixed := 1 + l1Clusters + int64(len(l2s)) + int64(len(data))
	var rtClusters, rbClusters int64
	for {
		total := fixed + rtClusters + rbClusters
		rb := ceilDiv(total, refcountEntries)
		rt := ceilDiv(rb*8, qcowCluster)
		if rb == rbClusters && rt == rtClusters {
			break
		}
		rbClusters, rtClusters = rb, rt
	}
	total := fixed + rtClusters + rbClusters
	l1At := int64(1)
	rtAt := l1At + l1Clusters
	rbAt := rtAt + rtClusters
	l2At := rbAt + rbClusters
	dataAt := l2At + int64(len(l2s))

	le := binary.BigEndian // qcow2 is big-endian throughout
	header := make([]byte, qcowCluster)
	copy(header, "QFI\xfb")
	le.PutUint32(header[4:], 3)
	le.PutUint32(header[20:], qcowClusterBits)
	le.PutUint64(header[24:], uint64(size))
	le.PutUint32(header[36:], uint32(l1Size))
	le.PutUint64(header[40:], uint64(l1At*qcowCluster))
	le.PutUint64(header[48:], uint64(rtAt*qcowCluster))
	le.PutUint32(header[56:], uint32(rtClusters))
	le.PutUint32(header[96:], 4) // refcount_order: 16-bit refcounts
	le.PutUint32(header[100:], qcowHeaderLen)
	// The header extension area ends at once (type 0, length 0: already zero).

	l1 := make([]byte, l1Clusters*qcowCluster)
	for k, i := range l2s {
		le.PutUint64(l1[i*8:], uint64((l2At+int64(k))*qcowCluster)|qcowCopied)
	}
	rt := make([]byte, rtClusters*qcowCluster)
	for k := range rbClusters {
		le.PutUint64(rt[k*8:], uint64((rbAt+k)*qcowCluster))
	}
	rb := make([]byte, rbClusters*qcowCluster)
	for c := range total {
		le.PutUint16(rb[c*2:], 1)
	}
	for _, b := range [][]byte{header, l1, rt, rb} {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	// The L2 tables, each written when complete.
	l2 := make([]byte, qcowCluster)
	next := 0
	for k, i := range l2s {
		clear(l2)
		for next < len(data) && data[next]/l2Entries == i {
			le.PutUint64(l2[(data[next]%l2Entries)*8:], uint64((dataAt+int64(next))*qcowCluster)|qcowCopied)
			next++
		}
		if _, err := w.Write(l2); err != nil {
			return fmt.Errorf("qcow2: writing L2 table %d: %w", k, err)
		}
	}
	buf := make([]byte, qcowCluster)
	for _, c := range data {
		n := min(int64(qcowCluster), size-c*qcowCluster)
		clear(buf[n:])
		if _, err := r.ReadAt(buf[:n], c*qcowCluster); err != nil {
			return fmt.Errorf("qcow2: reading the raw image at %d: %w", c*qcowCluster, err)
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}
