package fanout

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"time"

	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"
)

// The names of the pool's instruments, one series per client (see the
// package documentation, Telemetry).
const (
	MetricClientLimit     = "fanout.client.limit"         // Float64Gauge: the adaptive limit, requests per round trip
	MetricClientThrottles = "fanout.client.throttles"     // Int64Counter: throttled attempts
	MetricClientBreaker   = "fanout.client.breaker.state" // Int64Gauge: 0 closed, 1 open, 2 half-open

	// On the SDK's "Attempt" span, by the pool's adaptive limit.
	AttrThrottled = "fanout.throttled" // true: the attempt was throttled
	AttrWait      = "fanout.wait"      // seconds the attempt waited for the limit before it was sent
)

// poolTel is a pool's telemetry: what PoolOptions gave, and the field
// setter that puts each client's providers in its service options.
type poolTel struct {
	tp            tracing.TracerProvider
	mp            metrics.MeterProvider
	log           *slog.Logger
	accountMetric bool
}

// clientTel is one client's: its providers, labelled with its region and
// account, and the pool's instruments for it. nil when the pool has none.
type clientTel struct {
	lb        labels
	spans     bool // the client makes spans: its attempts are annotated
	limit     metrics.Float64Gauge
	throttles metrics.Int64Counter
	breaker   metrics.Int64Gauge
	log       *slog.Logger
	name      string // the client, for records
}

// defaults returns o with the pool's telemetry where o has none.
func (pt *poolTel) defaults(o Options) Options {
	if pt == nil {
		return o
	}
	if o.TracerProvider == nil {
		o.TracerProvider = pt.tp
	}
	if o.MeterProvider == nil {
		o.MeterProvider = pt.mp
	}
	if o.Logger == nil {
		o.Logger = pt.log
	}
	return o
}

// providersSetter returns the function that sets a client's providers on
// its options, O, through their fields TracerProvider and MeterProvider,
// as every service client of the SDK has them; or an error naming a
// provider that O has no field for. It is nil when there is nothing to set.
func providersSetter[O any](tp tracing.TracerProvider, mp metrics.MeterProvider) (func(o *O, tp tracing.TracerProvider, mp metrics.MeterProvider), error) {
	if tp == nil && mp == nil {
		return nil, nil
	}
	var o O
	t := reflect.TypeOf(&o).Elem()
	find := func(name string, iface reflect.Type) (int, error) {
		if t.Kind() != reflect.Struct {
			return -1, fmt.Errorf("fanout: PoolOptions.%s is set, but the client options, %v, are not a struct with a %[1]s field", name, t)
		}
		f, ok := t.FieldByName(name)
		if !ok || f.Type != iface || len(f.Index) != 1 {
			return -1, fmt.Errorf("fanout: PoolOptions.%s is set, but the client options, %v, have no field %[1]s of type %v to set it on", name, t, iface)
		}
		return f.Index[0], nil
	}
	ti, mi := -1, -1
	var err error
	if tp != nil {
		if ti, err = find("TracerProvider", reflect.TypeFor[tracing.TracerProvider]()); err != nil {
			return nil, err
		}
	}
	if mp != nil {
		if mi, err = find("MeterProvider", reflect.TypeFor[metrics.MeterProvider]()); err != nil {
			return nil, err
		}
	}
	return func(o *O, tp tracing.TracerProvider, mp metrics.MeterProvider) {
		v := reflect.ValueOf(o).Elem()
		if ti >= 0 {
			v.Field(ti).Set(reflect.ValueOf(&tp).Elem())
		}
		if mi >= 0 {
			v.Field(mi).Set(reflect.ValueOf(&mp).Elem())
		}
	}, nil
}

// forClient returns the telemetry of the client t, and its providers,
// labelled with its region and account; nil and nil providers when the
// pool has none.
func (pt *poolTel) forClient(t acctRegion) (*clientTel, tracing.TracerProvider, metrics.MeterProvider) {
	if pt == nil {
		return nil, nil, nil
	}
	lb := labels{region: t.region, account: t.account, accountMetric: pt.accountMetric}
	ct := &clientTel{lb: lb, spans: pt.tp != nil, log: pt.log, name: t.String()}
	var tp tracing.TracerProvider
	var mp metrics.MeterProvider
	if pt.tp != nil {
		tp = labeledTracerProvider{pt.tp, lb}
	}
	if pt.mp != nil {
		mp = pt.mp
		if _, nop := mp.(metrics.NopMeterProvider); !nop { // the SDK skips its metrics for a nop provider
			mp = labeledMeterProvider{pt.mp, lb.record}
		}
		err := guard(func() {
			m := pt.mp.Meter(InstrumentationScope)
			ct.limit = instrument(m.Float64Gauge, nopMeter.Float64Gauge, MetricClientLimit, "{request}", "The client's adaptive limit, in requests per round trip (below 1: paced)")
			ct.throttles = instrument(m.Int64Counter, nopMeter.Int64Counter, MetricClientThrottles, "{attempt}", "The client's throttled attempts")
			ct.breaker = instrument(m.Int64Gauge, nopMeter.Int64Gauge, MetricClientBreaker, "{state}", "The client's breaker: 0 closed, 1 open, 2 half-open")
		})
		if err != nil { // the client goes without the pool's instruments: telemetry never fails a call
			ct.limit, ct.throttles, ct.breaker = nil, nil, nil
			warn(ct.log, context.Background(), "fanout: PoolOptions.MeterProvider panicked making the client's instruments; it goes without them",
				slog.String("error", err.Error()))
		}
	}
	return ct, tp, mp
}

// attempt records one attempt's end: a throttle counted and marked on the
// SDK's Attempt span, with the time the limit made it wait, and the
// limit sampled.
func (ct *clientTel) attempt(ctx context.Context, o attemptEnd, waited time.Duration, a *Adaptive) {
	if ct == nil {
		return
	}
	_ = guard(func() { // the caller's providers: a panic must not take the attempt's place with it
		rec := ct.lb.record
		if o == endThrottled && ct.throttles != nil {
			ct.throttles.Add(ctx, 1, rec)
		}
		if ct.limit != nil {
			if l := a.Stats().Limit; !math.IsInf(l, 0) {
				ct.limit.Sample(ctx, l, rec)
			}
		}
		if !ct.spans {
			return
		}
		span, ok := tracing.GetSpan(ctx)
		if !ok {
			return
		}
		if o == endThrottled {
			span.SetProperty(AttrThrottled, true)
		}
		if waited > 0 {
			span.SetProperty(AttrWait, waited.Seconds())
		}
	})
}

// breakerChanged samples the breaker's state, and warns when it opened.
func (ct *clientTel) breakerChanged(s BreakerState, cause error) {
	if ct == nil {
		return
	}
	_ = guard(func() {
		ctx := context.Background()
		if ct.breaker != nil {
			ct.breaker.Sample(ctx, int64(s), ct.lb.record)
		}
		if s == BreakerOpen && ct.log != nil {
			attrs := []slog.Attr{slog.String("client", ct.name)}
			if cause != nil {
				attrs = append(attrs, slog.String("cause", cause.Error()))
			}
			warn(ct.log, ctx, "fanout: breaker opened: the endpoint is unreachable, its calls fail at once until a probe gets an answer", attrs...)
		}
	})
}

// labeledTracerProvider adds a client's region and account to every span
// the SDK starts with it. It wraps tracers, never spans: an adapter such
// as smithyoteltracing looks for its own span type in the context.
type labeledTracerProvider struct {
	tp tracing.TracerProvider
	lb labels
}

func (p labeledTracerProvider) Tracer(scope string, opts ...tracing.TracerOption) tracing.Tracer {
	var t tracing.Tracer
	if guard(func() { t = p.tp.Tracer(scope, opts...) }) != nil || t == nil {
		return tracing.NopTracerProvider{}.Tracer(scope) // telemetry never fails a call
	}
	return labeledTracer{t, p.lb}
}

type labeledTracer struct {
	tracing.Tracer
	lb labels
}

// StartSpan starts the SDK's span from a clipped context (see clipCtx).
// A tracer that panics, or makes no span, makes none: telemetry never
// fails a call.
func (t labeledTracer) StartSpan(ctx context.Context, name string, opts ...tracing.SpanOption) (spanCtx context.Context, span tracing.Span) {
	defer func() {
		if recover() != nil || span == nil {
			spanCtx, span = tracing.NopTracerProvider{}.Tracer("").StartSpan(ctx, name)
		}
	}()
	return t.Tracer.StartSpan(clipCtx{ctx}, name, append(opts[:len(opts):len(opts)], func(o *tracing.SpanOptions) {
		t.lb.set(&o.Properties, true)
	})...)
}

// labeledMeterProvider adds a client's region (and account) to every
// measurement the SDK records with it.
type labeledMeterProvider struct {
	mp  metrics.MeterProvider
	add metrics.RecordMetricOption
}

func (p labeledMeterProvider) Meter(scope string, opts ...metrics.MeterOption) metrics.Meter {
	var m metrics.Meter
	if guard(func() { m = p.mp.Meter(scope, opts...) }) != nil || m == nil {
		return nopMeter // telemetry never fails a call
	}
	return labeledMeter{m, p.add}
}

type labeledMeter struct {
	m   metrics.Meter
	add metrics.RecordMetricOption
}

// with appends the labels to a measurement's options, without writing
// into the caller's slice.
func with(opts []metrics.RecordMetricOption, add metrics.RecordMetricOption) []metrics.RecordMetricOption {
	return append(opts[:len(opts):len(opts)], add)
}

type (
	adder[N int64 | float64] struct {
		i interface {
			Add(context.Context, N, ...metrics.RecordMetricOption)
		}
		add metrics.RecordMetricOption
	}
	sampler[N int64 | float64] struct {
		i interface {
			Sample(context.Context, N, ...metrics.RecordMetricOption)
		}
		add metrics.RecordMetricOption
	}
	recorder[N int64 | float64] struct {
		i interface {
			Record(context.Context, N, ...metrics.RecordMetricOption)
		}
		add metrics.RecordMetricOption
	}
	observer[N int64 | float64] struct {
		i interface {
			Observe(context.Context, N, ...metrics.RecordMetricOption)
		}
		add metrics.RecordMetricOption
	}
)

// The measurements of the SDK's, through the caller's instruments: a
// panic there is dropped, since telemetry never fails a call.

func (a adder[N]) Add(ctx context.Context, n N, opts ...metrics.RecordMetricOption) {
	defer dropPanic()
	a.i.Add(ctx, n, with(opts, a.add)...)
}

func (s sampler[N]) Sample(ctx context.Context, n N, opts ...metrics.RecordMetricOption) {
	defer dropPanic()
	s.i.Sample(ctx, n, with(opts, s.add)...)
}

func (r recorder[N]) Record(ctx context.Context, n N, opts ...metrics.RecordMetricOption) {
	defer dropPanic()
	r.i.Record(ctx, n, with(opts, r.add)...)
}

func (o observer[N]) Observe(ctx context.Context, n N, opts ...metrics.RecordMetricOption) {
	defer dropPanic()
	o.i.Observe(ctx, n, with(opts, o.add)...)
}

func dropPanic() { _ = recover() }

// wrap makes an instrument with mk and wraps it with w; one the caller's
// provider fails to make, by an error or a panic, is nop's: telemetry
// never fails a call, and the SDK fails its call on such an error.
func wrap[I any](name string, mk func() (I, error), w func(I) I, nop func(string, ...metrics.InstrumentOption) (I, error)) (I, error) {
	var (
		i   I
		err error
	)
	if guard(func() { i, err = mk() }) != nil || err != nil || any(i) == nil {
		return nop(name)
	}
	return w(i), nil
}

var nopMeter = metrics.NopMeterProvider{}.Meter("")

func same[I any](i I) I { return i }

func (m labeledMeter) Int64Counter(name string, opts ...metrics.InstrumentOption) (metrics.Int64Counter, error) {
	return wrap(name, func() (metrics.Int64Counter, error) { return m.m.Int64Counter(name, opts...) },
		func(i metrics.Int64Counter) metrics.Int64Counter { return adder[int64]{i, m.add} }, nopMeter.Int64Counter)
}

func (m labeledMeter) Int64UpDownCounter(name string, opts ...metrics.InstrumentOption) (metrics.Int64UpDownCounter, error) {
	return wrap(name, func() (metrics.Int64UpDownCounter, error) { return m.m.Int64UpDownCounter(name, opts...) },
		func(i metrics.Int64UpDownCounter) metrics.Int64UpDownCounter { return adder[int64]{i, m.add} }, nopMeter.Int64UpDownCounter)
}

func (m labeledMeter) Int64Gauge(name string, opts ...metrics.InstrumentOption) (metrics.Int64Gauge, error) {
	return wrap(name, func() (metrics.Int64Gauge, error) { return m.m.Int64Gauge(name, opts...) },
		func(i metrics.Int64Gauge) metrics.Int64Gauge { return sampler[int64]{i, m.add} }, nopMeter.Int64Gauge)
}

func (m labeledMeter) Int64Histogram(name string, opts ...metrics.InstrumentOption) (metrics.Int64Histogram, error) {
	return wrap(name, func() (metrics.Int64Histogram, error) { return m.m.Int64Histogram(name, opts...) },
		func(i metrics.Int64Histogram) metrics.Int64Histogram { return recorder[int64]{i, m.add} }, nopMeter.Int64Histogram)
}

func (m labeledMeter) Float64Counter(name string, opts ...metrics.InstrumentOption) (metrics.Float64Counter, error) {
	return wrap(name, func() (metrics.Float64Counter, error) { return m.m.Float64Counter(name, opts...) },
		func(i metrics.Float64Counter) metrics.Float64Counter { return adder[float64]{i, m.add} }, nopMeter.Float64Counter)
}

func (m labeledMeter) Float64UpDownCounter(name string, opts ...metrics.InstrumentOption) (metrics.Float64UpDownCounter, error) {
	return wrap(name, func() (metrics.Float64UpDownCounter, error) { return m.m.Float64UpDownCounter(name, opts...) },
		func(i metrics.Float64UpDownCounter) metrics.Float64UpDownCounter { return adder[float64]{i, m.add} }, nopMeter.Float64UpDownCounter)
}

func (m labeledMeter) Float64Gauge(name string, opts ...metrics.InstrumentOption) (metrics.Float64Gauge, error) {
	return wrap(name, func() (metrics.Float64Gauge, error) { return m.m.Float64Gauge(name, opts...) },
		func(i metrics.Float64Gauge) metrics.Float64Gauge { return sampler[float64]{i, m.add} }, nopMeter.Float64Gauge)
}

func (m labeledMeter) Float64Histogram(name string, opts ...metrics.InstrumentOption) (metrics.Float64Histogram, error) {
	return wrap(name, func() (metrics.Float64Histogram, error) { return m.m.Float64Histogram(name, opts...) },
		func(i metrics.Float64Histogram) metrics.Float64Histogram { return recorder[float64]{i, m.add} }, nopMeter.Float64Histogram)
}

func (m labeledMeter) Int64AsyncCounter(name string, cb metrics.Int64Callback, opts ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
	return wrap(name, func() (metrics.AsyncInstrument, error) { return m.m.Int64AsyncCounter(name, m.int64s(cb), opts...) },
		same, func(n string, o ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
			return nopMeter.Int64AsyncCounter(n, nil, o...)
		})
}

func (m labeledMeter) Int64AsyncUpDownCounter(name string, cb metrics.Int64Callback, opts ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
	return wrap(name, func() (metrics.AsyncInstrument, error) {
		return m.m.Int64AsyncUpDownCounter(name, m.int64s(cb), opts...)
	},
		same, func(n string, o ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
			return nopMeter.Int64AsyncUpDownCounter(n, nil, o...)
		})
}

func (m labeledMeter) Int64AsyncGauge(name string, cb metrics.Int64Callback, opts ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
	return wrap(name, func() (metrics.AsyncInstrument, error) { return m.m.Int64AsyncGauge(name, m.int64s(cb), opts...) },
		same, func(n string, o ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
			return nopMeter.Int64AsyncGauge(n, nil, o...)
		})
}

func (m labeledMeter) Float64AsyncCounter(name string, cb metrics.Float64Callback, opts ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
	return wrap(name, func() (metrics.AsyncInstrument, error) { return m.m.Float64AsyncCounter(name, m.float64s(cb), opts...) },
		same, func(n string, o ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
			return nopMeter.Float64AsyncCounter(n, nil, o...)
		})
}

func (m labeledMeter) Float64AsyncUpDownCounter(name string, cb metrics.Float64Callback, opts ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
	return wrap(name, func() (metrics.AsyncInstrument, error) {
		return m.m.Float64AsyncUpDownCounter(name, m.float64s(cb), opts...)
	},
		same, func(n string, o ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
			return nopMeter.Float64AsyncUpDownCounter(n, nil, o...)
		})
}

func (m labeledMeter) Float64AsyncGauge(name string, cb metrics.Float64Callback, opts ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
	return wrap(name, func() (metrics.AsyncInstrument, error) { return m.m.Float64AsyncGauge(name, m.float64s(cb), opts...) },
		same, func(n string, o ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
			return nopMeter.Float64AsyncGauge(n, nil, o...)
		})
}

func (m labeledMeter) int64s(cb metrics.Int64Callback) metrics.Int64Callback {
	if cb == nil {
		return nil
	}
	return func(ctx context.Context, o metrics.Int64Observer) { cb(ctx, observer[int64]{o, m.add}) }
}

func (m labeledMeter) float64s(cb metrics.Float64Callback) metrics.Float64Callback {
	if cb == nil {
		return nil
	}
	return func(ctx context.Context, o metrics.Float64Observer) { cb(ctx, observer[float64]{o, m.add}) }
}
