package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/awsfanout/fanout"
)

// report prints the trace of one item, the items by outcome, the
// throttles and the SDK's calls by region, and the summary line.
func (t *telemetry) report(ctx context.Context, w io.Writer, res fanout.RegionResults[int]) error {
	if err := t.tp.ForceFlush(ctx); err != nil {
		return err
	}
	spans := t.spans.GetSpans()
	writeTrace(w, spans)
	var rm metricdata.ResourceMetrics
	if err := t.reader.Collect(ctx, &rm); err != nil {
		return err
	}
	fmt.Fprintf(w, "%s by %s: %s\n", fanout.MetricItemsDone, fanout.AttrOutcome, counts(sums(&rm, fanout.MetricItemsDone, fanout.AttrOutcome)))
	fmt.Fprintf(w, "%s by %s: %s\n", fanout.MetricClientThrottles, fanout.AttrRegion, counts(sums(&rm, fanout.MetricClientThrottles, fanout.AttrRegion)))
	fmt.Fprintf(w, "client.call.duration count by rpc.service/%s: %s\n", fanout.AttrRegion, counts(sums(&rm, "client.call.duration", "rpc.service", fanout.AttrRegion)))
	ok := 0
	for _, r := range res {
		if r.Err == nil && r.Skipped == nil {
			ok++
		}
	}
	fmt.Fprintf(w, "items=%d ok=%d failed=%d spans=%d\n", len(res), ok, len(res.Failed()), len(spans))
	return nil
}

// tree indexes spans by their own ID and by their parent's.
type tree struct {
	byID     map[oteltrace.SpanID]*tracetest.SpanStub
	children map[oteltrace.SpanID][]*tracetest.SpanStub // in the order they started
}

func newTree(spans tracetest.SpanStubs) tree {
	t := tree{byID: map[oteltrace.SpanID]*tracetest.SpanStub{}, children: map[oteltrace.SpanID][]*tracetest.SpanStub{}}
	for i := range spans {
		s := &spans[i]
		t.byID[s.SpanContext.SpanID()] = s
		t.children[s.Parent.SpanID()] = append(t.children[s.Parent.SpanID()], s)
	}
	for _, kids := range t.children {
		slices.SortFunc(kids, func(a, b *tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
	}
	return t
}

// size counts s and the spans under it.
func (t tree) size(s *tracetest.SpanStub) int {
	n := 1
	for _, c := range t.children[s.SpanContext.SpanID()] {
		n += t.size(c)
	}
	return n
}

// writeTrace prints, under its ancestors, the item with the most spans:
// the one retried most. Each attempt's inner steps but the HTTP request
// are left out.
func writeTrace(w io.Writer, spans tracetest.SpanStubs) {
	t := newTree(spans)
	var item *tracetest.SpanStub
	for i := range spans {
		s := &spans[i]
		if s.Name != fanout.SpanItem {
			continue
		}
		if item == nil || t.size(s) > t.size(item) || t.size(s) == t.size(item) && key(s) < key(item) {
			item = s
		}
	}
	if item == nil {
		fmt.Fprintln(w, "no item span")
		return
	}
	fmt.Fprintf(w, "trace %s, item %s (the SDK's inner steps, such as SignRequest, left out):\n", item.SpanContext.TraceID(), key(item))
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  SPAN\tTIME\t%s\t%s\tOTHER\n", fanout.AttrAccountID, fanout.AttrRegion)
	var above []*tracetest.SpanStub
	for s := t.byID[item.Parent.SpanID()]; s != nil; s = t.byID[s.Parent.SpanID()] {
		above = append(above, s)
	}
	for i := range above {
		writeSpan(tw, above[len(above)-1-i], i)
	}
	t.write(tw, item, len(above))
	tw.Flush()
	for line := range strings.Lines(table.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
}

func (t tree) write(w io.Writer, s *tracetest.SpanStub, depth int) {
	writeSpan(w, s, depth)
	for _, c := range t.children[s.SpanContext.SpanID()] {
		if len(t.children[c.SpanContext.SpanID()]) > 0 || c.Name == "DoHTTPRequest" {
			t.write(w, c, depth+1)
		}
	}
}

// other are the attributes printed in a span's last column.
var other = []attribute.Key{fanout.AttrCallItems, fanout.AttrOutcome, fanout.AttrThrottled, fanout.AttrWait}

func writeSpan(w io.Writer, s *tracetest.SpanStub, depth int) {
	var more []string
	for _, k := range other {
		for _, a := range s.Attributes {
			switch {
			case a.Key != k:
			case k == fanout.AttrWait: // seconds
				more = append(more, fmt.Sprintf("%s=%.1fms", k, a.Value.AsFloat64()*1000))
			default:
				more = append(more, fmt.Sprintf("%s=%s", k, a.Value.Emit()))
			}
		}
	}
	fmt.Fprintf(w, "  %s%s\t%.1fms\t%s\t%s\t%s\n", strings.Repeat("  ", depth), s.Name,
		float64(s.EndTime.Sub(s.StartTime).Microseconds())/1000,
		value(s.Attributes, fanout.AttrAccountID), value(s.Attributes, fanout.AttrRegion), strings.Join(more, " "))
}

func key(s *tracetest.SpanStub) string { return value(s.Attributes, fanout.AttrKey) }

func value(attrs []attribute.KeyValue, k attribute.Key) string {
	for _, a := range attrs {
		if a.Key == k {
			return a.Value.Emit()
		}
	}
	return ""
}

// sums adds up the points of the metric name by the values of the
// attributes by, joined with "/" ("none" for one a point lacks): a
// counter's values, a histogram's counts.
func sums(rm *metricdata.ResourceMetrics, name string, by ...attribute.Key) map[string]int64 {
	out := map[string]int64{}
	label := func(set attribute.Set) string {
		parts := make([]string, len(by))
		for i, k := range by {
			parts[i] = "none"
			if v, ok := set.Value(k); ok {
				parts[i] = v.Emit()
			}
		}
		return strings.Join(parts, "/")
	}
	for _, p := range points(*rm, name) {
		out[label(p.attrs)] += p.n
	}
	return out
}

// points returns the data points of the metric name: a counter's values,
// or a histogram's counts, with their attributes.
func points(rm metricdata.ResourceMetrics, name string) (ps []point) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range data.DataPoints {
					ps = append(ps, point{p.Attributes, p.Value})
				}
			case metricdata.Histogram[float64]:
				for _, p := range data.DataPoints {
					ps = append(ps, point{p.Attributes, int64(p.Count)})
				}
			}
		}
	}
	return ps
}

type point struct {
	attrs attribute.Set
	n     int64
}

// counts formats a count by name, in name order.
func counts(m map[string]int64) string {
	parts := []string{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
