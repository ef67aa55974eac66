// Package timeline records what a fan-out does and draws it as a
// waterfall.
//
// A [Recorder] is both a [tracing.TracerProvider] and a
// [metrics.MeterProvider], the interfaces through which the fanout package
// and the aws-sdk-go-v2 clients report their spans and measurements. Make
// it the providers of a ClientPool (Regions and AccountRegions use the
// pool's; a plain Fanout.Run needs them in its Options), run the fan-out,
// and [Recorder.WriteSVG] draws one row per region: each item's wait for the
// limit and its run, each SDK attempt inside it, the throttled attempts
// and the retries, the time the adaptive limit held an attempt, and the
// adaptive limit itself over time.
//
//	rec := timeline.New()
//	pool, err := fanout.NewClientPool(cfg, ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) {
//		o.TracerProvider, o.MeterProvider = rec, rec
//	})
//	...
//	results, err := fanout.Regions(ctx, fanout.New[int](), pool, regions, countInstances)
//	...
//	err = rec.WriteSVG(file)
//
// [Recorder.Spans] and [Recorder.Samples] return what was recorded, for
// a test to assert on or another rendering to draw.
//
// A Recorder is safe for concurrent use. It keeps everything it is given
// for as long as it lives: every span with its properties and events, and
// every measurement of a synchronous instrument. Nothing is dropped or
// aggregated, so memory grows with the run: an SDK attempt through a pool
// client leaves about ten spans and fifteen measurements, some 11 KB.
// Record one run, write it out, and let the Recorder go.
package timeline

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"
)

// Recorder records spans and measurements in memory. The zero Recorder is
// not ready to use; call New.
type Recorder struct {
	now func() time.Time // the clock seam: tests set it before recording

	mu      sync.Mutex
	spans   []*span
	samples []Sample
}

var (
	_ tracing.TracerProvider = (*Recorder)(nil)
	_ metrics.MeterProvider  = (*Recorder)(nil)
)

// New returns an empty Recorder that reads the wall clock.
func New() *Recorder { return &Recorder{now: time.Now} }

// RecordedSpan is a span as a Recorder saw it.
type RecordedSpan struct {
	// ID is the span's number: 1 for the first span the Recorder
	// started, and so on.
	ID int
	// Parent is the ID of the span this one nests in: the span that
	// tracing.GetSpan found on the context it was started with. 0 means
	// none, or a span of another provider.
	Parent int
	// Scope is the scope of the tracer that started it, such as
	// "github.com/awsfanout/fanout" or an SDK service's package path.
	Scope string
	Name  string
	Kind  tracing.SpanKind
	Start time.Time
	// End is zero while the span has not ended.
	End    time.Time
	Status tracing.SpanStatus
	// Properties are the span's properties, from its start options and
	// SetProperty. A key that is not a string is formatted with %v.
	Properties map[string]any
	Events     []Event
}

// Event is a span event: a named moment in a span.
type Event struct {
	Name       string
	Time       time.Time
	Properties map[string]any
}

// Spans returns a copy of the spans recorded so far, in the order they
// were started.
func (r *Recorder) Spans() []RecordedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RecordedSpan, len(r.spans))
	for i, s := range r.spans {
		out[i] = s.rec
		out[i].Properties = maps.Clone(s.rec.Properties)
		out[i].Events = slices.Clone(s.rec.Events)
	}
	return out
}

// Tracer returns a tracer whose spans the Recorder keeps. The tracer
// options' properties are not recorded.
func (r *Recorder) Tracer(scope string, _ ...tracing.TracerOption) tracing.Tracer {
	return tracer{r: r, scope: scope}
}

type tracer struct {
	r     *Recorder
	scope string
}

// StartSpan starts a span, nested in the Recorder's own span on ctx if
// there is one, and returns ctx carrying the new span, so that the spans
// started from it nest in turn.
func (t tracer) StartSpan(ctx context.Context, name string, opts ...tracing.SpanOption) (context.Context, tracing.Span) {
	if ctx == nil {
		ctx = context.Background()
	}
	var o tracing.SpanOptions
	for _, fn := range opts {
		fn(&o)
	}
	s := &span{r: t.r}
	s.rec = RecordedSpan{Scope: t.scope, Name: name, Kind: o.Kind, Properties: props(&o.Properties)}
	if p, ok := tracing.GetSpan(ctx); ok {
		if p, ok := p.(*span); ok && p.r == t.r {
			s.rec.Parent = p.rec.ID
		}
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	t.r.spans = append(t.r.spans, s)
	s.rec.ID = len(t.r.spans)
	s.rec.Start = t.r.now()
	return tracing.WithSpan(ctx, s), s
}

// span is the Recorder's tracing.Span. Its fields after r are guarded by
// r.mu.
type span struct {
	r   *Recorder
	rec RecordedSpan
}

var _ tracing.Span = (*span)(nil)

func (s *span) Name() string { return s.rec.Name } // set before the span is shared, never changed

// Context identifies the span by its Recorder-wide ID; the trace is the
// Recorder.
func (s *span) Context() tracing.SpanContext {
	return tracing.SpanContext{TraceID: fmt.Sprintf("%032x", 1), SpanID: fmt.Sprintf("%016x", s.rec.ID)}
}

func (s *span) AddEvent(name string, opts ...tracing.EventOption) {
	var o tracing.EventOptions
	for _, fn := range opts {
		fn(&o)
	}
	p := props(&o.Properties)
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.rec.Events = append(s.rec.Events, Event{Name: name, Time: s.r.now(), Properties: p})
}

func (s *span) SetStatus(status tracing.SpanStatus) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.rec.Status = status
}

func (s *span) SetProperty(k, v any) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.rec.Properties == nil {
		s.rec.Properties = map[string]any{}
	}
	s.rec.Properties[key(k)] = v
}

// End records the end of the span; a second End keeps the first one's
// time.
func (s *span) End() {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.rec.End.IsZero() {
		s.rec.End = s.r.now()
	}
}

// props copies smithy properties into a map with string keys; nil when
// there are none.
func props(p *smithy.Properties) map[string]any {
	vs := p.Values()
	if len(vs) == 0 {
		return nil
	}
	out := make(map[string]any, len(vs))
	for k, v := range vs {
		out[key(k)] = v
	}
	return out
}

func key(k any) string {
	if s, ok := k.(string); ok {
		return s
	}
	return fmt.Sprintf("%v", k)
}
