package timeline

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"
)

var update = flag.Bool("update", false, "rewrite testdata/waterfall.svg")

// fakeRun records spans and samples as the fanout package, its pool and
// the SDK would, at the times a test gives.
type fakeRun struct {
	r        *Recorder
	clk      *fakeClock
	lib, sdk tracing.Tracer
	limit    metrics.Float64Gauge
}

func newFakeRun() *fakeRun {
	r, clk := newFake()
	g, _ := r.Meter("github.com/awsfanout/fanout").Float64Gauge(limitGauge)
	return &fakeRun{r: r, clk: clk, lib: r.Tracer("github.com/awsfanout/fanout"), sdk: r.Tracer("github.com/aws/aws-sdk-go-v2/service/ec2"), limit: g}
}

type fakeItem struct {
	key, region, account, outcome string
	from, started, to             time.Duration // started < 0: it never started
	attempts                      []fakeAttempt
}

type fakeAttempt struct {
	from, to  time.Duration
	throttled bool
	wait      time.Duration // held by the adaptive limit
	limit     float64       // sampled at the attempt's end, when above 0
}

func (f *fakeRun) item(ctx context.Context, it fakeItem) {
	f.clk.at(it.from)
	kv := []any{propKey, it.key, "fanout.index", 0}
	if it.region != "" {
		kv = append(kv, propRegion, it.region)
	}
	if it.account != "" {
		kv = append(kv, propAccount, it.account)
	}
	ctx, s := f.lib.StartSpan(ctx, itemSpan, withProps(kv...))
	if it.started >= 0 {
		f.clk.at(it.started)
		s.AddEvent(startedEvent)
	}
	if len(it.attempts) > 0 {
		f.call(ctx, it.region, it.account, it.attempts)
	}
	f.clk.at(it.to)
	s.SetProperty(propOutcome, it.outcome)
	if it.outcome == "ok" || it.outcome == "skipped" {
		s.SetStatus(tracing.SpanStatusOK)
	} else {
		s.SetStatus(tracing.SpanStatusError)
	}
	s.End()
}

// call records one SDK call: the operation, its retry loop, its attempts,
// each with its HTTP request, and the pool's annotations and samples.
func (f *fakeRun) call(ctx context.Context, region, account string, attempts []fakeAttempt) {
	f.clk.at(attempts[0].from)
	ctx, op := f.sdk.StartSpan(ctx, "EC2.DescribeInstances", func(o *tracing.SpanOptions) { o.Kind = tracing.SpanKindClient })
	ctx, loop := f.sdk.StartSpan(ctx, "RetryLoop")
	for i, a := range attempts {
		f.clk.at(a.from)
		actx, as := f.sdk.StartSpan(ctx, attemptSpan, withProps(propAttempt, i+1, propRegion, region))
		inner, _ := tracing.GetSpan(actx) // the retryer annotates the innermost span
		if a.wait > 0 {
			inner.SetProperty(propWait, a.wait.Seconds())
		}
		f.clk.at(a.from + a.wait)
		_, h := f.sdk.StartSpan(actx, "DoHTTPRequest")
		f.clk.at(a.to)
		h.End()
		if a.throttled {
			inner.SetProperty(propThrottled, true)
		}
		if a.limit > 0 {
			f.sample(region, account, a.limit)
		}
		as.End()
	}
	loop.End()
	op.End()
}

func (f *fakeRun) sample(region, account string, v float64) {
	f.limit.Sample(context.Background(), v, func(o *metrics.RecordMetricOptions) {
		o.Properties.Set(propRegion, region)
		if account != "" {
			o.Properties.Set(propAccount, account)
		}
	})
}

const ms = time.Millisecond

// recordRun records a small run: a listing before the fan-out, an item
// that runs at once, one that waits for the limit and is throttled, one
// in another account throttled twice, one outside the AWS layer that
// fails, one that never starts.
func recordRun() *Recorder {
	f := newFakeRun()
	f.clk.at(-100 * ms)
	f.call(context.Background(), "us-east-1", "", []fakeAttempt{{from: -100 * ms, to: -50 * ms}})

	f.clk.at(0)
	ctx, call := f.lib.StartSpan(context.Background(), "fanout.call", withProps("fanout.call.items", 5, "fanout.call.limit", int64(2)))
	f.item(ctx, fakeItem{key: "us-east-1", region: "us-east-1", outcome: "ok", from: 0, started: 0, to: 250 * ms,
		attempts: []fakeAttempt{{from: 10 * ms, to: 200 * ms, wait: 2 * time.Microsecond}}}) // the limit's bookkeeping, not a wait
	f.item(ctx, fakeItem{key: "eu-west-1", region: "eu-west-1", outcome: "ok", from: 0, started: 300 * ms, to: 850 * ms,
		attempts: []fakeAttempt{
			{from: 300 * ms, to: 400 * ms, throttled: true, limit: 4},
			{from: 500 * ms, to: 800 * ms, wait: 100 * ms, limit: 2},
		}})
	f.item(ctx, fakeItem{key: "ap-south-1", region: "ap-south-1", outcome: "not_started", from: 20 * ms, started: -1, to: 300 * ms})
	f.item(ctx, fakeItem{key: "111122223333/eu-west-1", region: "eu-west-1", account: "111122223333", outcome: "ok", from: 50 * ms, started: 50 * ms, to: 1200 * ms,
		attempts: []fakeAttempt{
			{from: 60 * ms, to: 500 * ms, throttled: true, limit: 1},
			{from: 600 * ms, to: 900 * ms, throttled: true, limit: 0.5},
			{from: 1000 * ms, to: 1200 * ms, limit: 0.75},
		}})
	f.item(ctx, fakeItem{key: "<a&b>", outcome: "error", from: 100 * ms, started: 100 * ms, to: 200 * ms})
	f.clk.at(900 * ms)
	f.sample("eu-west-1", "123456789012", 3) // the pool's own account, named with AccountAttribute
	f.clk.at(1200 * ms)
	call.End()
	return f.r
}

func svgOf(t *testing.T, r *Recorder) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v\n%s", err, b.String())
		}
	}
	return b.String()
}

var rowLabelRE = regexp.MustCompile(`<g class="row">(?:<rect [^>]*/>)?<text [^>]*>([^<]*)<title>`)

func TestWriteSVG(t *testing.T) {
	svg := svgOf(t, recordRun())
	var labels []string
	for _, m := range rowLabelRE.FindAllStringSubmatch(svg, -1) {
		labels = append(labels, m[1])
	}
	if got, want := strings.Join(labels, " | "), "us-east-1 | eu-west-1 | ap-south-1 | 111122223333/eu-west-1 | &lt;a&amp;b&gt;"; got != want {
		t.Errorf("rows %s; want %s, in order of first start", got, want)
	}
	for mark, want := range map[string]int{
		`<g class="row">`:                        5,
		`class="item"`:                           3,
		`class="item failed"`:                    2, // <a&b> failed, ap-south-1 never started
		`class="wait"`:                           2, // eu-west-1 waited for the limit, ap-south-1 never stopped waiting
		`class="attempt"`:                        4,
		`class="attempt throttled"`:              3,
		`class="retry"`:                          3,
		`class="paced"`:                          1, // not us-east-1's 2µs
		`class="limit"`:                          2,
		`class="legend"`:                         8,
		`adaptive limit of eu-west-1: 3 samples`: 1, // with the own account's sample
		`adaptive limit of 111122223333/eu-west-1: 3 samples, lowest 0.5, last 0.75`: 1,
	} {
		if got := strings.Count(svg, mark); got != want {
			t.Errorf("%d of %s; want %d", got, mark, want)
		}
	}
	if title := "5 items, 2 failed, 7 attempts, 3 throttled, 3 retried, wall 1.300s"; !strings.Contains(svg, title) {
		t.Errorf("no title line with %q", title)
	}
	if strings.Contains(svg, "<a&b>") {
		t.Error("the key <a&b> is not escaped")
	}
}

func TestGolden(t *testing.T) {
	got := svgOf(t, recordRun())
	const path = "testdata/waterfall.svg"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err, "(go test -update writes it)")
	}
	if got != string(want) {
		t.Errorf("the SVG differs from %s (go test -update rewrites it after a deliberate change):\n%s", path, got)
	}
	if again := svgOf(t, recordRun()); again != got {
		t.Error("two recordings of the same run draw differently")
	}
}

func TestLanes(t *testing.T) {
	f := newFakeRun()
	ctx := context.Background()
	for _, it := range []fakeItem{
		{key: "a", region: "eu-west-1", from: 0, started: 0, to: 300 * ms},
		{key: "b", region: "eu-west-1", from: 100 * ms, started: 100 * ms, to: 200 * ms},
		{key: "c", region: "eu-west-1", from: 300 * ms, started: 300 * ms, to: 400 * ms}, // a has ended
		{key: "d", region: "eu-west-1", from: 150 * ms, started: 150 * ms, to: 350 * ms},
	} {
		it.outcome = "ok"
		f.item(ctx, it)
	}
	wf := newWaterfall(f.r.Spans(), f.r.Samples())
	if len(wf.rows) != 1 || wf.rows[0].lanes != 3 {
		t.Fatalf("%d rows, %d lanes; want 1 row of 3 lanes", len(wf.rows), wf.rows[0].lanes)
	}
	lanes := map[string]int{}
	for _, b := range wf.rows[0].bars {
		lanes[b.key] = b.lane
	}
	if lanes["a"] != 0 || lanes["b"] != 1 || lanes["d"] != 2 || lanes["c"] != 0 {
		t.Errorf("lanes %v; want a and c in 0, b in 1, d in 2", lanes)
	}
}

func TestUnfinished(t *testing.T) {
	r, clk := newFake()
	_, s := r.Tracer("scope").StartSpan(context.Background(), itemSpan, withProps(propKey, "k"))
	clk.at(2 * time.Second)
	s.AddEvent(startedEvent)
	wf := newWaterfall(r.Spans(), nil)
	if b := wf.rows[0].bars[0]; !b.end.Equal(clk.t) {
		t.Errorf("a running item ends at %v; want the last time recorded, %v", b.end, clk.t)
	}
	svgOf(t, r)
}

func TestEmpty(t *testing.T) {
	svg := svgOf(t, New())
	if !strings.Contains(svg, "nothing recorded") || !strings.Contains(svg, "0 items") {
		t.Errorf("an empty recording draws\n%s", svg)
	}
}

type failingWriter struct{}

var errWrite = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestWriteError(t *testing.T) {
	if err := recordRun().WriteSVG(failingWriter{}); !errors.Is(err, errWrite) {
		t.Errorf("WriteSVG returned %v; want the writer's error", err)
	}
}
