package fanout_test

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"
)

// memTel is an in-memory TracerProvider and MeterProvider, as an exporter
// would see them: spans with their parents and properties, and every
// measurement with its properties.
type memTel struct {
	mu       sync.Mutex
	spans    []*memSpan
	measures []measure
}

type measure struct {
	name  string
	value float64
	props map[any]any
}

type memSpan struct {
	t      *memTel
	id     int
	name   string
	parent *memSpan
	scope  string

	mu     sync.Mutex
	props  map[any]any
	events []string
	status tracing.SpanStatus
	ended  bool
}

func (t *memTel) Tracer(scope string, _ ...tracing.TracerOption) tracing.Tracer {
	return memTracer{t, scope}
}

type memTracer struct {
	t     *memTel
	scope string
}

func (tr memTracer) StartSpan(ctx context.Context, name string, opts ...tracing.SpanOption) (context.Context, tracing.Span) {
	var o tracing.SpanOptions
	for _, fn := range opts {
		fn(&o)
	}
	s := &memSpan{t: tr.t, name: name, scope: tr.scope, props: o.Properties.Values()}
	if s.props == nil {
		s.props = map[any]any{}
	}
	if p, ok := tracing.GetSpan(ctx); ok {
		s.parent, _ = p.(*memSpan)
	}
	tr.t.mu.Lock()
	s.id = len(tr.t.spans)
	tr.t.spans = append(tr.t.spans, s)
	tr.t.mu.Unlock()
	return tracing.WithSpan(ctx, s), s
}

func (s *memSpan) Name() string { return s.name }
func (s *memSpan) Context() tracing.SpanContext {
	return tracing.SpanContext{TraceID: "t", SpanID: fmt.Sprint(s.id)}
}
func (s *memSpan) AddEvent(name string, _ ...tracing.EventOption) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, name)
}
func (s *memSpan) SetStatus(st tracing.SpanStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = st
}
func (s *memSpan) SetProperty(k, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.props[k] = v
}
func (s *memSpan) End() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
}
func (s *memSpan) prop(k string) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.props[k]
}

// named returns the spans called name, in the order they started.
func (t *memTel) named(name string) []*memSpan {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*memSpan
	for _, s := range t.spans {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

// sum adds up the measurements called name whose properties include
// where's, and counts them.
func (t *memTel) sum(name string, where map[string]any) (total float64, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.measures {
		if m.name != name || !includes(m.props, where) {
			continue
		}
		total += m.value
		n++
	}
	return total, n
}

// values lists the distinct values of the property key among the
// measurements called name.
func (t *memTel) values(name, key string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := map[string]bool{}
	for _, m := range t.measures {
		if v, ok := m.props[key]; ok && m.name == name {
			seen[fmt.Sprint(v)] = true
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

func includes(props map[any]any, where map[string]any) bool {
	for k, v := range where {
		if props[k] != v {
			return false
		}
	}
	return true
}

func (t *memTel) record(name string, v float64, opts []metrics.RecordMetricOption) {
	var o metrics.RecordMetricOptions
	for _, fn := range opts {
		fn(&o)
	}
	props := o.Properties.Values()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.measures = append(t.measures, measure{name, v, props})
}

func (t *memTel) Meter(string, ...metrics.MeterOption) metrics.Meter { return memMeter{t: t} }

type memMeter struct {
	metrics.Meter // the asynchronous instruments, which no test here uses: nil, so a call fails the test loudly
	t             *memTel
}

type memInstr struct {
	t    *memTel
	name string
}

func (i memInstr) Add(_ context.Context, v int64, o ...metrics.RecordMetricOption) {
	i.t.record(i.name, float64(v), o)
}
func (i memInstr) Sample(_ context.Context, v int64, o ...metrics.RecordMetricOption) {
	i.t.record(i.name, float64(v), o)
}
func (i memInstr) Record(_ context.Context, v int64, o ...metrics.RecordMetricOption) {
	i.t.record(i.name, float64(v), o)
}

type memFloat memInstr

func (i memFloat) Add(_ context.Context, v float64, o ...metrics.RecordMetricOption) {
	i.t.record(i.name, v, o)
}
func (i memFloat) Sample(_ context.Context, v float64, o ...metrics.RecordMetricOption) {
	i.t.record(i.name, v, o)
}
func (i memFloat) Record(_ context.Context, v float64, o ...metrics.RecordMetricOption) {
	i.t.record(i.name, v, o)
}

func (m memMeter) Int64Counter(n string, _ ...metrics.InstrumentOption) (metrics.Int64Counter, error) {
	return memInstr{m.t, n}, nil
}
func (m memMeter) Int64UpDownCounter(n string, _ ...metrics.InstrumentOption) (metrics.Int64UpDownCounter, error) {
	return memInstr{m.t, n}, nil
}
func (m memMeter) Int64Gauge(n string, _ ...metrics.InstrumentOption) (metrics.Int64Gauge, error) {
	return memInstr{m.t, n}, nil
}
func (m memMeter) Int64Histogram(n string, _ ...metrics.InstrumentOption) (metrics.Int64Histogram, error) {
	return memInstr{m.t, n}, nil
}
func (m memMeter) Float64Counter(n string, _ ...metrics.InstrumentOption) (metrics.Float64Counter, error) {
	return memFloat{m.t, n}, nil
}
func (m memMeter) Float64UpDownCounter(n string, _ ...metrics.InstrumentOption) (metrics.Float64UpDownCounter, error) {
	return memFloat{m.t, n}, nil
}
func (m memMeter) Float64Gauge(n string, _ ...metrics.InstrumentOption) (metrics.Float64Gauge, error) {
	return memFloat{m.t, n}, nil
}
func (m memMeter) Float64Histogram(n string, _ ...metrics.InstrumentOption) (metrics.Float64Histogram, error) {
	return memFloat{m.t, n}, nil
}
