package builder

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"
)

// Progress shows the status of several solves (one per platform) on one BuildKit progress
// display, as buildctl and docker buildx show it: redrawn in place on a terminal ("tty"), one
// line per event otherwise ("plain"), or not at all ("quiet").
type Progress struct {
	ch   chan *client.SolveStatus
	wg   sync.WaitGroup
	done chan struct{}
	err  error
}

// NewProgress starts a display writing to w. mode is "auto" (tty when w is a terminal, else
// plain), "tty", "plain", "quiet" or "rawjson"; "" means auto.
func NewProgress(ctx context.Context, w io.Writer, mode string) (*Progress, error) {
	m := progressui.DisplayMode(mode)
	switch m {
	case progressui.DefaultMode, progressui.AutoMode, progressui.TtyMode, progressui.PlainMode, progressui.QuietMode, progressui.RawJSONMode:
	default:
		return nil, fmt.Errorf("progress %q: want auto, tty, plain, quiet or rawjson", mode)
	}
	d, err := progressui.NewDisplay(w, m)
	if err != nil {
		return nil, fmt.Errorf("progress %q: %w", mode, err)
	}
	p := &Progress{ch: make(chan *client.SolveStatus), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		// The display must drain its channel to the end, or solves block: it runs on a
		// context that is never cancelled and stops when the channel closes.
		_, p.err = d.UpdateFrom(context.WithoutCancel(ctx), p.ch)
		for range p.ch {
		}
	}()
	return p, nil
}

// Channel returns a channel for one solve's status; the solve closes it when it ends.
func (p *Progress) Channel() chan *client.SolveStatus {
	ch := make(chan *client.SolveStatus)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for s := range ch {
			p.ch <- s
		}
	}()
	return ch
}

// Close waits for every solve's channel to close and for the display to finish drawing.
func (p *Progress) Close() error {
	p.wg.Wait()
	close(p.ch)
	<-p.done
	return p.err
}
