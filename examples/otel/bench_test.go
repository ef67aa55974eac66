package main

import (
	"context"
	"runtime"
	"strconv"
	"testing"

	"github.com/aws/smithy-go/metrics/smithyotelmetrics"
	"github.com/aws/smithy-go/tracing/smithyoteltracing"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/awsfanout/fanout"
)

// As the root's BenchmarkRun: 100,000 no-op items, 64 at once.
const benchKeys, benchLimit = 100_000, 64

// BenchmarkTelemetry measures what OpenTelemetry's SDK adds to the
// engine's cost per item: no telemetry, then every span sampled and
// handed to an exporter that drops it, every measurement aggregated by a
// manual reader that is never read, and both. The README has the numbers
// (medians of -count 3, -benchtime 5x): a few microseconds and some 30 to
// 60 allocations per item with telemetry on, mostly the SDK's and the
// adapters'; next to an AWS call of tens of milliseconds, noise.
func BenchmarkTelemetry(b *testing.B) {
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	noop := func(context.Context, string) (int, error) { return 1, nil }
	for _, bc := range []struct {
		name            string
		traces, metrics bool
	}{
		{"off", false, false},
		{"traces", true, false},
		{"metrics", false, true},
		{"traces+metrics", true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			var opts []func(*fanout.Options)
			if bc.traces {
				tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSyncer(tracetest.NewNoopExporter()))
				defer func() { _ = tp.Shutdown(ctx) }()
				opts = append(opts, func(o *fanout.Options) { o.TracerProvider = smithyoteltracing.Adapt(tp) })
			}
			if bc.metrics {
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
				defer func() { _ = mp.Shutdown(ctx) }()
				opts = append(opts, func(o *fanout.Options) { o.MeterProvider = smithyotelmetrics.Adapt(mp) })
			}
			f := fanout.New[int](append(opts, func(o *fanout.Options) { o.Limit = benchLimit })...)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.Run(ctx, keys, noop); err != nil {
					b.Fatal(err)
				}
			}
			runtime.ReadMemStats(&after)
			items := float64(b.N * benchKeys)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/items, "ns/item")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/items, "allocs/item")
		})
	}
}
