package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The item a rule fails, and the one not enabled in its account.
const (
	denied   = "222222222222/eu-west-1"      // a rule answers AccessDenied
	disabled = "333333333333/ap-southeast-2" // not enabled in the account: skipped
)

// scanned is what an inventory over fanouttest returned, and what
// OpenTelemetry's SDK received meanwhile.
type scanned struct {
	res   fanout.RegionResults[int]
	spans tracetest.SpanStubs
	rm    metricdata.ResourceMetrics
	stats fanouttest.Snapshot
}

// scan runs inventory over the simulation, with one item denied, into an
// in-memory exporter and a manual reader.
func scan(t *testing.T) scanned {
	t.Helper()
	cfg := simulation()
	acct, region, _ := strings.Cut(denied, "/")
	cfg.Faults = append(cfg.Faults, fanouttest.Rule{Account: acct, Region: region, Service: "ec2", Fault: fanouttest.Denied})
	srv, err := fanouttest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	exp, reader := tracetest.NewInMemoryExporter(), sdkmetric.NewManualReader()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	ctx := context.Background()
	defer func() { _, _ = tp.Shutdown(ctx), mp.Shutdown(ctx) }()

	res, err := inventory(ctx, targets{cfg: srv.AWSConfig("us-east-1"), accounts: simAccounts, regions: simRegions, page: 5}, tp, mp)
	if len(res) != len(simAccounts)*len(simRegions) {
		t.Fatalf("%d results: %v", len(res), err)
	}
	s := scanned{res: res, spans: exp.GetSpans(), stats: srv.Stats()}
	if err := reader.Collect(ctx, &s.rm); err != nil {
		t.Fatal(err)
	}
	return s
}

// outcome names a result's outcome as the library's telemetry does.
func outcome(r fanout.RegionResult[int]) string {
	var pe *fanout.PanicError
	switch {
	case r.Err == nil && r.Skipped != nil:
		return fanout.OutcomeSkipped
	case r.Err == nil:
		return fanout.OutcomeOK
	case errors.Is(r.Err, fanout.ErrNotStarted):
		return fanout.OutcomeNotStarted
	case errors.As(r.Err, &pe):
		return fanout.OutcomePanic
	}
	return fanout.OutcomeError
}

func (p point) get(k attribute.Key) string {
	v, _ := p.attrs.Value(k)
	return v.Emit()
}

// TestItemsCountedByOutcome: the items that fanout.items and
// fanout.item.duration count by outcome are the results, a failed and a
// skipped one included, and each item's span names its outcome.
func TestItemsCountedByOutcome(t *testing.T) {
	t.Parallel()
	s := scan(t)
	want := map[string]int64{}
	byKey := map[string]string{}
	for _, r := range s.res {
		want[outcome(r)]++
		byKey[r.Key] = outcome(r)
	}
	if byKey[denied] != fanout.OutcomeError || byKey[disabled] != fanout.OutcomeSkipped || want[fanout.OutcomeOK] != 10 {
		t.Fatalf("outcomes %v; the test needs %s failed, %s skipped and the 10 others ok", byKey, denied, disabled)
	}
	for _, name := range []string{fanout.MetricItemsDone, fanout.MetricItemDuration} {
		got := map[string]int64{}
		for _, p := range points(s.rm, name) {
			got[p.get(fanout.AttrOutcome)] += p.n
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s by outcome: %v; the results: %v", name, got, want)
		}
	}
	items := 0
	for _, sp := range s.spans {
		if sp.Name != fanout.SpanItem {
			continue
		}
		items++
		if key, out := value(sp.Attributes, fanout.AttrKey), value(sp.Attributes, fanout.AttrOutcome); out != byKey[key] {
			t.Errorf("the span of %s says %s; its result, %s", key, out, byKey[key])
		}
	}
	if items != len(s.res) {
		t.Errorf("%d item spans for %d items", items, len(s.res))
	}
}

// TestSpansNest: by their OpenTelemetry parent span IDs, each EC2 attempt
// is under its retry loop, its operation, its item and the call, under
// the command's span, as is each AssumeRole; all are one trace; and
// every request the endpoint saw is one attempt span, the throttled ones
// marked.
func TestSpansNest(t *testing.T) {
	t.Parallel()
	s := scan(t)
	byID := map[oteltrace.SpanID]tracetest.SpanStub{}
	for _, sp := range s.spans {
		byID[sp.SpanContext.SpanID()] = sp
	}
	traces := map[oteltrace.TraceID]bool{}
	chains := map[string]int{}
	ec2Attempts := map[string]int64{} // by region
	marked := 0
	for _, sp := range s.spans {
		traces[sp.SpanContext.TraceID()] = true
		if sp.Name != "Attempt" {
			continue
		}
		var chain []string
		item := tracetest.SpanStub{}
		for p, ok := sp, true; ok; p, ok = byID[p.Parent.SpanID()] {
			chain = append(chain, p.Name)
			if p.Name == fanout.SpanItem {
				item = p
			}
			if p.Parent.IsValid() && p.Parent.TraceID() != p.SpanContext.TraceID() {
				t.Errorf("%s's parent is in trace %s, it in %s", p.Name, p.Parent.TraceID(), p.SpanContext.TraceID())
			}
		}
		chains[strings.Join(chain, " < ")]++
		if item.Name == "" || len(chain) < 3 || !strings.Contains(chain[2], "EC2.") {
			continue // not an item's EC2 call: an AssumeRole, or the credentials check of a disabled region, in us-east-1
		}
		ec2Attempts[value(sp.Attributes, fanout.AttrRegion)]++
		for _, k := range []attribute.Key{fanout.AttrRegion, fanout.AttrAccountID} {
			if got, want := value(sp.Attributes, k), value(item.Attributes, k); got != want || got == "" {
				t.Errorf("an attempt of item %s has %s %q; its item %q", value(item.Attributes, fanout.AttrKey), k, got, want)
			}
		}
		if value(sp.Attributes, fanout.AttrThrottled) == "true" {
			marked++
		}
	}
	const ec2Chain = "Attempt < RetryLoop < EC2.DescribeInstances < fanout.item < fanout.call < fanout.account_regions < inventory"
	if len(traces) != 1 {
		t.Errorf("%d traces; want all the spans in one", len(traces))
	}
	if chains[ec2Chain] == 0 || chains["Attempt < RetryLoop < STS.AssumeRole < fanout.account_regions < inventory"] != 2 {
		t.Errorf("attempts by ancestry: %v; want EC2's under their items, and the two AssumeRole under the command's span", chains)
	}
	for chain, n := range chains {
		if strings.Contains(chain, "EC2") && chain != ec2Chain {
			t.Errorf("%d EC2 attempts nest as %s", n, chain)
		}
	}
	// us-east-1 also serves STS, which the pool calls with a client of
	// its own when it confirms a region disabled.
	for _, region := range simRegions[1:] {
		if got, want := ec2Attempts[region], s.stats.Region[region].Requests; got != want {
			t.Errorf("%s: %d attempt spans; the endpoint saw %d requests", region, got, want)
		}
	}
	throttles := 0
	for _, r := range s.res {
		throttles += r.Throttles
	}
	if marked == 0 || marked != throttles || marked != int(s.stats.Total.Throttled) {
		t.Errorf("%d attempts marked throttled; the results count %d, the endpoint %d", marked, throttles, s.stats.Total.Throttled)
	}
}

// TestSDKMetricsByRegionAndAccount: every client.call.duration point the
// SDK's EC2 clients recorded names its region and account
// (AccountAttribute), and counts that item's pages; the throttles are
// counted in the throttled region, as the endpoint answered them.
func TestSDKMetricsByRegionAndAccount(t *testing.T) {
	t.Parallel()
	s := scan(t)
	got := map[string]int64{}
	for _, p := range points(s.rm, "client.call.duration") {
		if p.get("rpc.service") != "EC2" {
			continue
		}
		if p.get(fanout.AttrRegion) == "" || p.get(fanout.AttrAccountID) == "" {
			t.Errorf("a point without its region or account: %v", p.attrs.ToSlice())
		}
		got[p.get(fanout.AttrAccountID)+"/"+p.get(fanout.AttrRegion)] += p.n
	}
	want := map[string]int64{}
	for _, r := range s.res {
		want[r.Key] = 3 // 12 instances, 5 a page
	}
	want[denied], want[disabled] = 1, 1 // its one call failed
	if !maps.Equal(got, want) {
		t.Errorf("EC2 calls by account/region: %v; want %v", got, want)
	}
	throttles := map[string]int64{}
	for _, p := range points(s.rm, fanout.MetricClientThrottles) {
		throttles[p.get(fanout.AttrRegion)] += p.n
	}
	if n := throttles["us-west-2"]; n == 0 || n != s.stats.Total.Throttled || len(throttles) != 1 {
		t.Errorf("throttles by region: %v; the endpoint throttled %d, all in us-west-2", throttles, s.stats.Total.Throttled)
	}
}

var summary = regexp.MustCompile(`^items=(\d+) ok=(\d+) failed=(\d+) spans=(\d+)$`)

// TestRun runs the command over its simulation: it prints the trace of a
// throttled item and the counts, and ends with the summary.
func TestRun(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if code := run(context.Background(), nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	m := summary.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("the last line %q is not the summary", lines[len(lines)-1])
	}
	n := make([]int, 4)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	if n[0] != 12 || n[1] != 11 || n[2] != 0 || n[3] < 12*6 {
		t.Errorf("%s; want 12 items, 11 ok (one skipped), none failed, and at least 6 spans an item", lines[len(lines)-1])
	}
	for _, want := range []string{
		"/us-west-2 (the SDK's inner steps",
		"fanout.item  ", "EC2.DescribeInstances  ", "fanout.throttled=true",
		"fanout.items.done by fanout.outcome: ok=11 skipped=1\n",
		"fanout.client.throttles by cloud.region: us-west-2=",
		fmt.Sprintf("EC2/%s=%d ", "eu-west-1", 9),
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	// The item retried most is one of the throttled region's; which
	// account's depends on the run's timing.
	if got := slices.DeleteFunc(lines, func(l string) bool { return !strings.Contains(l, "  fanout.item  ") }); len(got) != 1 ||
		!slices.ContainsFunc(simAccounts, func(a string) bool { return strings.Contains(got[0], a+"      us-west-2") }) {
		t.Errorf("the trace's item lines: %q; want one, with its account and region", got)
	}
}
