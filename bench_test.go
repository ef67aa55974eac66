package fanout_test

import (
	"context"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"
	"github.com/sourcegraph/conc/iter"
	"golang.org/x/sync/errgroup"

	"github.com/awsfanout/fanout"
)

const benchKeys, benchLimit = 100_000, 64

func noop(context.Context, string) (int, error) { return 1, nil }

// BenchmarkRun measures the engine's own cost per item against conc's
// iter.Map and the plain errgroup.SetLimit code that it replaces, on the
// same no-op work, at most benchLimit of them at once.
func BenchmarkRun(b *testing.B) {
	keys := keysN(benchKeys)
	b.Run("fanout", func(b *testing.B) { benchRun(b, keys, noop) })
	// An ItemTimeout that never fires: the cost of giving each item a
	// deadline.
	b.Run("fanout-itemtimeout", func(b *testing.B) {
		benchRun(b, keys, noop, func(o *fanout.Options) { o.ItemTimeout = time.Minute })
	})
	// The same, with an operation that asks for Done, as every call of the
	// AWS SDK does: the item's context then makes what it stands for.
	b.Run("fanout-itemtimeout-done", func(b *testing.B) {
		op := func(ctx context.Context, _ string) (int, error) { _ = ctx.Done(); return 1, nil }
		benchRun(b, keys, op, func(o *fanout.Options) { o.ItemTimeout = time.Minute })
	})
	// Telemetry on, with the SDK's no-op providers and a logger that
	// drops everything: the engine's own cost of spans, measurements and
	// records, not a backend's.
	b.Run("fanout-telemetry", func(b *testing.B) {
		benchRun(b, keys, noop, func(o *fanout.Options) {
			o.TracerProvider, o.MeterProvider = tracing.NopTracerProvider{}, metrics.NopMeterProvider{}
			o.Logger = slog.New(slog.DiscardHandler)
		})
	})
	// The typed path: the same keys as items of a struct type, named by
	// the item; and pulled from a sequence.
	items := make([]object, len(keys))
	for i, k := range keys {
		items[i] = object{Name: k, Size: int64(i)}
	}
	itemOp := func(context.Context, object) (int, error) { return 1, nil }
	named := func(o *fanout.ItemOptions[object]) { o.Key = func(o object) string { return o.Name } }
	b.Run("fanout-items", func(b *testing.B) {
		f := fanout.New[int](func(o *fanout.Options) { o.Limit = benchLimit })
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fanout.RunItems(context.Background(), f, items, itemOp, named); err != nil {
				b.Fatal(err)
			}
		}
		perItem(b)
	})
	b.Run("fanout-seq", func(b *testing.B) {
		f := fanout.New[int](func(o *fanout.Options) { o.Limit = benchLimit })
		b.ReportAllocs()
		for b.Loop() {
			for r := range fanout.StreamItems(context.Background(), f, slices.Values(items), itemOp, named) {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		}
		perItem(b)
	})
	b.Run("conc", func(b *testing.B) {
		m := iter.Mapper[string, int]{MaxGoroutines: benchLimit}
		b.ReportAllocs()
		for b.Loop() {
			m.Map(keys, func(k *string) int {
				v, _ := noop(context.Background(), *k)
				return v
			})
		}
		perItem(b)
	})
	// conc returning what Run returns for each item, as a caller would
	// write it: the key, the value, the error and the time the item took.
	// What a result that says what happened costs, apart from the engine.
	b.Run("conc-results", func(b *testing.B) {
		m := iter.Mapper[string, fanout.Result[int]]{MaxGoroutines: benchLimit}
		b.ReportAllocs()
		for b.Loop() {
			m.Map(keys, func(k *string) fanout.Result[int] {
				start := time.Now()
				v, err := noop(context.Background(), *k)
				return fanout.Result[int]{Key: *k, Value: v, Err: err, Elapsed: time.Since(start)}
			})
		}
		perItem(b)
	})
	b.Run("errgroup", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out := make([]int, len(keys))
			g, ctx := errgroup.WithContext(context.Background())
			g.SetLimit(benchLimit)
			for i, k := range keys {
				g.Go(func() error {
					v, err := noop(ctx, k)
					out[i] = v
					return err
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
		perItem(b)
	})
}

// benchRun runs op over keys with Fanout.Run, at benchLimit with optFns
// applied after it, once each loop of the benchmark.
func benchRun(b *testing.B, keys []string, op func(context.Context, string) (int, error), optFns ...func(*fanout.Options)) {
	f := fanout.New[int](append([]func(*fanout.Options){func(o *fanout.Options) { o.Limit = benchLimit }}, optFns...)...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Run(context.Background(), keys, op); err != nil {
			b.Fatal(err)
		}
	}
	perItem(b)
}

func perItem(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchKeys), "ns/item")
}

// BenchmarkStream streams a million keys and reports how far the heap grew
// above what the keys themselves take: it should not grow with their number.
func BenchmarkStream(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			keys := keysN(n)
			f := fanout.New[int](func(o *fanout.Options) { o.Limit = benchLimit })
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			base, peak := ms.HeapAlloc, ms.HeapAlloc
			b.ReportAllocs()
			for b.Loop() {
				i := 0
				for r := range f.Stream(context.Background(), keys, noop) {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
					if i++; i%(n/10) == 0 {
						runtime.ReadMemStats(&ms)
						peak = max(peak, ms.HeapAlloc)
					}
				}
			}
			b.ReportMetric(float64(peak-base)/(1<<20), "peak-heap-growth-MB")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/item")
		})
	}
}

// BenchmarkPacedWait: how late a paced start's wait of 2-3ms ends (p50
// and p90 of its rounds, in µs), on a timer alone and with its last
// millisecond spun, as a client at the edge of a small bucket waits (see
// Adaptive). On Linux, with nothing else to run, a timer fires up to a
// millisecond late.
func BenchmarkPacedWait(b *testing.B) {
	for _, c := range []struct {
		name string
		spin time.Duration
	}{{"timer", 0}, {"spun", time.Millisecond}} {
		b.Run(c.name, func(b *testing.B) {
			var late []time.Duration
			for i := 0; b.Loop(); i++ {
				d := 2*time.Millisecond + time.Duration(i*317%1000)*time.Microsecond
				start := time.Now()
				if err := fanout.SleepExactly(context.Background(), d, c.spin); err != nil {
					b.Fatal(err)
				}
				late = append(late, time.Since(start)-d)
			}
			slices.Sort(late)
			b.ReportMetric(float64(late[len(late)/2].Microseconds()), "late-µs-p50")
			b.ReportMetric(float64(late[len(late)*9/10].Microseconds()), "late-µs-p90")
		})
	}
}
