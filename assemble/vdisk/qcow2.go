// Package vdisk writes virtual machine disk formats (qcow2, VHD fixed and dynamic, VMDK) of
// a raw disk image, such as the ones assemble writes for raw-efi and raw-bios.
//
// qcow2 is made as the raw image is written (QCOW2Writer): data clusters go out as they come
// and the tables follow them, so no copy of the raw image is needed. The VHD and VMDK writers
// read the raw image twice through an io.ReaderAt: once to find the clusters that hold data,
// and once to copy them, in order, behind the tables, front to back in one stream. Every
// writer leaves all-zero clusters out, so the result is as small as the content. Nothing
// depends on time or chance: the same raw image gives the same bytes.
package vdisk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/kiln-os/kiln/internal/streamio"
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
		if !streamio.IsZero(buf[:n]) {
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

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// QCOW2Writer makes a qcow2 (version 3) image, with 64 KiB clusters, of the raw disk image
// written to it front to back, as the bytes come: no copy of the raw image is kept. Each data
// cluster (one holding anything but zeros) goes to out as soon as it is complete, behind the
// header's cluster; Close appends the L2 tables, the L1 table and the refcount structures, and
// then writes the header, which points at them. The same raw bytes give the same image.
type QCOW2Writer struct {
	out  io.WriterAt
	buf  []byte  // the cluster being filled
	fill int     // how much of buf is filled
	size int64   // raw bytes taken
	data []int64 // the raw image's index of each data cluster, in the order written
	err  error
}

// NewQCOW2Writer returns a writer that makes a qcow2 image in out (a file, say) of what is
// written to it; its bytes are in place once Close returns nil.
func NewQCOW2Writer(out io.WriterAt) *QCOW2Writer {
	return &QCOW2Writer{out: out, buf: make([]byte, qcowCluster)}
}

// Write takes the raw image's next bytes.
func (q *QCOW2Writer) Write(p []byte) (int, error) {
	if q.err != nil {
		return 0, q.err
	}
	n := 0
	for len(p) > 0 {
		k := copy(q.buf[q.fill:], p)
		q.fill += k
		q.size += int64(k)
		n += k
		p = p[k:]
		if q.fill == qcowCluster {
			if err := q.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// flush writes the cluster in buf (zero-padded) if it holds data, and starts the next.
func (q *QCOW2Writer) flush() error {
	clear(q.buf[q.fill:])
	q.fill = 0
	if streamio.IsZero(q.buf) {
		return nil
	}
	at := (1 + int64(len(q.data))) * qcowCluster
	if _, err := q.out.WriteAt(q.buf, at); err != nil {
		q.err = fmt.Errorf("qcow2: writing a data cluster at %d: %w", at, err)
		return q.err
	}
	q.data = append(q.data, (q.size-1)/qcowCluster)
	return nil
}

// Close writes the tables and the header. The raw image must be a whole number of sectors.
func (q *QCOW2Writer) Close() error {
	if q.err != nil {
		return q.err
	}
	if q.size <= 0 || q.size%512 != 0 {
		q.err = fmt.Errorf("qcow2: the raw image is %d bytes, not a whole number of sectors", q.size)
		return q.err
	}
	if q.fill > 0 {
		if err := q.flush(); err != nil {
			return err
		}
	}
	q.err = q.finish()
	if q.err == nil {
		q.err = errors.New("qcow2: the image is closed")
		return nil
	}
	return q.err
}

// finish lays out, after the data clusters: the L2 tables (one for each 512 MiB of the raw
// image that holds data), the L1 table, the refcount blocks and the refcount table.
func (q *QCOW2Writer) finish() error {
	virtual := ceilDiv(q.size, qcowCluster)
	l1Size := ceilDiv(virtual, l2Entries)
	l1Clusters := ceilDiv(l1Size*8, qcowCluster)
	be := binary.BigEndian // qcow2 is big-endian throughout
	var l2s []int64        // L1 index of each L2 table
	var tables []byte      // the L2 tables, in order
	for k, c := range q.data {
		if i := c / l2Entries; len(l2s) == 0 || l2s[len(l2s)-1] != i {
			l2s = append(l2s, i)
			tables = append(tables, make([]byte, qcowCluster)...)
		}
		l2 := tables[(len(l2s)-1)*qcowCluster:]
		be.PutUint64(l2[(c%l2Entries)*8:], uint64((1+int64(k))*qcowCluster)|qcowCopied)
	}
	// Every cluster of the file has a refcount, the refcount structures' own included: grow
	// them until they count themselves.
	fixed := 1 + int64(len(q.data)) + int64(len(l2s)) + l1Clusters
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
	l2At := 1 + int64(len(q.data))
	l1At := l2At + int64(len(l2s))
	rbAt := l1At + l1Clusters
	rtAt := rbAt + rbClusters

	l1 := make([]byte, l1Clusters*qcowCluster)
	for k, i := range l2s {
		be.PutUint64(l1[i*8:], uint64((l2At+int64(k))*qcowCluster)|qcowCopied)
	}
	rb := make([]byte, rbClusters*qcowCluster)
	for c := range total {
		be.PutUint16(rb[c*2:], 1)
	}
	rt := make([]byte, rtClusters*qcowCluster)
	for k := range rbClusters {
		be.PutUint64(rt[k*8:], uint64((rbAt+k)*qcowCluster))
	}
	at := l2At * qcowCluster
	for _, b := range [][]byte{tables, l1, rb, rt} {
		if _, err := q.out.WriteAt(b, at); err != nil {
			return fmt.Errorf("qcow2: writing the tables at %d: %w", at, err)
		}
		at += int64(len(b))
	}

	header := make([]byte, qcowCluster)
	copy(header, "QFI\xfb")
	be.PutUint32(header[4:], 3)
	be.PutUint32(header[20:], qcowClusterBits)
	be.PutUint64(header[24:], uint64(q.size))
	be.PutUint32(header[36:], uint32(l1Size))
	be.PutUint64(header[40:], uint64(l1At*qcowCluster))
	be.PutUint64(header[48:], uint64(rtAt*qcowCluster))
	be.PutUint32(header[56:], uint32(rtClusters))
	be.PutUint32(header[96:], 4) // refcount_order: 16-bit refcounts
	be.PutUint32(header[100:], qcowHeaderLen)
	// The header extension area ends at once (type 0, length 0: already zero).
	if _, err := q.out.WriteAt(header, 0); err != nil {
		return fmt.Errorf("qcow2: writing the header: %w", err)
	}
	return nil
}
