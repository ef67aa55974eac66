package timeline

import (
	"context"
	"testing"
	"time"

	"github.com/aws/smithy-go/metrics"
)

func TestMeter(t *testing.T) {
	r, clk := newFake()
	m := r.Meter("github.com/awsfanout/fanout")
	ctx := context.Background()
	unit := func(o *metrics.InstrumentOptions) { o.UnitLabel = "{request}" }
	region := func(o *metrics.RecordMetricOptions) { o.Properties.Set("cloud.region", "eu-west-1") }

	record := map[string]func() error{
		"Int64Counter":         func() error { i, err := m.Int64Counter("a", unit); i.Add(ctx, 1, region); return err },
		"Int64UpDownCounter":   func() error { i, err := m.Int64UpDownCounter("a", unit); i.Add(ctx, 1, region); return err },
		"Int64Gauge":           func() error { i, err := m.Int64Gauge("a", unit); i.Sample(ctx, 1, region); return err },
		"Int64Histogram":       func() error { i, err := m.Int64Histogram("a", unit); i.Record(ctx, 1, region); return err },
		"Float64Counter":       func() error { i, err := m.Float64Counter("a", unit); i.Add(ctx, 1, region); return err },
		"Float64UpDownCounter": func() error { i, err := m.Float64UpDownCounter("a", unit); i.Add(ctx, 1, region); return err },
		"Float64Gauge":         func() error { i, err := m.Float64Gauge("a", unit); i.Sample(ctx, 1, region); return err },
		"Float64Histogram":     func() error { i, err := m.Float64Histogram("a", unit); i.Record(ctx, 1, region); return err },
	}
	for kind, fn := range record {
		t.Run(kind, func(t *testing.T) {
			clk.at(time.Second)
			if err := fn(); err != nil {
				t.Fatal(err)
			}
			samples := r.Samples()
			s := samples[len(samples)-1]
			if s.Instrument != kind || s.Name != "a" || s.Unit != "{request}" || s.Value != 1 ||
				s.Time != clk.base.Add(time.Second) || s.Properties["cloud.region"] != "eu-west-1" || s.Scope != "github.com/awsfanout/fanout" {
				t.Errorf("sample %+v", s)
			}
		})
	}
}

// TestAsyncInstruments checks that the kinds the Recorder does not record
// are still valid instruments.
func TestAsyncInstruments(t *testing.T) {
	r := New()
	m := r.Meter("scope")
	i64 := func(context.Context, metrics.Int64Observer) { t.Error("an int64 callback was called") }
	f64 := func(context.Context, metrics.Float64Observer) { t.Error("a float64 callback was called") }
	for name, fn := range map[string]func() (metrics.AsyncInstrument, error){
		"Int64AsyncCounter":         func() (metrics.AsyncInstrument, error) { return m.Int64AsyncCounter("a", i64) },
		"Int64AsyncUpDownCounter":   func() (metrics.AsyncInstrument, error) { return m.Int64AsyncUpDownCounter("a", i64) },
		"Int64AsyncGauge":           func() (metrics.AsyncInstrument, error) { return m.Int64AsyncGauge("a", i64) },
		"Float64AsyncCounter":       func() (metrics.AsyncInstrument, error) { return m.Float64AsyncCounter("a", f64) },
		"Float64AsyncUpDownCounter": func() (metrics.AsyncInstrument, error) { return m.Float64AsyncUpDownCounter("a", f64) },
		"Float64AsyncGauge":         func() (metrics.AsyncInstrument, error) { return m.Float64AsyncGauge("a", f64) },
	} {
		i, err := fn()
		if err != nil || i == nil {
			t.Fatalf("%s: %v, %v", name, i, err)
		}
		i.Stop()
		i.Stop()
	}
	if n := len(r.Samples()); n != 0 {
		t.Errorf("%d samples from asynchronous instruments", n)
	}
}

func TestSamplesCopy(t *testing.T) {
	r := New()
	g, _ := r.Meter("scope").Float64Gauge("fanout.client.limit")
	g.Sample(context.Background(), 2, func(o *metrics.RecordMetricOptions) { o.Properties.Set("cloud.region", "eu-west-1") })
	r.Samples()[0].Properties["cloud.region"] = "changed"
	if got := r.Samples()[0].Properties["cloud.region"]; got != "eu-west-1" {
		t.Errorf("changing what Samples returned changed the Recorder: %v", got)
	}
}
