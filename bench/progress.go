package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// progress draws a bar on stderr: redrawn in place on a terminal, one line
// per step otherwise (CI logs).
type progress struct {
	mu      sync.Mutex
	tty     bool
	start   time.Time // of the whole run
	begin   time.Time // of the measurements; zero during setup
	planned time.Duration
	total   int
	idx     int
	label   string
	drawn   bool
	stop    chan struct{}
	done    chan struct{}
	closed  bool
}

func newProgress(total int, planned time.Duration) *progress {
	p := &progress{start: time.Now(), total: total, planned: planned, stop: make(chan struct{}), done: make(chan struct{})}
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		p.tty = true
	}
	go func() {
		defer close(p.done)
		if !p.tty {
			return
		}
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.draw()
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// setup names a preparation step (before the measurements).
func (p *progress) setup(label string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.label = "setup: " + label
	if p.tty {
		p.draw()
	} else {
		fmt.Fprintf(os.Stderr, "[setup %5.1fs] %s\n", time.Since(p.start).Seconds(), label)
	}
}

// step names measurement i of total.
func (p *progress) step(i int, label string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.begin.IsZero() {
		p.begin = time.Now()
	}
	p.idx, p.label = i, label
	if p.tty {
		p.draw()
	} else {
		el := time.Since(p.begin)
		fmt.Fprintf(os.Stderr, "[%2d/%d %3.0f%% %5.1fs/~%.0fs] %s\n", i, p.total, 100*p.frac(el), el.Seconds(), p.planned.Seconds(), label)
	}
}

func (p *progress) frac(el time.Duration) float64 {
	if p.planned <= 0 {
		return 0
	}
	return min(0.99, float64(el)/float64(p.planned))
}

// draw must hold mu.
func (p *progress) draw() {
	if p.closed {
		return
	}
	var line string
	if p.begin.IsZero() {
		line = fmt.Sprintf("%s  %.1fs", p.label, time.Since(p.start).Seconds())
	} else {
		el := time.Since(p.begin)
		f := p.frac(el)
		const width = 24
		n := int(f * width)
		line = fmt.Sprintf("[%s%s] %3.0f%%  %2d/%d  %-44s %5.1fs / ~%.0fs",
			strings.Repeat("#", n), strings.Repeat(".", width-n), 100*f, p.idx, p.total, p.label, el.Seconds(), p.planned.Seconds())
	}
	fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
	p.drawn = true
}

// finish stops drawing and clears the bar; safe to call twice.
func (p *progress) finish() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if p.tty && p.drawn {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
	p.mu.Unlock()
	close(p.stop)
	<-p.done
}
