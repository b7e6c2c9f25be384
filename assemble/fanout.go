package assemble

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/kiln-os/kiln/internal/archive"
)

// fanout is an archive.Writer that copies every entry to several writers in one pass: the
// body is read once and teed to the others through pipes, so each output format consumes the
// same stream without the stream ever being held in memory.
type fanout []archive.Writer

func (f fanout) WriteEntry(e archive.Entry, body io.Reader) error {
	if len(f) == 1 {
		return f[0].WriteEntry(e, body)
	}
	if body == nil || e.Size == 0 || e.Typeflag != tar.TypeReg {
		var errs []error
		for _, w := range f {
			errs = append(errs, w.WriteEntry(copyEntry(e), nil))
		}
		return errors.Join(errs...)
	}
	pipes := make([]*io.PipeWriter, len(f)-1)
	sinks := make([]io.Writer, len(f)-1)
	errs := make([]error, len(f))
	var wg sync.WaitGroup
	for i := range pipes {
		pr, pw := io.Pipe()
		pipes[i], sinks[i] = pw, pw
		wg.Add(1)
		go func(w archive.Writer, e archive.Entry, i int) {
			defer wg.Done()
			// A panic here would end the process past every clean-up: make it this
			// output's error instead.
			defer func() {
				if r := recover(); r != nil {
					pr.CloseWithError(errStoppedReading)
					errs[i] = fmt.Errorf("internal error (a bug in kiln; please report it): %v", r)
				}
			}()
			err := w.WriteEntry(e, pr)
			// Unblock the tee if this writer stopped reading early.
			pr.CloseWithError(errStoppedReading)
			errs[i] = err
		}(f[i+1], copyEntry(e), i+1)
	}
	tee := io.TeeReader(body, &lenientMulti{ws: sinks})
	errs[0] = f[0].WriteEntry(e, tee)
	// Whatever the first writer left unread still belongs to the others.
	if errs[0] == nil {
		if _, err := io.Copy(io.Discard, tee); err != nil {
			errs[0] = err
		}
	}
	for _, pw := range pipes {
		if errs[0] != nil {
			pw.CloseWithError(errs[0])
		} else {
			pw.Close()
		}
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, errStoppedReading) {
			return fmt.Errorf("output %d: %w", i+1, err)
		}
	}
	return nil
}

func (f fanout) Close() error {
	var errs []error
	for _, w := range f {
		errs = append(errs, w.Close())
	}
	return errors.Join(errs...)
}

var errStoppedReading = errors.New("output stopped reading the entry")

// copyEntry gives each writer its own header: writers may normalise fields in place.
func copyEntry(e archive.Entry) archive.Entry {
	h := *e.Header
	if e.PAXRecords != nil {
		h.PAXRecords = make(map[string]string, len(e.PAXRecords))
		for k, v := range e.PAXRecords {
			h.PAXRecords[k] = v
		}
	}
	return archive.Entry{Header: &h, Links: e.Links}
}

// lenientMulti writes to every sink and forgets sinks that fail (their writer reported why),
// so one failing output does not hide the error of another.
type lenientMulti struct{ ws []io.Writer }

func (m *lenientMulti) Write(p []byte) (int, error) {
	for i, w := range m.ws {
		if w == nil {
			continue
		}
		if _, err := w.Write(p); err != nil {
			m.ws[i] = nil
		}
	}
	return len(p), nil
}
