package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestJSONLines(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-scenario", "faults", "-impl", "errgroup,fanout", "-json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), out.String())
	}
	for i, impl := range []string{"errgroup", "fanout"} {
		var o map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &o); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"scenario", "impl", "items", "failed", "wall_s", "ideal_s", "cpu_s", "conns", "peak_heap_mb"} {
			if _, ok := o[k]; !ok {
				t.Errorf("line %d has no %q: %s", i, k, lines[i])
			}
		}
		if o["scenario"] != "faults" || o["impl"] != impl || o["items"] != 38.0 || o["failed"] != 3.0 {
			t.Errorf("line %d: %s", i, lines[i])
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string // what stderr names
	}{
		{[]string{"-scenario", "nope"}, `"nope"`},
		{[]string{"-scenario", "nope", "-regimes-runs", "3"}, `"nope"`},
		{[]string{"-impl", "threads"}, `"threads"`},
		{[]string{"-bogus"}, "-bogus"},
		{[]string{"-scenario", "regimes", "-regimes-span", "1ms"}, "-regimes-span"},
		{[]string{"-scenario", "regimes", "-regimes-span", "-1s"}, "-regimes-span"},
		{[]string{"-regimes-span", "5s"}, "-regimes-span"},
		{[]string{"-regimes-runs", "3"}, "-regimes-runs"},
		{[]string{"-scenario", "throttle", "-regimes-runs", "1"}, "-regimes-runs"},
		{[]string{"-scenario", "regimes", "-regimes-runs", "0"}, "-regimes-runs"},
		{[]string{"-scenario", "regimes", "-regimes-runs", "100"}, "-regimes-runs"},
		{[]string{"-scenario", "regimes", "-regimes-runs", "x"}, "-regimes-runs"},
		{[]string{"-scenario", "regimes", "-regimes-runs", "3", "-chart", "c.svg"}, "-chart"},
		{[]string{"-regimes-chart", "r.svg", "-chart", "c.svg"}, "-chart"},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.says) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 naming %s", tc.args, code, errb.String(), tc.says)
		}
	}
}

func TestSVG(t *testing.T) {
	s := svg(map[string][]float64{"fanout": {4, 2, 1, .5, .3, .2}, "ideal": {8, 4, 1.6, .8, .4, .2}}, []string{"fanout", "ideal"})
	if !strings.HasPrefix(s, "<svg") || strings.Count(s, "<polyline") != 2 || strings.Contains(s, "NaN") {
		t.Errorf("svg:\n%s", s)
	}
}

// TestNothingRan: implementations a scenario does not run are named on
// stderr, and a run in which nothing ran fails rather than print an empty
// table.
func TestNothingRan(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-scenario", "items", "-items", "10", "-impl", "told"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "items/told not run") || !strings.Contains(errb.String(), "nothing ran") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

// TestToldNote: a table with the told reference in it says what told is.
func TestToldNote(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-scenario", "throttle", "-items", "20", "-impl", "told,fanout"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	rows := len(rowsOf(out.String(), "throttle"))
	if s := out.String(); !strings.Contains(s, "told is a reference, not a peer") || rows != 2 {
		t.Errorf("%d rows; table:\n%s", rows, s)
	}
}

// rowsOf is the fields of each line of a table whose first field is first.
func rowsOf(table, first string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == first {
			rows = append(rows, f)
		}
	}
	return rows
}
