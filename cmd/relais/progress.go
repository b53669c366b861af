package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressBar draws a one-line progress bar on a terminal, redrawn in
// place with a carriage return. On anything else (a pipe, a log file, a
// test buffer) it draws nothing: the summary at the end says it all.
type progressBar struct {
	w     io.Writer
	on    bool
	start time.Time
	now   func() time.Time
	width int // columns of the bar itself
	drawn bool
}

func newProgressBar(w io.Writer) *progressBar {
	return &progressBar{w: w, on: isTerminal(w), start: time.Now(), now: time.Now, width: 30}
}

// isTerminal reports whether w is a character device (a terminal), without
// a dependency: os.File's mode says so.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// update redraws the bar: done of total bytes (total 0: unknown), rows so
// far, and what happens after the rows when phase is not empty.
func (p *progressBar) update(done, total int64, rows int, phase string) {
	if !p.on {
		return
	}
	line := p.line(done, total, rows)
	if phase != "" {
		line = strings.TrimRight(line, " ") + "  " + phase + "...   "
	}
	fmt.Fprint(p.w, "\r"+line)
	p.drawn = true
}

// line renders the bar: "[=========>          ]  45%  812,034 rows  38.2 MB/s  ETA 12s".
func (p *progressBar) line(done, total int64, rows int) string {
	elapsed := p.now().Sub(p.start)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	var b strings.Builder
	if total > 0 {
		frac := min(float64(done)/float64(total), 1)
		full := int(frac * float64(p.width))
		b.WriteString("[")
		b.WriteString(strings.Repeat("=", full))
		if full < p.width {
			b.WriteString(">")
			b.WriteString(strings.Repeat(" ", p.width-full-1))
		}
		fmt.Fprintf(&b, "] %3.0f%%", frac*100)
	}
	fmt.Fprintf(&b, "  %s rows  %.1f MB/s", groupThousands(int64(rows)), rate/1e6)
	if total > 0 && rate > 0 && done < total {
		eta := time.Duration(float64(total-done) / rate * float64(time.Second))
		fmt.Fprintf(&b, "  ETA %s", eta.Round(time.Second))
	}
	b.WriteString("   ") // wipe the tail of a longer previous line
	return b.String()
}

// finish ends the bar's line so that what follows starts on a fresh one.
func (p *progressBar) finish() {
	if p.on && p.drawn {
		fmt.Fprintln(p.w)
	}
}

// groupThousands writes n with thin groups: 2000000 -> "2,000,000".
func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
