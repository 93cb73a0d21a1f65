// Package progress draws a progress bar on a terminal. When the output is
// not a terminal it draws nothing, so logs and pipes stay clean.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Bar is a progress bar. A nil *Bar is valid and does nothing.
type Bar struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	total int64
	done  int64
	start time.Time
	last  time.Time
}

// New returns a bar on stderr, or nil if stderr is not a terminal.
func New(label string, total int64) *Bar {
	if !IsTerminal(os.Stderr) {
		return nil
	}
	return &Bar{w: os.Stderr, label: label, total: total, start: time.Now()}
}

// Add records n more bytes of progress. Safe for concurrent use.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	if now := time.Now(); now.Sub(b.last) >= 100*time.Millisecond {
		b.last = now
		b.draw()
	}
}

func (b *Bar) draw() {
	const width = 30
	frac := 0.0
	if b.total > 0 {
		frac = min(float64(b.done)/float64(b.total), 1)
	}
	fill := int(frac * width)
	rate := float64(b.done) / max(time.Since(b.start).Seconds(), 1e-3) / (1 << 20)
	fmt.Fprintf(b.w, "\r%s [%s%s] %5.1f%% %7.1f MiB/s", b.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), 100*frac, rate)
}

// Done draws the final state and ends the line.
func (b *Bar) Done() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.draw()
	fmt.Fprintln(b.w)
}
