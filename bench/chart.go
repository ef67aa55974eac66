package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/awsfanout/fanout/internal/scenario"
)

// colors are the implementations' colors in the charts.
var colors = map[string]string{
	scenario.Sequential: "#999", scenario.Naive: "#d62728", scenario.Errgroup: "#1f77b4",
	scenario.SDKAdaptive: "#ff7f0e", scenario.ErrgroupPool: "#9467bd", scenario.Fanout: "#2ca02c", scenario.Told: "#8c564b", "ideal": "#000",
}

// chartLimits are the concurrencies the chart measures.
var chartLimits = []int{5, 10, 25, 50, 100, 200}

// writeChart runs the items scenario (2,000 calls of 20 ms) at each limit
// with each implementation, and writes wall time against concurrency as
// an SVG line chart.
func writeChart(ctx context.Context, path string, impls []string) error {
	series := map[string][]float64{}
	for _, limit := range chartLimits {
		p := scenario.Default
		p.Items, p.ItemsLimit = 2000, limit
		var ideal float64
		for _, impl := range impls {
			o, err := scenario.Run(ctx, "items", impl, p)
			if errors.Is(err, scenario.ErrSkipped) {
				continue
			}
			if err != nil {
				return err
			}
			ideal = o.IdealS // the same for every implementation: from the call time at Limit 1
			series[impl] = append(series[impl], o.WallS)
			fmt.Fprintf(os.Stderr, "limit %d %s: %.3fs\n", limit, impl, o.WallS)
		}
		if ideal > 0 {
			series["ideal"] = append(series["ideal"], ideal)
		}
	}
	return os.WriteFile(path, []byte(svg(series, append(impls, "ideal"))), 0o644)
}

// svg draws the series on a log-scaled y axis against the limits.
func svg(series map[string][]float64, order []string) string {
	const w, h, left, right, top, bottom = 720, 420, 70, 150, 30, 50
	lo, hi := 1e9, 0.0
	for _, ys := range series {
		for _, y := range ys {
			lo, hi = min(lo, y), max(hi, y)
		}
	}
	// The axis runs from the power of ten below the lowest value to the one
	// above the highest.
	lo, hi = math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
	x := func(i int) float64 { return left + float64(i)*(w-left-right)/float64(len(chartLimits)-1) }
	y := func(v float64) float64 {
		return top + (h-top-bottom)*(1-(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="14">items scenario: 2,000 calls of 20 ms, wall time (s, log) against concurrency limit</text>`+"\n", left)
	for v := lo; v <= hi*1.001; v *= 10 {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n", left, w-right, y(v), y(v), left-6, y(v)+4, v)
	}
	for i, l := range chartLimits {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x(i), h-bottom+18, l)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">limit</text>`+"\n", (left+w-right)/2, h-12)
	for k, name := range order {
		ys := series[name]
		if len(ys) == 0 {
			continue
		}
		var pts []string
		for i, v := range ys {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
		}
		dash := ""
		if name == "ideal" {
			dash = ` stroke-dasharray="4 3"`
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", colors[name], dash, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", w-right+12, top+20+18*k, colors[name], name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
