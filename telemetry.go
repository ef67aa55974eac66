package fanout

import (
	"context"
	"log/slog"
	"runtime/trace"
	"sync/atomic"
	"time"

	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"
)

// The names of the library's telemetry, in the SDK's style (see the
// package documentation, Telemetry).
const (
	// InstrumentationScope names the library to its tracers and
	// meters.
	InstrumentationScope = "github.com/awsfanout/fanout"

	SpanCall = "fanout.call" // one per call
	SpanItem = "fanout.item" // one per item, under its call's

	// SpanAccountRegions is one AccountRegions call: its roles assumed
	// ahead of the items and its calls (RegionsOf's, and the items') under
	// it, in one trace.
	SpanAccountRegions = "fanout.account_regions"

	// EventStarted marks, on an item's span, the moment it got its units
	// and its operation began: what comes before is its wait.
	EventStarted = "fanout.started"

	MetricItemsDone    = "fanout.items.done"         // Int64Counter: items by outcome
	MetricItemDuration = "fanout.item.duration"      // Float64Histogram, s: an item's Elapsed, by outcome
	MetricItemWait     = "fanout.item.wait_duration" // Float64Histogram, s: from claimed to holding its units
	MetricInFlight     = "fanout.items.in_flight"    // Int64UpDownCounter: items running

	AttrKey        = "fanout.key"
	AttrIndex      = "fanout.index"
	AttrOutcome    = "fanout.outcome"
	AttrCallItems  = "fanout.call.items"
	AttrCallLimit  = "fanout.call.limit"
	AttrCallFailed = "fanout.call.failed"
	AttrAccounts   = "fanout.accounts"  // on SpanAccountRegions: the accounts asked for
	AttrRegion     = "cloud.region"     // OpenTelemetry's name
	AttrAccountID  = "cloud.account.id" // OpenTelemetry's name
)

// The outcomes of an item (AttrOutcome), one per item: the items counted
// by outcome are the call's results.
const (
	OutcomeOK         = "ok"
	OutcomeError      = "error"
	OutcomeSkipped    = "skipped"
	OutcomeNotStarted = "not_started"
	OutcomePanic      = "panic"
)

// itemOutcome names how an item ended, from its final result: not
// started, or a panic, wherever it is in the error's chain (an OnDone's
// panic joined to the op's error, the rest of a sequence not pulled).
func itemOutcome[T any](res *Result[T]) string {
	if res.Err == nil {
		if res.Skipped != nil {
			return OutcomeSkipped
		}
		return OutcomeOK
	}
	var (
		ns *notStartedError
		pe *PanicError
	)
	switch {
	case asSafely(res.Err, &ns):
		return OutcomeNotStarted
	case asSafely(res.Err, &pe):
		return OutcomePanic
	}
	return OutcomeError
}

// labels are what the AWS layer knows of an item beyond its key.
type labels struct {
	region, account string
	accountMetric   bool // cloud.account.id on metrics too (PoolOptions.AccountAttribute)
}

// callTel is the telemetry of one call; a call without any has none (nil).
type callTel struct {
	tracer tracing.Tracer // nil: no spans
	span   tracing.Span   // the call's
	log    *slog.Logger   // nil: no records

	items    metrics.Int64Counter // nil: no metrics
	duration metrics.Float64Histogram
	wait     metrics.Float64Histogram
	inFlight metrics.Int64UpDownCounter

	failed atomic.Int64
	broken atomic.Bool // a provider or the logger panicked: the call's telemetry is off from then on
}

// safely runs fn, a part of the call's telemetry. Telemetry never changes
// a result: a panic in it, in a provider or a logger of the caller's,
// turns the call's telemetry off, and is told once to the call's Logger,
// unless that is what panicked.
func (t *callTel) safely(fn func()) {
	if t.broken.Load() {
		return
	}
	if err := guard(fn); err != nil && t.broken.CompareAndSwap(false, true) {
		t.warnBroken(err)
	}
}

func (t *callTel) warnBroken(err error) {
	warn(t.log, context.Background(), "fanout: telemetry panicked, and is off for the rest of the call; the results are unaffected",
		slog.String("error", err.Error()))
}

// warn tells log, when not nil, msg at Warn; a panic in it is dropped:
// what it would tell is in the results already, or about telemetry alone.
func warn(log *slog.Logger, ctx context.Context, msg string, attrs ...slog.Attr) {
	if log != nil {
		_ = guard(func() { log.LogAttrs(ctx, slog.LevelWarn, msg, attrs...) })
	}
}

// clipCtx is a context whose span lineage (smithy-go's tracing.WithSpan)
// has no spare capacity. WithSpan appends the new span to its parent's
// lineage: without the clip, two spans started from one context, such as
// two items of a call or two calls of an item, write into the same array,
// each over the other's parent. Every span the package starts, and every
// span a pool client's SDK starts, is started from a clipped context.
type clipCtx struct{ context.Context }

func (c clipCtx) Value(key any) any {
	v := c.Context.Value(key)
	if l, ok := v.([]tracing.Span); ok {
		return l[:len(l):len(l)]
	}
	return v
}

// startCall returns ctx with the call's span and its runtime/trace task,
// and the call's telemetry: nil when o asks for none, or when a provider
// panicked in making it (see safely).
func startCall(ctx context.Context, o *Options, items, limit int) (_ context.Context, t *callTel, task *trace.Task) {
	if trace.IsEnabled() {
		ctx, task = trace.NewTask(ctx, SpanCall)
	}
	if o.TracerProvider == nil && o.MeterProvider == nil && o.Logger == nil {
		return ctx, nil, task
	}
	t = &callTel{log: o.Logger}
	spanCtx := ctx
	t.safely(func() {
		t.meters(o.MeterProvider)
		if o.TracerProvider == nil {
			return
		}
		t.tracer = o.TracerProvider.Tracer(InstrumentationScope)
		spanCtx, t.span = t.tracer.StartSpan(clipCtx{ctx}, SpanCall, func(so *tracing.SpanOptions) {
			if items >= 0 {
				so.Properties.Set(AttrCallItems, items)
			}
			so.Properties.Set(AttrCallLimit, limit)
		})
	})
	if t.broken.Load() {
		return ctx, nil, task
	}
	return spanCtx, t, task
}

// meters makes the call's instruments from mp, when not nil. An
// instrument the provider could not make records nothing.
func (t *callTel) meters(mp metrics.MeterProvider) {
	if mp == nil {
		return
	}
	m := mp.Meter(InstrumentationScope)
	t.items = instrument(m.Int64Counter, nopMeter.Int64Counter, MetricItemsDone, "{item}", "Items by outcome")
	t.duration = instrument(m.Float64Histogram, nopMeter.Float64Histogram, MetricItemDuration, "s", "The time an item's operation took")
	t.wait = instrument(m.Float64Histogram, nopMeter.Float64Histogram, MetricItemWait, "s", "The time an item waited for the limits before its operation began")
	t.inFlight = instrument(m.Int64UpDownCounter, nopMeter.Int64UpDownCounter, MetricInFlight, "{item}", "Items running")
}

// instrument makes one instrument with mk, or, when the provider fails to
// (an error, or none), nop's, the no-op of its kind, which records
// nothing.
func instrument[I any](mk, nop func(string, ...metrics.InstrumentOption) (I, error), name, unit, desc string) I {
	i, err := mk(name, func(o *metrics.InstrumentOptions) { o.UnitLabel, o.Description = unit, desc })
	if err != nil || any(i) == nil {
		i, _ = nop(name)
	}
	return i
}

// end ends the call's span, with the number of items that failed.
func (t *callTel) end(task *trace.Task) {
	if task != nil {
		task.End()
	}
	if t == nil || t.span == nil {
		return
	}
	failed := t.failed.Load()
	t.safely(func() {
		t.span.SetProperty(AttrCallFailed, failed)
		if failed > 0 {
			t.span.SetStatus(tracing.SpanStatusError)
		} else {
			t.span.SetStatus(tracing.SpanStatusOK)
		}
	})
	_ = guard(t.span.End) // even once broken: a span left open is a leak in the caller's tracer
}

// startSpan starts a span called name with tp, when not nil, and returns
// its context and the function that ends it. A panic in the provider
// leaves the span out: telemetry never changes a result.
func startSpan(ctx context.Context, tp tracing.TracerProvider, name string, props func(*tracing.SpanOptions)) (context.Context, func()) {
	if tp == nil {
		return ctx, func() {}
	}
	var (
		span    tracing.Span
		spanCtx context.Context
	)
	if guard(func() { spanCtx, span = tp.Tracer(InstrumentationScope).StartSpan(clipCtx{ctx}, name, props) }) != nil || span == nil {
		return ctx, func() {}
	}
	return spanCtx, func() { _ = guard(span.End) }
}

// itemTel is the telemetry of the item a worker runs; the zero value for
// none.
type itemTel struct {
	ctx     context.Context // the call's, with the item's span and trace task; nil when neither
	span    tracing.Span
	task    *trace.Task
	claimed time.Duration // when the worker claimed the item, on the call's clock
	waited  time.Duration
	running bool // counted in flight
}

// on says whether the item has telemetry: its end must be reported.
func (it *itemTel) on() bool { return it.ctx != nil }

// beginItem starts the item's span and trace task, when the call has
// them, before it waits for its units.
func (w *worker[K, T]) beginItem(res *Result[T]) {
	r, it := w.r, &w.it
	t := r.tel
	if t == nil && !trace.IsEnabled() {
		return
	}
	it.ctx = r.ctx
	if t != nil {
		it.claimed = r.clock()
		if t.tracer != nil {
			t.safely(func() { it.ctx, it.span = r.startItemSpan(res.Key, res.Index) })
		}
	}
	if trace.IsEnabled() {
		it.ctx, it.task = trace.NewTask(it.ctx, SpanItem)
		trace.Log(it.ctx, AttrKey, res.Key)
	}
}

// startItemSpan starts the span of the item of key and index, under the
// call's; the span is nil if the tracer made none.
func (r *run[K, T]) startItemSpan(key string, index int) (context.Context, tracing.Span) {
	lb := r.labelsOf(index)
	ctx, span := r.tel.tracer.StartSpan(clipCtx{r.ctx}, SpanItem, func(o *tracing.SpanOptions) {
		o.Properties.Set(AttrKey, key)
		o.Properties.Set(AttrIndex, index)
		lb.set(&o.Properties, true)
	})
	if span == nil {
		return r.ctx, nil
	}
	return clipCtx{ctx}, span // spans the operation starts from it are siblings too
}

// startItem notes that the item holds its units and its operation begins.
// It runs between the item's acquire and release, where nothing may
// unwind: its panics stop in safely.
func (w *worker[K, T]) startItem(index int) {
	r, it := w.r, &w.it
	t := r.tel
	if t == nil || !it.on() {
		return
	}
	it.waited = r.clock() - it.claimed
	t.safely(func() {
		if it.span != nil {
			it.span.AddEvent(EventStarted)
		}
		if t.items != nil {
			opts := r.recordOpts(index, "")
			t.wait.Record(it.ctx, it.waited.Seconds(), opts...)
			t.inFlight.Add(it.ctx, 1, opts...)
			it.running = true
		}
	})
}

// stopItem notes that the item's operation returned: even once the
// call's telemetry is off, since the +1 was counted.
func (r *run[K, T]) stopItem(it *itemTel, index int) {
	if it.running {
		it.running = false
		_ = guard(func() { r.tel.inFlight.Add(it.ctx, -1, r.recordOpts(index, "")...) })
	}
}

// endItem reports the item's final result: its outcome counted and timed,
// its span ended, its Debug record (Warn for a panic). An item that failed
// before it began (its producer's error) gets its span here. Each part
// runs safely: one that panics leaves the others, and the span is ended
// even then.
func (r *run[K, T]) endItem(it *itemTel, res *Result[T]) {
	t := r.tel
	if !it.on() {
		it.ctx = r.ctx
		if t != nil && t.tracer != nil {
			t.safely(func() { it.ctx, it.span = r.startItemSpan(res.Key, res.Index) })
		}
	}
	if it.task != nil {
		it.task.End()
	}
	if t == nil {
		return
	}
	out := itemOutcome(res)
	if res.Err != nil {
		t.failed.Add(1)
	}
	r.stopItem(it, res.Index) // if the operation panicked past it
	if t.items != nil {
		t.safely(func() {
			opts := r.recordOpts(res.Index, out)
			t.items.Add(it.ctx, 1, opts...)
			if out != OutcomeNotStarted { // it took no time: a 0 would skew the durations
				t.duration.Record(it.ctx, res.Elapsed.Seconds(), opts...)
			}
		})
	}
	if it.span != nil {
		t.safely(func() {
			it.span.SetProperty(AttrOutcome, out)
			if out == OutcomeError || out == OutcomePanic || out == OutcomeNotStarted {
				it.span.SetStatus(tracing.SpanStatusError)
			} else {
				it.span.SetStatus(tracing.SpanStatusOK)
			}
		})
		_ = guard(it.span.End)
	}
	if t.log != nil {
		t.safely(func() { r.logItem(t.log, it, res, out) })
	}
}

// logItem writes the item's record, at Debug, or Warn for a panic, with
// the item's context, so that a handler that reads the trace from it
// correlates the two.
func (r *run[K, T]) logItem(log *slog.Logger, it *itemTel, res *Result[T], out string) {
	lb := r.labelsOf(res.Index)
	level := slog.LevelDebug
	if out == OutcomePanic {
		level = slog.LevelWarn
	}
	if !log.Enabled(it.ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String("key", res.Key), slog.Int("index", res.Index), slog.String("outcome", out),
		slog.Duration("elapsed", res.Elapsed), slog.Duration("wait", it.waited))
	if lb.region != "" {
		attrs = append(attrs, slog.String("region", lb.region))
	}
	if lb.account != "" {
		attrs = append(attrs, slog.String("account", lb.account))
	}
	if res.Err != nil { // the item's own error: the key and the index are attributes already
		var err error = res.Err
		if ie, ok := err.(*ItemError); ok {
			err = ie.Err
		}
		attrs = append(attrs, slog.String("error", err.Error()))
	} else if res.Skipped != nil {
		attrs = append(attrs, slog.String("skipped", res.Skipped.Error()))
	}
	log.LogAttrs(it.ctx, level, "fanout: item", attrs...)
}

// reportItem ends the item's telemetry, which never changes its result.
func (r *run[K, T]) reportItem(it *itemTel, res *Result[T]) {
	r.endItem(it, res)
	*it = itemTel{}
}

// recordOpts are the properties of a measurement of the item at index:
// its labels, and its outcome unless "". Without labels, they are made
// once for all items.
func (r *run[K, T]) recordOpts(index int, outcome string) []metrics.RecordMetricOption {
	if r.labels == nil {
		return outcomeOpts[outcome]
	}
	opts := []metrics.RecordMetricOption{r.labels(index).record}
	if outcome != "" {
		opts = append(opts, outcomeOpts[outcome]...)
	}
	return opts
}

// outcomeOpts set each outcome's property on a measurement; "" none.
var outcomeOpts = func() map[string][]metrics.RecordMetricOption {
	m := map[string][]metrics.RecordMetricOption{"": nil}
	for _, out := range []string{OutcomeOK, OutcomeError, OutcomeSkipped, OutcomeNotStarted, OutcomePanic} {
		m[out] = []metrics.RecordMetricOption{func(o *metrics.RecordMetricOptions) { o.Properties.Set(AttrOutcome, out) }}
	}
	return m
}()

func (r *run[K, T]) labelsOf(index int) labels {
	if r.labels == nil {
		return labels{}
	}
	return r.labels(index)
}

// set adds the labels to props; span says whether for a span, which
// always names the account, or a measurement, which names it only when
// asked, for cardinality.
func (lb labels) set(props interface{ Set(k, v any) }, span bool) {
	if lb.region != "" {
		props.Set(AttrRegion, lb.region)
	}
	if lb.account != "" && (span || lb.accountMetric) {
		props.Set(AttrAccountID, lb.account)
	}
}

func (lb labels) record(o *metrics.RecordMetricOptions) { lb.set(&o.Properties, false) }
