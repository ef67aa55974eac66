package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/awsfanout/fanout/internal/scenario"
)

// regimes is the name -scenario takes for the sweep.
const regimes = "regimes"

// regimesGrid is the sweep the bench command runs; tests make it smaller.
var regimesGrid = scenario.DefaultGrid

// sweep is what the bench command runs of the regimes sweep.
type sweep struct {
	grid  scenario.Grid
	which []string // the implementations, in the order each round runs them
	runs  int      // rounds a cell, each of every implementation
	json  bool     // print one JSON object per run, not the table
	chart string   // also write the sweep as an SVG chart to this file, if set
}

// runRegimes runs every cell of s.grid s.runs times, each time with each
// implementation one after another, and prints one table row per cell,
// or one JSON object per run; with s.chart, it also writes the sweep
// there as an SVG chart. Over more than one run, a cell's row and chart
// point are each implementation's median (see medians).
func runRegimes(ctx context.Context, stdout, stderr io.Writer, s sweep) error {
	p := scenario.Default
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if !s.json {
		header(stdout)
		fmt.Fprintf(stdout, "# %s: one region, Limit %d, latency the round trip plus up to %.0f%% more per request; burst + rate x %v calls a cell\n",
			regimes, p.Limit, 100*p.Jitter, s.grid.Span)
		fmt.Fprintf(stdout, "# ideal = max(calls x call / %d, call + (calls - burst) / rate), call measured at Limit 1; each implementation: failed calls, wall / ideal, %% of requests throttled\n", p.Limit)
		if s.runs > 1 {
			fmt.Fprintf(stdout, "# %d runs a cell, the implementations one after another in each: failed calls summed over the runs, the median run's wall / ideal (fanout's ratios are of medians), %% throttled of all the runs' requests\n", s.runs)
		}
		last := "fanout x best peer"
		if slices.Contains(s.which, scenario.Told) {
			fmt.Fprintf(stdout, "# %s\n", scenario.ToldNote())
			last += "\tfanout x told"
		}
		fmt.Fprintf(tw, "rate/s\tburst\trtt_ms\tcalls\tideal_s\t%s\tbest peer\t%s\t\n", strings.Join(s.which, "\t"), last)
	}
	var points []scenario.Outcome
	for _, cell := range s.grid.Cells() {
		rounds, err := runCell(ctx, stderr, cell, s.which, s.runs)
		if err != nil {
			tw.Flush() // the rows done
			return err
		}
		outs := medians(rounds, s.which)
		scenario.ComparePeers(outs)
		points = append(points, outs...)
		if !s.json {
			fmt.Fprintln(tw, regimeRow(cell, outs, s.which))
			continue
		}
		for _, round := range rounds {
			scenario.ComparePeers(round)
			for _, o := range round {
				b, _ := json.Marshal(o)
				fmt.Fprintln(stdout, string(b))
			}
		}
	}
	tw.Flush()
	if s.chart == "" {
		return nil
	}
	return os.WriteFile(s.chart, []byte(regimesSVG(s.grid, points, s.which)), 0o644)
}

// runCell runs one cell runs times, each time with each implementation
// that runs it, one after another; it returns the runs round by round,
// each numbered (Outcome.Run) if there is more than one.
func runCell(ctx context.Context, stderr io.Writer, cell scenario.Regime, which []string, runs int) ([][]scenario.Outcome, error) {
	rounds := make([][]scenario.Outcome, runs)
	skipped := map[string]bool{}
	for r := range rounds {
		for _, impl := range which {
			if skipped[impl] {
				continue
			}
			o, err := scenario.RunRegime(ctx, cell, impl, scenario.Default)
			if errors.Is(err, scenario.ErrSkipped) {
				skipped[impl] = true
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s %+v/%s: %w", regimes, cell, impl, err)
			}
			of := ""
			if runs > 1 {
				o.Run = r + 1
				of = fmt.Sprintf(" (run %d of %d)", o.Run, runs)
			}
			fmt.Fprintf(stderr, "bench: %s rate %g burst %d rtt %dms %s done in %.1fs%s\n", regimes, cell.Rate, cell.Burst, cell.RoundTripMS, impl, o.WallS, of)
			rounds[r] = append(rounds[r], o)
		}
	}
	return rounds, nil
}

// medians is each implementation's median of a cell's rounds, in which's
// order: its median run by wall time (of an even number, the slower of
// the two in the middle), with the failed calls, requests and throttles
// of all its runs. An implementation with no run is left out.
func medians(rounds [][]scenario.Outcome, which []string) []scenario.Outcome {
	var outs []scenario.Outcome
	for _, impl := range which {
		var runs []scenario.Outcome
		for _, round := range rounds {
			for _, o := range round {
				if o.Impl == impl {
					runs = append(runs, o)
				}
			}
		}
		if len(runs) == 0 {
			continue
		}
		slices.SortStableFunc(runs, func(a, b scenario.Outcome) int { return cmp.Compare(a.WallS, b.WallS) })
		m := runs[len(runs)/2]
		m.Failed, m.Requests, m.Throttled, m.Run = 0, 0, 0, 0
		for _, o := range runs {
			m.Failed += o.Failed
			m.Requests += o.Requests
			m.Throttled += o.Throttled
		}
		outs = append(outs, m)
	}
	return outs
}

// regimeRow is a cell's table row: for each implementation its failed
// calls, wall over ideal and share of requests throttled, then the best
// peer and fanout's wall over it, and, with the Told reference, fanout's
// wall over its.
func regimeRow(cell scenario.Regime, outs []scenario.Outcome, which []string) string {
	row := []string{fmt.Sprint(cell.Rate), fmt.Sprint(cell.Burst), fmt.Sprint(cell.RoundTripMS), fmt.Sprint(cell.Calls), "-"}
	if len(outs) > 0 {
		row[4] = fmt.Sprintf("%.3f", outs[0].IdealS)
	}
	best, vsBest := "-", "-"
	var fanoutS, toldS float64
	for _, impl := range which {
		i := slices.IndexFunc(outs, func(o scenario.Outcome) bool { return o.Impl == impl })
		if i < 0 {
			row = append(row, "-")
			continue
		}
		o := outs[i]
		row = append(row, fmt.Sprintf("%3d %6s %5.1f%%", o.Failed, ratio(o.WallS, o.IdealS), percent(o.Throttled, o.Requests)))
		if o.BestPeer != "" {
			best = o.BestPeer
		}
		switch impl {
		case scenario.Fanout:
			vsBest, fanoutS = times(o.XBestPeer), o.WallS
		case scenario.Told:
			toldS = o.WallS
		}
	}
	row = append(row, best, vsBest)
	if slices.Contains(which, scenario.Told) {
		vsTold := "-"
		if fanoutS > 0 && toldS > 0 {
			vsTold = times(fanoutS / toldS)
		}
		row = append(row, vsTold)
	}
	return strings.Join(row, "\t") + "\t"
}

func percent(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// Sizes of the regimes chart, in pixels.
const (
	panelW, panelH     = 260, 160
	gapX, gapY         = 50, 60
	marginL, marginT   = 60, 80
	marginR, marginB   = 20, 20
	regimesChartTitleY = 20
)

// regimesSVG draws the sweep as small multiples, a panel per round trip
// (rows) and burst (columns), each with wall over ideal (log) against the
// bucket's rate, a line per implementation, a point per outcome in runs
// (over several runs a cell, the medians); a hollow point failed calls
// (in any of the cell's runs, for a median).
func regimesSVG(g scenario.Grid, runs []scenario.Outcome, impls []string) string {
	ticks := yTicks(runs)
	cols, rows := len(g.Bursts), len(g.RoundTrips)
	w, h := marginL+cols*panelW+(cols-1)*gapX+marginR, marginT+rows*panelH+(rows-1)*gapY+marginB
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14">regimes: wall time / ideal (log) against the bucket's rate per second; one region, Limit %d</text>`+"\n",
		marginL, regimesChartTitleY, scenario.Default.Limit)
	legend(&b, impls)
	for r, rt := range g.RoundTrips {
		for c, burst := range g.Bursts {
			x0, y0 := marginL+c*(panelW+gapX), marginT+r*(panelH+gapY)
			panel(&b, g, x0, y0, ticks, fmt.Sprintf("round trip %d ms, burst %d", rt.Milliseconds(), burst), impls, func(o scenario.Outcome) bool {
				return o.Regime != nil && o.Regime.Burst == burst && o.Regime.RoundTripMS == int(rt/time.Millisecond)
			}, runs)
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// yTicks are the steps of 1, 2 and 5 times a power of ten from the one
// below every run's wall over ideal, and below 1, to the one at or above
// the highest; the first and last bound the axis.
func yTicks(runs []scenario.Outcome) []float64 {
	lo, hi := 1.0, 1.0
	for _, o := range runs {
		if v := o.WallS / o.IdealS; o.IdealS > 0 && v > 0 {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	var ticks []float64
	for e := math.Floor(math.Log10(lo)) - 1; ; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo {
				ticks = []float64{v} // only the highest step below lo
				continue
			}
			if ticks = append(ticks, v); v >= hi {
				return ticks
			}
		}
	}
}

func legend(b *strings.Builder, impls []string) {
	x := marginL
	for _, name := range impls {
		label := name
		if scenario.IsReference(name) {
			label += " (reference)"
		}
		fmt.Fprintf(b, `<circle cx="%d" cy="44" r="4" fill="%s"/><text x="%d" y="48" fill="%s">%s</text>`+"\n", x, colors[name], x+8, colors[name], label)
		x += 20 + 7*len(label)
	}
	fmt.Fprintf(b, `<circle cx="%d" cy="44" r="4" fill="#fff" stroke="#333"/><text x="%d" y="48">failed calls</text>`+"\n", x, x+8)
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="44" y2="44" stroke="#000" stroke-dasharray="4 3"/><text x="%d" y="48">ideal</text>`+"\n", x+100, x+124, x+130)
}

// panel draws the runs in that belong to one panel, at x0, y0.
func panel(b *strings.Builder, g scenario.Grid, x0, y0 int, ticks []float64, title string, impls []string, in func(scenario.Outcome) bool, runs []scenario.Outcome) {
	x := func(i int) float64 {
		return float64(x0) + 15 + float64(i)*float64(panelW-30)/float64(max(len(g.Rates)-1, 1))
	}
	lo, hi := ticks[0], ticks[len(ticks)-1]
	y := func(v float64) float64 {
		return float64(y0) + float64(panelH)*(1-(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo)))
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12">%s</text>`+"\n", x0, y0-8, title)
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", x0, y0, panelW, panelH)
	for _, v := range ticks {
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n", x0, x0+panelW, y(v), y(v), x0-4, y(v)+4, v)
	}
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#000" stroke-dasharray="4 3"/>`+"\n", x0, x0+panelW, y(1), y(1))
	for i, r := range g.Rates {
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n", x(i), y0+panelH+14, r)
	}
	for _, impl := range impls {
		var pts []string
		for _, o := range runs {
			i := slices.Index(g.Rates, rateOf(o))
			if o.Impl != impl || !in(o) || i < 0 || o.IdealS <= 0 || o.WallS <= 0 {
				continue
			}
			px, py := x(i), y(o.WallS/o.IdealS)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px, py))
			fill := colors[impl]
			if o.Failed > 0 {
				fill = "#fff"
			}
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s" stroke="%s"><title>%s: %d failed, %.2fx ideal</title></circle>`+"\n",
				px, py, fill, colors[impl], impl, o.Failed, o.WallS/o.IdealS)
		}
		if len(pts) > 1 {
			dash := "" // a reference's line is dashed
			if scenario.IsReference(impl) {
				dash = ` stroke-dasharray="5 3"`
			}
			fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.5"%s points="%s"/>`+"\n", colors[impl], dash, strings.Join(pts, " "))
		}
	}
}

func rateOf(o scenario.Outcome) float64 {
	if o.Regime == nil {
		return math.NaN()
	}
	return o.Regime.Rate
}
