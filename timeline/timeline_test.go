package timeline

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go/tracing"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a Recorder's clock that a test sets; the Recorder reads it
// under its lock, so a test that sets it from one goroutine needs none.
type fakeClock struct{ base, t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// at sets the clock to d after its start.
func (c *fakeClock) at(d time.Duration) { c.t = c.base.Add(d) }

func newFake() (*Recorder, *fakeClock) {
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c := &fakeClock{base: base, t: base}
	r := New()
	r.now = c.now
	return r, c
}

func withProps(kv ...any) tracing.SpanOption {
	return func(o *tracing.SpanOptions) {
		for i := 0; i+1 < len(kv); i += 2 {
			o.Properties.Set(kv[i], kv[i+1])
		}
	}
}

func TestNesting(t *testing.T) {
	r, _ := newFake()
	lib, sdk := r.Tracer("github.com/awsfanout/fanout"), r.Tracer("github.com/aws/aws-sdk-go-v2/service/ec2")
	ctx, call := lib.StartSpan(context.Background(), "fanout.call")
	ctx, item := lib.StartSpan(ctx, "fanout.item")
	opCtx, op := sdk.StartSpan(ctx, "EC2.DescribeInstances", func(o *tracing.SpanOptions) { o.Kind = tracing.SpanKindClient })
	_, attempt := sdk.StartSpan(opCtx, "Attempt")
	if got, _ := tracing.GetSpan(opCtx); got != op {
		t.Errorf("the context StartSpan returned carries %v, not the span it started", got)
	}
	other := New().Tracer("another provider")
	foreignCtx, _ := other.StartSpan(ctx, "foreign")
	_, orphan := lib.StartSpan(foreignCtx, "under a foreign span")
	_, root := lib.StartSpan(context.Background(), "root")
	for _, s := range []tracing.Span{attempt, op, item, call, orphan, root} {
		s.End()
	}

	want := map[string]string{
		"fanout.call": "", "fanout.item": "fanout.call", "EC2.DescribeInstances": "fanout.item",
		"Attempt": "EC2.DescribeInstances", "under a foreign span": "", "root": "",
	}
	spans := r.Spans()
	if len(spans) != len(want) {
		t.Fatalf("%d spans recorded; want %d (the foreign provider's not among them)", len(spans), len(want))
	}
	for i, s := range spans {
		parent := ""
		if s.Parent != 0 {
			parent = spans[s.Parent-1].Name
		}
		if s.ID != i+1 || parent != want[s.Name] {
			t.Errorf("span %d %q: ID %d, parent %q; want ID %d, parent %q", i, s.Name, s.ID, parent, i+1, want[s.Name])
		}
	}
	if spans[2].Kind != tracing.SpanKindClient || spans[2].Scope != "github.com/aws/aws-sdk-go-v2/service/ec2" {
		t.Errorf("operation span kind %v scope %q", spans[2].Kind, spans[2].Scope)
	}
}

func TestSpanRecord(t *testing.T) {
	r, clk := newFake()
	type notString struct{ n int }
	var none context.Context // a nil ctx must not panic
	ctx, s := r.Tracer("scope").StartSpan(none, "fanout.item", withProps("fanout.key", "<a&b>", notString{7}, 1))
	if ctx == nil {
		t.Fatal("nil ctx back")
	}
	clk.at(100 * time.Millisecond)
	s.AddEvent("fanout.started", func(o *tracing.EventOptions) { o.Properties.Set("why", "units") })
	s.SetProperty("fanout.outcome", "ok")
	s.SetStatus(tracing.SpanStatusOK)
	clk.at(300 * time.Millisecond)
	s.End()
	clk.at(time.Second)
	s.End() // the first End counts
	s.AddEvent("late")

	got := r.Spans()[0]
	switch {
	case got.Name != "fanout.item" || s.Name() != "fanout.item":
		t.Errorf("name %q, Name() %q", got.Name, s.Name())
	case got.Start != clk.base || got.End != clk.base.Add(300*time.Millisecond):
		t.Errorf("start %v end %v; want the clock's at StartSpan and at the first End", got.Start, got.End)
	case got.Properties["fanout.key"] != "<a&b>" || got.Properties["{7}"] != 1 || got.Properties["fanout.outcome"] != "ok":
		t.Errorf("properties %v", got.Properties)
	case len(got.Events) != 2 || got.Events[0].Name != "fanout.started" || got.Events[0].Time != clk.base.Add(100*time.Millisecond) || got.Events[0].Properties["why"] != "units":
		t.Errorf("events %+v", got.Events)
	case got.Status != tracing.SpanStatusOK:
		t.Errorf("status %v", got.Status)
	}
	sc := s.Context()
	if !sc.IsValid() {
		t.Errorf("span context %+v is not valid", sc)
	}

	got.Properties["fanout.key"] = "changed"
	got.Events[0].Name = "changed"
	if again := r.Spans()[0]; again.Properties["fanout.key"] != "<a&b>" || again.Events[0].Name != "fanout.started" {
		t.Error("changing what Spans returned changed the Recorder")
	}
}

// TestConcurrent records from many goroutines at once, for the race
// detector, with the wall clock.
func TestConcurrent(t *testing.T) {
	r := New()
	tr := r.Tracer("scope")
	g, _ := r.Meter("scope").Float64Gauge("fanout.client.limit")
	ctx, call := tr.StartSpan(context.Background(), "fanout.call")
	var wg sync.WaitGroup
	wg.Add(51)
	for range 50 {
		go func() {
			defer wg.Done()
			ctx, s := tr.StartSpan(ctx, "fanout.item")
			s.AddEvent("fanout.started")
			_, a := tr.StartSpan(ctx, "Attempt")
			a.SetProperty("fanout.throttled", true)
			g.Sample(ctx, 1.5)
			a.End()
			s.End()
			_ = r.Spans()
		}()
	}
	go func() {
		defer wg.Done()
		_ = r.WriteSVG(discard{})
	}()
	wg.Wait()
	call.End()
	if n, m := len(r.Spans()), len(r.Samples()); n != 101 || m != 50 {
		t.Errorf("%d spans and %d samples; want 101 and 50", n, m)
	}
	for _, s := range r.Spans() {
		if s.Name == "Attempt" && r.Spans()[s.Parent-1].Name != "fanout.item" {
			t.Errorf("attempt %d nests in %d", s.ID, s.Parent)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
