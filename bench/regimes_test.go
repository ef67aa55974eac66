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
	for _, f := range rowsOf(out.String(), "50") {
		if len(f) > 3 {
			calls = append(calls, f[3])
		}
	}
	if want := strconv.Itoa(8 + 50*200/1000); len(calls) != 1 || calls[0] != want {
		t.Errorf("calls %q; want one row of %s:\n%s", calls, want, out.String())
	}
}

// TestRegimesRuns: with -regimes-runs, each cell runs that many times, the
// implementations one after another in each round, every run a JSON line
// numbered from 1; the table has one row a cell.
func TestRegimesRuns(t *testing.T) {
	withGrid(t, scenario.Grid{Rates: []float64{100}, Bursts: []int{8}, RoundTrips: []time.Duration{0}})
	chart := filepath.Join(t.TempDir(), "regimes.svg")
	var out, errb bytes.Buffer
	if code := run([]string{"-scenario", "regimes", "-impl", "errgroup,fanout", "-regimes-runs", "3", "-json", "-regimes-chart", chart}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if n := strings.Count(errb.String(), "(run 3 of 3)"); n != 2 {
		t.Errorf("%d progress lines for a third run; want 2:\n%s", n, errb.String())
	}
	// The chart, with -json too, has a point a cell for each
	// implementation, not one a run.
	if svg, err := os.ReadFile(chart); err != nil || strings.Count(string(svg), "<title>") != 2 {
		t.Errorf("chart (%v):\n%s", err, svg)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var o struct {
			Impl     string
			Run      int
			BestPeer string `json:"best_peer"`
		}
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatal(err)
		}
		if o.BestPeer != "errgroup" {
			t.Errorf("no best peer: %s", line)
		}
		got = append(got, o.Impl+strconv.Itoa(o.Run))
	}
	if want := []string{"errgroup1", "fanout1", "errgroup2", "fanout2", "errgroup3", "fanout3"}; !slices.Equal(got, want) {
		t.Errorf("runs %q; want %q", got, want)
	}

	out.Reset()
	if code := run([]string{"-scenario", "regimes", "-impl", "fanout", "-regimes-runs", "2"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	rows := rowsOf(out.String(), "100")
	for _, f := range rows {
		if len(f) <= 5 || f[5] != "0" { // no call fails: the calls fit in the burst
			t.Errorf("row %q", f)
		}
	}
	if !strings.Contains(out.String(), "# 2 runs a cell") || len(rows) != 1 {
		t.Errorf("%d rows:\n%s", len(rows), out.String())
	}
}

// TestMedians: each implementation's median run by wall time, with the
// failed calls, requests and throttles of all its runs.
func TestMedians(t *testing.T) {
	t.Parallel()
	run := func(impl string, wall float64, failed int, req, thr int64) scenario.Outcome {
		return scenario.Outcome{Impl: impl, WallS: wall, Failed: failed, Requests: req, Throttled: thr, CPUS: wall}
	}
	rounds := [][]scenario.Outcome{
		{run("a", 3, 1, 10, 1), run("b", 1, 0, 5, 0)},
		{run("a", 1, 0, 10, 2), run("b", 4, 0, 5, 1)},
		{run("a", 2, 2, 10, 3)}, // b was not run
	}
	got := medians(rounds, []string{"b", "a", "c"})
	want := []scenario.Outcome{
		run("b", 4, 0, 10, 1), // of two, the slower
		run("a", 2, 3, 30, 6),
	}
	want[0].CPUS, want[1].CPUS = 4, 2 // the median run's own
	if len(got) != len(want) {
		t.Fatalf("medians = %+v; want %+v", got, want)
	}
	for i := range want {
		if got[i].Impl != want[i].Impl || got[i].WallS != want[i].WallS || got[i].Failed != want[i].Failed ||
			got[i].Requests != want[i].Requests || got[i].Throttled != want[i].Throttled || got[i].CPUS != want[i].CPUS || got[i].Run != 0 {
			t.Errorf("medians[%d] = %+v; want %+v", i, got[i], want[i])
		}
	}
}
