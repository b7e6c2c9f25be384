package layers

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// Pass 2 reads its layers through a read-ahead: one goroutine opens the layers that pass 2
// needs, in order, and reads (so, for a compressed Layer, decompresses) them into a fixed
// ring of buffers while the emitter writes what came before. It runs at most one layer
// ahead of the emitter and at most readAheadBufs*readAheadBufSize bytes ahead, never a
// whole layer. Once the emitter has written the last entry it needs from a layer, the
// goroutine stops reading that layer and closes it.
const (
	readAheadBufs    = 4
	readAheadBufSize = 1 << 20
	readAheadLayers  = 2 // layers opened and not yet finished by the emitter
)

// chunk is one message from the read-ahead goroutine: data of a layer, or the end of it.
type chunk struct {
	buf []byte // data; nil for the end marker
	end bool
	// End marker only.
	openErr  error // Open failed (no data came before)
	readErr  error // reading failed (io.EOF is not an error)
	closeErr error
}

type readAhead struct {
	layers []Layer
	order  []int // layer numbers, in the order the emitter reads them

	ch    chan chunk
	free  chan []byte
	ahead chan struct{} // one token per layer the goroutine may have open
	skip  atomic.Int64  // the emitter needs nothing more from layers up to this one
	stop  chan struct{}
	wg    sync.WaitGroup
}

func newReadAhead(layers []Layer, order []int) *readAhead {
	ra := &readAhead{
		layers: layers,
		order:  order,
		ch:     make(chan chunk, readAheadBufs+readAheadLayers),
		free:   make(chan []byte, readAheadBufs),
		ahead:  make(chan struct{}, readAheadLayers),
		stop:   make(chan struct{}),
	}
	ra.skip.Store(-1)
	for range readAheadBufs {
		ra.free <- make([]byte, readAheadBufSize)
	}
	for range readAheadLayers {
		ra.ahead <- struct{}{}
	}
	ra.wg.Go(ra.run)
	return ra
}

// close stops the goroutine, which closes the layer it has open, and waits for it.
func (ra *readAhead) close() {
	close(ra.stop)
	ra.wg.Wait()
}

func (ra *readAhead) send(c chunk) bool {
	select {
	case ra.ch <- c:
		return true
	case <-ra.stop:
		return false
	}
}

func (ra *readAhead) run() {
	for _, li := range ra.order {
		select {
		case <-ra.ahead:
		case <-ra.stop:
			return
		}
		rc, err := ra.layers[li].Open()
		if err != nil {
			if !ra.send(chunk{end: true, openErr: err}) {
				return
			}
			continue
		}
		if !ra.copyLayer(li, rc) {
			return
		}
	}
}

// copyLayer sends the content of one layer, then its end marker. It returns false when
// the emitter has stopped.
func (ra *readAhead) copyLayer(li int, rc io.ReadCloser) bool {
	var rerr error
	for ra.skip.Load() < int64(li) {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.stop:
			abandon(rc)
			return false
		}
		n, err := fill(rc, buf)
		if n > 0 {
			if !ra.send(chunk{buf: buf[:n]}) {
				abandon(rc)
				return false
			}
		} else {
			ra.free <- buf
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				rerr = err
			}
			break
		}
	}
	return ra.send(chunk{end: true, readErr: rerr, closeErr: rc.Close()})
}

// fill reads into buf until it is full or r returns an error.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// layerReader is the emitter's side of one layer.
type layerReader struct {
	ra    *readAhead
	layer int
	cur   []byte // unread part of held
	held  []byte // buffer to give back once read
	ended bool
	last  chunk // the end marker, once received
}

// openLayer waits for the start of the next layer of ra.order, which must be li, and
// returns the error of its Open.
func (ra *readAhead) openLayer(li int) (*layerReader, error) {
	r := &layerReader{ra: ra, layer: li}
	if err := r.recv(); err != nil {
		return nil, err
	}
	if r.ended && r.last.openErr != nil {
		return nil, r.last.openErr
	}
	return r, nil
}

func (r *layerReader) recv() error {
	if r.held != nil {
		r.ra.free <- r.held[:cap(r.held)]
		r.held, r.cur = nil, nil
	}
	c, ok := <-r.ra.ch
	if !ok {
		return errors.New("internal error: read-ahead stopped")
	}
	if c.end {
		r.ended, r.last = true, c
		return nil
	}
	r.cur, r.held = c.buf, c.buf
	return nil
}

func (r *layerReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.ended {
			if r.last.readErr != nil {
				return 0, r.last.readErr
			}
			return 0, io.EOF
		}
		if err := r.recv(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// finish tells the goroutine that nothing more is needed from this layer, drops what it
// has read ahead of it and returns the error of closing the layer, else the error of reading
// it: a read past the last entry needed can still be the one that finds the layer corrupt
// (a verifying Layer reports a digest mismatch at the end of the stream, and when the
// header index came from a store this is the only read of the layer).
func (r *layerReader) finish() error {
	r.ra.skip.Store(int64(r.layer))
	for !r.ended {
		if err := r.recv(); err != nil {
			return err
		}
	}
	r.ra.ahead <- struct{}{}
	if r.last.closeErr != nil {
		return r.last.closeErr
	}
	return r.last.readErr
}
