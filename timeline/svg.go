package timeline

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The picture's geometry, in pixels.
const (
	width     = 1000
	plotLeft  = 190 // left of it, the row labels
	plotRight = 955 // right of it, room for a limit's last value
	laneH     = 14
	laneGap   = 3
	rowPad    = 4
	labelMax  = 28 // runes of a row label; a longer one is cut, whole in its tooltip
	limitBand = 16 // under the lanes of a row with an adaptive limit, for its step line
)

// The colors: each item's wait and run, its attempts, and the limit.
const (
	colWait      = "#f0f0f0"
	colRun       = "#d6e6f5"
	colRunEdge   = "#8fb3d9"
	colFailed    = "#f6d4d0"
	colFailEdge  = "#c0392b"
	colSkipped   = "#e4e4e4"
	colAttempt   = "#1f77b4"
	colThrottled = "#ff7f0e"
	colPaced     = "#9467bd"
	colRetry     = "#111"
	colLimit     = "#2ca02c"
)

// WriteSVG draws what the Recorder has recorded as a waterfall, a
// self-contained SVG about 1000 pixels wide, and writes it to w.
//
// Each row is one region, or "account/region" for the items in another
// account than the pool's, in the order of their first start; an item
// outside the AWS layer has a row named by its key. Items of one row
// that overlap in time are stacked; an SDK attempt made outside any item
// (with a region) is drawn bare in its region's row. Time runs from the
// first span's start. Each item is a bar: its wait for the limit hatched,
// its run plain (red-edged if it failed). The SDK attempts made inside it
// are drawn in it, throttled ones in orange, a retry marked with a
// triangle above its start, and the time the pool's adaptive limit held
// an attempt before sending it hatched in violet. Under the items of a
// row whose client's adaptive limit was sampled, a green step line draws
// that limit, on a log scale from the lowest limit sampled in any row to
// the highest, with its last value at its end. A title line gives the
// totals. Spans still running are drawn to the last time recorded.
//
// The same recorded data always gives the same bytes.
func (r *Recorder) WriteSVG(w io.Writer) error {
	wf := newWaterfall(r.Spans(), r.Samples())
	_, err := w.Write(wf.svg())
	return err
}

// canvas is an SVG being written, with the waterfall's time scale.
type canvas struct {
	bytes.Buffer
	start time.Time
	secs  float64 // the seconds plotLeft to plotRight stand for
}

func (c *canvas) printf(format string, args ...any) { fmt.Fprintf(c, format, args...) }

func (c *canvas) x(t time.Time) float64 {
	return plotLeft + t.Sub(c.start).Seconds()/c.secs*(plotRight-plotLeft)
}

// span returns the x and width of [from, to], at least a pixel wide so
// that a short attempt stays visible.
func (c *canvas) span(from, to time.Time) (x, w float64) {
	x = c.x(from)
	return x, max(c.x(to)-x, 1)
}

func (wf *waterfall) svg() []byte {
	c := &canvas{start: wf.start, secs: max(wf.end.Sub(wf.start), time.Millisecond).Seconds()}
	top := 62.0
	height := top
	for _, r := range wf.rows {
		height += r.height()
	}
	height += 44
	c.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" viewBox="0 0 %d %.0f" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	c.printf(`<defs><pattern id="wait" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="%s"/><line x1="0" y1="0" x2="0" y2="6" stroke="#bbb" stroke-width="2"/></pattern>`, colWait)
	c.printf(`<pattern id="paced" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="4" height="4" fill="#fff"/><line x1="0" y1="0" x2="0" y2="4" stroke="%s" stroke-width="2"/></pattern></defs>`+"\n", colPaced)
	c.printf(`<rect width="100%%" height="100%%" fill="#fff"/>` + "\n")
	c.printf(`<text class="title" x="10" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", esc(wf.title()))
	wf.legend(c)
	c.grid(top, height-44)
	y := top
	for i, r := range wf.rows {
		r.draw(c, y, i, wf.limits)
		y += r.height()
	}
	if len(wf.rows) == 0 {
		c.printf(`<text x="%d" y="%.0f" fill="#666">nothing recorded</text>`+"\n", plotLeft, top+14)
	}
	c.axis(y)
	c.WriteString("</svg>\n")
	return c.Bytes()
}

func (wf *waterfall) title() string {
	return fmt.Sprintf("fan-out timeline: %d items, %d failed, %d attempts, %d throttled, %d retried, wall %.3fs",
		wf.items, wf.failed, wf.attempts, wf.throttled, wf.retried, wf.end.Sub(wf.start).Seconds())
}

// legend draws a key for each mark, wrapping to a second line if it must.
func (wf *waterfall) legend(c *canvas) {
	limit := "adaptive limit, requests per round trip, log scale (" + short(wf.limits.lo) + " at a row's bottom, " + short(wf.limits.hi) + " at its top)"
	if wf.limits.hi == 0 {
		limit = "adaptive limit (none sampled)"
	}
	x, y := 10.0, 40.0
	for _, e := range []struct{ swatch, label string }{
		{`<rect x="%.1f" y="%.1f" width="16" height="10" fill="url(#wait)" stroke="#999"/>`, "waiting for the limit"},
		{`<rect x="%.1f" y="%.1f" width="16" height="10" fill="` + colRun + `" stroke="` + colRunEdge + `"/>`, "item running"},
		{`<rect x="%.1f" y="%.1f" width="16" height="10" fill="` + colFailed + `" stroke="` + colFailEdge + `"/>`, "item failed"},
		{`<rect x="%.1f" y="%.1f" width="16" height="10" fill="` + colAttempt + `"/>`, "attempt"},
		{`<rect x="%.1f" y="%.1f" width="16" height="10" fill="` + colThrottled + `"/>`, "throttled attempt"},
		{`<path transform="translate(%.1f %.1f)" d="M4 0h8l-4 6z" fill="` + colRetry + `"/>`, "retry"},
		{`<rect x="%.1f" y="%.1f" width="16" height="10" fill="url(#paced)" stroke="` + colPaced + `"/>`, "held by the adaptive limit"},
		{`<path transform="translate(%.1f %.1f)" d="M0 9h6v-7h10" fill="none" stroke="` + colLimit + `" stroke-width="1.5"/>`, limit},
	} {
		w := 26 + 6*float64(utf8.RuneCountInString(e.label))
		if x+w > width {
			x, y = 10, y+16
		}
		c.printf(`<g class="legend">`+e.swatch+`<text x="%.1f" y="%.1f">%s</text></g>`+"\n", x, y-9, x+20, y, esc(e.label))
		x += w + 10
	}
}

// grid draws a light vertical line at each tick, behind the rows.
func (c *canvas) grid(top, bottom float64) {
	for _, t := range c.ticks() {
		x := c.x(c.start.Add(time.Duration(t * float64(time.Second))))
		c.printf(`<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#e6e6e6"/>`+"\n", x, top, x, bottom)
	}
}

// axis draws the time axis below the rows, in seconds from the start.
func (c *canvas) axis(y float64) {
	c.printf(`<g class="axis"><line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#333"/>`+"\n", plotLeft, y, plotRight, y)
	step := c.tickStep()
	decimals := max(0, int(-math.Floor(math.Log10(step)+1e-9)))
	for _, t := range c.ticks() {
		x := c.x(c.start.Add(time.Duration(t * float64(time.Second))))
		c.printf(`<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#333"/><text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n",
			x, y, x, y+4, x, y+16, strconv.FormatFloat(t, 'f', decimals, 64))
	}
	c.printf(`<text x="%d" y="%.0f" text-anchor="end">seconds since the first span</text></g>`+"\n", plotRight, y+34)
}

// tickStep is 1, 2 or 5 times a power of ten, for 5 to 10 ticks.
func (c *canvas) tickStep() float64 {
	rough := c.secs / 10
	p := math.Pow(10, math.Floor(math.Log10(rough)))
	for _, m := range []float64{1, 2, 5} {
		if m*p >= rough {
			return m * p
		}
	}
	return 10 * p
}

func (c *canvas) ticks() []float64 {
	step := c.tickStep()
	var ts []float64
	for i := 0; float64(i)*step <= c.secs*(1+1e-9); i++ {
		ts = append(ts, float64(i)*step)
	}
	return ts
}

func (r *row) height() float64 {
	h := r.lanesHeight() + 2*rowPad
	if len(r.limit) > 0 {
		h += limitBand
	}
	return h
}

func (r *row) lanesHeight() float64 { return float64(r.lanes*laneH + (r.lanes-1)*laneGap) }

// draw draws the row whose top is y, i-th from the top.
func (r *row) draw(c *canvas, y float64, i int, limits scale) {
	c.printf(`<g class="row">`)
	if i%2 == 1 {
		c.printf(`<rect x="0" y="%.1f" width="%d" height="%.1f" fill="#000" fill-opacity="0.03"/>`, y, width, r.height())
	}
	label := r.label
	if utf8.RuneCountInString(label) > labelMax {
		label = string([]rune(label)[:labelMax-1]) + "…"
	}
	c.printf(`<text x="10" y="%.1f">%s<title>%s</title></text>`+"\n", y+r.height()/2+4, esc(label), esc(r.label))
	for _, b := range r.bars {
		b.draw(c, y+rowPad+float64(b.lane*(laneH+laneGap)))
	}
	r.drawLimit(c, y, limits)
	c.printf("</g>\n")
}

// draw draws the bar in the lane whose top is y.
func (b *bar) draw(c *canvas, y float64) {
	if b.item {
		b.drawItem(c, y)
	}
	for _, a := range b.attempts {
		a.draw(c, y)
	}
}

func (b *bar) drawItem(c *canvas, y float64) {
	run := b.started
	if run.IsZero() {
		run = b.end // it never started: all of it was a wait
	}
	if run.After(b.start) {
		x, w := c.span(b.start, run)
		c.printf(`<rect class="wait" x="%.1f" y="%.1f" width="%.1f" height="%d" fill="url(#wait)" stroke="#999" stroke-width="0.5"/>`+"\n", x, y, w, laneH)
	}
	fill, edge, class := colRun, colRunEdge, "item"
	switch {
	case b.failed:
		fill, edge, class = colFailed, colFailEdge, "item failed"
	case b.outcome == outcomeSkipped:
		fill, class = colSkipped, "item skipped"
	}
	x, w := c.span(run, b.end)
	if b.started.IsZero() {
		x, w = c.span(b.start, b.end) // an outline over the wait carries the tooltip
		fill = "none"
	}
	c.printf(`<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s" stroke="%s"><title>%s</title></rect>`+"\n",
		class, x, y, w, laneH, fill, edge, esc(b.tooltip()))
}

func (b *bar) tooltip() string {
	s := b.key
	if b.outcome != "" {
		s += ": " + b.outcome
	}
	if b.started.IsZero() {
		return s + fmt.Sprintf(", waited %.3fs, never started", b.end.Sub(b.start).Seconds())
	}
	s += fmt.Sprintf(", waited %.3fs, ran %.3fs", b.started.Sub(b.start).Seconds(), b.end.Sub(b.started).Seconds())
	switch len(b.attempts) {
	case 0:
		return s
	case 1:
		return s + ", 1 attempt"
	}
	return s + fmt.Sprintf(", %d attempts", len(b.attempts))
}

// draw draws the attempt inside the lane whose top is y: the time the
// adaptive limit held it, then the request, then a retry's mark.
func (a attempt) draw(c *canvas, y float64) {
	sent := a.start.Add(min(a.wait, a.end.Sub(a.start)))
	if a.wait > 0 {
		x, w := c.span(a.start, sent)
		c.printf(`<rect class="paced" x="%.1f" y="%.1f" width="%.1f" height="%d" fill="url(#paced)" stroke="%s" stroke-width="0.5"/>`+"\n", x, y+3, w, laneH-6, colPaced)
	}
	fill, class := colAttempt, "attempt"
	if a.throttled {
		fill, class = colThrottled, "attempt throttled"
	}
	x, w := c.span(sent, a.end)
	if w > 3 {
		w -= 1 // a gap, so that the attempts of calls one after another stay apart
	}
	c.printf(`<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"><title>%s</title></rect>`+"\n", class, x, y+3, w, laneH-6, fill, esc(a.tooltip()))
	if a.n > 1 {
		c.printf(`<path class="retry" transform="translate(%.1f %.1f)" d="M-4 0h8l-4 6z" fill="%s"/>`+"\n", c.x(a.start), y-2, colRetry)
	}
}

func (a attempt) tooltip() string {
	s := strings.TrimSpace(a.op + " attempt " + strconv.Itoa(a.n))
	if a.throttled {
		s += ", throttled"
	}
	if a.wait > 0 {
		s += fmt.Sprintf(", held %.3fs by the adaptive limit", a.wait.Seconds())
	}
	return s + fmt.Sprintf(", %.3fs", a.end.Sub(a.start).Seconds())
}

// drawLimit draws the row's adaptive limit as a step line from its first
// sample to the row's last end, and its last value after it.
func (r *row) drawLimit(c *canvas, top float64, limits scale) {
	if len(r.limit) == 0 || limits.hi == 0 {
		return
	}
	high := top + rowPad + r.lanesHeight() + 3 // the band under the lanes
	low := high + limitBand - 5
	y := func(v float64) float64 { return low - limits.at(v)*(low-high) }
	var pts []string
	lowest := r.limit[0].Value
	for i, s := range r.limit {
		if i > 0 {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", c.x(s.Time), y(r.limit[i-1].Value)))
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", c.x(s.Time), y(s.Value)))
		lowest = min(lowest, s.Value)
	}
	last := r.limit[len(r.limit)-1]
	end := c.x(latest(r.last, last.Time))
	pts = append(pts, fmt.Sprintf("%.1f,%.1f", end, y(last.Value)))
	c.printf(`<polyline class="limit" points="%s" fill="none" stroke="%s" stroke-width="1.5"><title>%s</title></polyline>`+"\n",
		strings.Join(pts, " "), colLimit, esc(fmt.Sprintf("adaptive limit of %s: %d samples, lowest %s, last %s requests per round trip",
			r.label, len(r.limit), short(lowest), short(last.Value))))
	c.printf(`<text x="%.1f" y="%.1f" font-size="9" fill="%s">%s</text>`+"\n", end+3, y(last.Value)+3, colLimit, short(last.Value))
}

func short(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) }

// esc escapes text for XML; a key may hold anything.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}
