package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/awsfanout/fanout/internal/scenario"
)

// tinyGrid has four cells whose calls fit in the burst, so that no run
// waits out a throttling back-off.
var tinyGrid = scenario.Grid{
	Rates: []float64{50, 100}, Bursts: []int{8}, RoundTrips: []time.Duration{0, 2 * time.Millisecond},
}

func withGrid(t *testing.T, g scenario.Grid) {
	saved := regimesGrid
	regimesGrid = g
	t.Cleanup(func() { regimesGrid = saved })
}

// TestRegimesTable: the table has a row per cell, each with a result for
// every implementation, and the chart a panel per round trip and burst.
func TestRegimesTable(t *testing.T) {
	withGrid(t, tinyGrid)
	chart := filepath.Join(t.TempDir(), "regimes.svg")
	var out, errb bytes.Buffer
	if code := run([]string{"-scenario", "regimes", "-regimes-chart", chart}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] != "#" && f[0] != "rate/s" {
			rows = append(rows, f)
		}
	}
	cells := tinyGrid.Cells()
	if len(rows) != len(cells) {
		t.Fatalf("%d rows for %d cells:\n%s", len(rows), len(cells), out.String())
	}
	for i, c := range cells {
		// rate, burst, rtt_ms, calls, ideal_s; per implementation failed,
		// x ideal, % throttled; best peer, fanout x best peer, fanout x
		// told.
		f := rows[i]
		if len(f) != 5+3*len(scenario.RegimeImpls)+3 || f[0] != strconv.FormatFloat(c.Rate, 'g', -1, 64) || f[1] != strconv.Itoa(c.Burst) || f[2] != strconv.Itoa(c.RoundTripMS) || f[3] != strconv.Itoa(c.Calls) {
			t.Errorf("row %d for %+v: %q", i, c, f)
		}
		if slices.Contains(f, "-") {
			t.Errorf("row %d has a missing result: %q", i, f)
		}
	}
	svg, err := os.ReadFile(chart)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(svg); !strings.HasPrefix(s, "<svg") || strings.Count(s, "<rect") != 2 || strings.Count(s, "<polyline") != 2*len(scenario.RegimeImpls) || strings.Contains(s, "NaN") {
		t.Errorf("chart:\n%s", s)
	}
}

func TestRegimesJSON(t *testing.T) {
	withGrid(t, scenario.Grid{Rates: []float64{100}, Bursts: []int{8}, RoundTrips: []time.Duration{0}})
	var out, errb bytes.Buffer
	if code := run([]string{"-scenario", "regimes", "-impl", "errgroup,fanout", "-json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), out.String())
	}
	for i, impl := range []string{"errgroup", "fanout"} {
		var o struct {
			Scenario, Impl, BestPeer string
			Items                    int
			Regime                   *scenario.Regime
		}
		if err := json.Unmarshal([]byte(lines[i]), &o); err != nil {
			t.Fatal(err)
		}
		want := scenario.Regime{Rate: 100, Burst: 8, Calls: 8}
		if o.Scenario != "regimes" || o.Impl != impl || o.Items != 8 || o.Regime == nil || *o.Regime != want {
			t.Errorf("line %d: %s", i, lines[i])
		}
		if !strings.Contains(lines[i], `"best_peer":"errgroup"`) {
			t.Errorf("line %d names no best peer: %s", i, lines[i])
		}
	}
}

func TestRegimesSVG(t *testing.T) {
	g := scenario.Grid{Rates: []float64{5, 20}, Bursts: []int{1, 100}, RoundTrips: []time.Duration{0}}
	var runs []scenario.Outcome
	for _, c := range g.Cells() {
		for _, impl := range []string{scenario.Fanout, scenario.Errgroup} {
			failed := 0
			if impl == scenario.Errgroup {
				failed = 3
			}
			runs = append(runs, scenario.Outcome{Impl: impl, WallS: c.Rate / 10, IdealS: 1, Failed: failed, Regime: &c})
		}
	}
	s := regimesSVG(g, runs, []string{scenario.Fanout, scenario.Errgroup})
	if strings.Count(s, "<rect") != 2 || strings.Count(s, "<polyline") != 4 || strings.Count(s, `fill="#fff" stroke="#1f77b4"`) != 4 || strings.Contains(s, "NaN") {
		t.Errorf("svg:\n%s", s)
	}
}

func TestYTicks(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		ratios []float64
		want   []float64
	}{
		"none":            {want: []float64{0.5, 1}},
		"at the ideal":    {ratios: []float64{1}, want: []float64{0.5, 1}},
		"above":           {ratios: []float64{1.2, 11.6}, want: []float64{0.5, 1, 2, 5, 10, 20}},
		"below and above": {ratios: []float64{0.18, 6}, want: []float64{0.1, 0.2, 0.5, 1, 2, 5, 10}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var runs []scenario.Outcome
			for _, r := range tc.ratios {
				runs = append(runs, scenario.Outcome{WallS: r, IdealS: 1})
			}
			got := yTicks(runs)
			if len(got) != len(tc.want) {
				t.Fatalf("yTicks(%v) = %v; want %v", tc.ratios, got, tc.want)
			}
			for i := range got {
				if math.Abs(got[i]-tc.want[i]) > 1e-9 {
					t.Fatalf("yTicks(%v) = %v; want %v", tc.ratios, got, tc.want)
				}
			}
		})
	}
}

// TestRegimesSpan: -regimes-span sets how many calls a cell makes.
func TestRegimesSpan(t *testing.T) {
	withGrid(t, scenario.Grid{Rates: []float64{50}, Bursts: []int{8}, RoundTrips: []time.Duration{0}})
	var out, errb bytes.Buffer
	if code := run([]string{"-scenario", "regimes", "-impl", "fanout", "-regimes-span", "200ms"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var calls []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[0] == "50" {
			calls = append(calls, f[3])
		}
	}
	if want := strconv.Itoa(8 + 50*200/1000); len(calls) != 1 || calls[0] != want {
		t.Errorf("calls %q; want one row of %s:\n%s", calls, want, out.String())
	}
}
