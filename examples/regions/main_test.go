package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/awsfanout/fanout/internal/mototest"
)

func TestMain(m *testing.M) { mototest.Main(m) }

var summary = regexp.MustCompile(`^regions=(\d+) instances=(\d+) failed=(\d+) elapsed=\d+\.\d{3}s$`)

// runRegions runs the command and returns its stdout lines and the
// numbers of its last line.
func runRegions(t *testing.T, args ...string) (lines []string, regions, instances, failed int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	lines = strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	m := summary.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("exit %d; last line %q is not the summary\nstderr: %s", code, lines[len(lines)-1], errb.String())
	}
	regions, _ = strconv.Atoi(m[1])
	instances, _ = strconv.Atoi(m[2])
	failed, _ = strconv.Atoi(m[3])
	if (code == 0) != (failed == 0) {
		t.Errorf("exit %d with failed=%d", code, failed)
	}
	if n := strings.Count(errb.String(), "\n") - strings.Count(errb.String(), "timeline: "); n != regions {
		t.Errorf("%d progress lines on stderr for %d regions", n, regions)
	}
	return lines, regions, instances, failed
}

func TestSimulated(t *testing.T) {
	lines, regions, instances, failed := runRegions(t, "-sim-latency", "0.02")
	if !strings.HasPrefix(lines[0], "simulated AWS") {
		t.Errorf("first line %q does not say the AWS is simulated", lines[0])
	}
	if regions != 34 || failed != 0 {
		t.Errorf("regions=%d failed=%d; want the 34 commercial regions, none failed", regions, failed)
	}
	sum := 0
	for _, l := range lines[2 : len(lines)-1] { // after the notice and the header
		f := strings.Fields(l)
		n, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("table row %q", l)
		}
		sum += n
	}
	if sum != instances || instances == 0 {
		t.Errorf("the table adds up to %d; the summary says %d", sum, instances)
	}
}

func TestGlobsJSONCompare(t *testing.T) {
	lines, regions, instances, _ := runRegions(t, "-sim-latency", "0.01", "-regions", "eu-*,!eu-west-*", "-json", "-compare")
	if regions != 5 {
		t.Errorf("regions=%d; want the 5 eu regions outside eu-west", regions)
	}
	sum := 0
	for _, l := range lines[1 : len(lines)-2] {
		var r struct {
			Region    string `json:"region"`
			Instances int    `json:"instances"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil || !strings.HasPrefix(r.Region, "eu-") || strings.HasPrefix(r.Region, "eu-west-") {
			t.Fatalf("JSON line %q: %v", l, err)
		}
		sum += r.Instances
	}
	if sum != instances {
		t.Errorf("JSON adds up to %d; summary %d", sum, instances)
	}
	if !regexp.MustCompile(`^sequential=\d+\.\d+s fanout=\d+\.\d+s speedup=\d+\.\dx$`).MatchString(lines[len(lines)-2]) {
		t.Errorf("compare line %q", lines[len(lines)-2])
	}
}

var svgTitle = regexp.MustCompile(`fan-out timeline: (\d+) items, (\d+) failed, (\d+) attempts, (\d+) throttled, (\d+) retried`)

// timelineOf runs the command with -timeline and returns the SVG's
// numbers: its rows, throttle marks and limit lines, and its title's
// items, failed, attempts, throttled and retried.
func timelineOf(t *testing.T, args ...string) (rows, marks, limits int, title []int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run.svg")
	_, regions, _, failed := runRegions(t, append(args, "-timeline", path)...)
	if failed != 0 {
		t.Errorf("failed=%d; want none", failed)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	svg := string(b)
	m := svgTitle.FindStringSubmatch(svg)
	if m == nil {
		t.Fatalf("no title line in\n%s", svg)
	}
	for _, s := range m[1:] {
		n, _ := strconv.Atoi(s)
		title = append(title, n)
	}
	rows = strings.Count(svg, `<g class="row">`)
	if rows != regions || title[0] != regions {
		t.Errorf("%d rows and %d items drawn for %d regions", rows, title[0], regions)
	}
	return rows, strings.Count(svg, `class="attempt throttled"`), strings.Count(svg, `class="limit"`), title
}

func TestTimeline(t *testing.T) {
	_, marks, limits, title := timelineOf(t, "-sim-latency", "0.01", "-regions", "eu-*")
	if title[1] != 0 || title[2] < title[0] || title[3] != 0 || title[4] != 0 || marks != 0 || limits != 0 {
		t.Errorf("title %v, %d throttle marks, %d limit lines; want an attempt or more per item, no failure, throttle, retry or limit", title, marks, limits)
	}
}

// TestTimelineSimThrottle draws a throttled run, at round trips of a few
// milliseconds or more, as AWS's are, so that the limit's descent to the
// quota takes a few throttles and shows. (fanout's TestFirstCutAtAMillisecond
// holds the regime of -sim-latency 0.02.)
func TestTimelineSimThrottle(t *testing.T) {
	_, marks, limits, title := timelineOf(t, "-sim-latency", "0.2", "-sim-throttle", "2")
	if title[3] == 0 || marks != title[3] || title[4] < title[3] || limits == 0 {
		t.Errorf("title %v, %d throttle marks, %d limit lines; want throttles, each marked and retried, and the limits that dropped", title, marks, limits)
	}
}

func TestEndpointMoto(t *testing.T) {
	srv := mototest.Require(t)
	if err := srv.Reset(); err != nil {
		t.Fatal(err)
	}
	lines, regions, instances, failed := runRegions(t, "-endpoint", srv.URL, "-regions", "us-*")
	if lines[0] != "emulator: "+srv.URL || regions != 4 || instances != 0 || failed != 0 {
		t.Errorf("first line %q, regions=%d instances=%d failed=%d; want moto's 4 us regions, empty", lines[0], regions, instances, failed)
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-concurrency", "0"}, 2, "-concurrency is 0"},
		{[]string{"-aws", "-endpoint", "http://x"}, 2, "exclude each other"},
		{[]string{"-nope"}, 2, "not defined"},
		{[]string{"-sim-latency", "0", "-regions", "[eu"}, 1, `"[eu" is not a valid glob`},
		{[]string{"-sim-throttle", "-1"}, 2, "-sim-throttle is -1"},
		{[]string{"-sim-throttle", "NaN"}, 2, "-sim-throttle is NaN"},
		{[]string{"-sim-latency", "0", "-regions", "eu-west-1", "-timeline", "/nonexistent/run.svg"}, 1, "/nonexistent/run.svg"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
}
