package timeline

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/aws/smithy-go/metrics"
)

// Sample is one measurement of a synchronous instrument: a counter's or
// an up-down counter's Add, a gauge's Sample, a histogram's Record.
type Sample struct {
	// Scope is the scope of the meter that made the instrument.
	Scope string
	// Name and Unit are the instrument's.
	Name, Unit string
	// Instrument is the name of the Meter method that made the
	// instrument, such as "Int64Counter" or "Float64Gauge".
	Instrument string
	Time       time.Time
	// Value is the measurement; an int64 is converted, exactly up to
	// 2^53.
	Value float64
	// Properties are the measurement's, with keys formatted as for
	// RecordedSpan.Properties.
	Properties map[string]any
}

// Samples returns a copy of the measurements recorded so far, in the order
// they were made.
func (r *Recorder) Samples() []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.samples)
	for i := range out {
		out[i].Properties = maps.Clone(out[i].Properties)
	}
	return out
}

// Meter returns a meter whose synchronous instruments the Recorder keeps
// every measurement of. Its asynchronous instruments are valid but never
// call their callbacks: nothing reads them.
func (r *Recorder) Meter(scope string, _ ...metrics.MeterOption) metrics.Meter {
	return meter{r: r, scope: scope}
}

type meter struct {
	r     *Recorder
	scope string
}

var _ metrics.Meter = meter{}

func (m meter) Int64Counter(name string, opts ...metrics.InstrumentOption) (metrics.Int64Counter, error) {
	return newInstrument[int64](m, "Int64Counter", name, opts), nil
}

func (m meter) Int64UpDownCounter(name string, opts ...metrics.InstrumentOption) (metrics.Int64UpDownCounter, error) {
	return newInstrument[int64](m, "Int64UpDownCounter", name, opts), nil
}

func (m meter) Int64Gauge(name string, opts ...metrics.InstrumentOption) (metrics.Int64Gauge, error) {
	return newInstrument[int64](m, "Int64Gauge", name, opts), nil
}

func (m meter) Int64Histogram(name string, opts ...metrics.InstrumentOption) (metrics.Int64Histogram, error) {
	return newInstrument[int64](m, "Int64Histogram", name, opts), nil
}

func (m meter) Float64Counter(name string, opts ...metrics.InstrumentOption) (metrics.Float64Counter, error) {
	return newInstrument[float64](m, "Float64Counter", name, opts), nil
}

func (m meter) Float64UpDownCounter(name string, opts ...metrics.InstrumentOption) (metrics.Float64UpDownCounter, error) {
	return newInstrument[float64](m, "Float64UpDownCounter", name, opts), nil
}

func (m meter) Float64Gauge(name string, opts ...metrics.InstrumentOption) (metrics.Float64Gauge, error) {
	return newInstrument[float64](m, "Float64Gauge", name, opts), nil
}

func (m meter) Float64Histogram(name string, opts ...metrics.InstrumentOption) (metrics.Float64Histogram, error) {
	return newInstrument[float64](m, "Float64Histogram", name, opts), nil
}

func (meter) Int64AsyncCounter(string, metrics.Int64Callback, ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
	return unread{}, nil
}

func (meter) Int64AsyncUpDownCounter(string, metrics.Int64Callback, ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
	return unread{}, nil
}

func (meter) Int64AsyncGauge(string, metrics.Int64Callback, ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
	return unread{}, nil
}

func (meter) Float64AsyncCounter(string, metrics.Float64Callback, ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
	return unread{}, nil
}

func (meter) Float64AsyncUpDownCounter(string, metrics.Float64Callback, ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
	return unread{}, nil
}

func (meter) Float64AsyncGauge(string, metrics.Float64Callback, ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
	return unread{}, nil
}

// unread is an asynchronous instrument: the Recorder has no reader to call
// its callback.
type unread struct{}

func (unread) Stop() {}

// instrument is every synchronous instrument: the interfaces differ only
// in the name of the method that records.
type instrument[N int64 | float64] struct {
	r                       *Recorder
	scope, kind, name, unit string
}

func newInstrument[N int64 | float64](m meter, kind, name string, opts []metrics.InstrumentOption) instrument[N] {
	var o metrics.InstrumentOptions
	for _, fn := range opts {
		fn(&o)
	}
	return instrument[N]{r: m.r, scope: m.scope, kind: kind, name: name, unit: o.UnitLabel}
}

func (i instrument[N]) Add(_ context.Context, v N, opts ...metrics.RecordMetricOption) {
	i.record(v, opts)
}

func (i instrument[N]) Sample(_ context.Context, v N, opts ...metrics.RecordMetricOption) {
	i.record(v, opts)
}

func (i instrument[N]) Record(_ context.Context, v N, opts ...metrics.RecordMetricOption) {
	i.record(v, opts)
}

func (i instrument[N]) record(v N, opts []metrics.RecordMetricOption) {
	var o metrics.RecordMetricOptions
	for _, fn := range opts {
		fn(&o)
	}
	s := Sample{Scope: i.scope, Name: i.name, Unit: i.unit, Instrument: i.kind, Value: float64(v), Properties: props(&o.Properties)}
	i.r.mu.Lock()
	defer i.r.mu.Unlock()
	s.Time = i.r.now()
	i.r.samples = append(i.r.samples, s)
}
