package timeline

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/aws/smithy-go/tracing"
)

// The names of the telemetry contract: the spans, events, properties and
// instruments of the fanout package and of the SDK that a waterfall reads.
const (
	itemSpan       = "fanout.item"    // one per item, from its claim to its result
	startedEvent   = "fanout.started" // on an item span: it got its units, its op begins
	attemptSpan    = "Attempt"        // the SDK's, one per attempt of a call
	limitGauge     = "fanout.client.limit"
	propKey        = "fanout.key"
	propOutcome    = "fanout.outcome"
	outcomeSkipped = "skipped"           // an item that chose not to run: not a failure
	propThrottled  = "fanout.throttled"  // on an Attempt: it was throttled
	propWait       = "fanout.wait"       // on an Attempt: seconds the adaptive limit held it
	propAttempt    = "operation.attempt" // on an Attempt: 1 for the first
	propRegion     = "cloud.region"
	propAccount    = "cloud.account.id"
)

// minWait is the least fanout.wait drawn: a shorter hold is less than a
// pixel of any run worth drawing.
const minWait = time.Millisecond

// waterfall is what WriteSVG draws.
type waterfall struct {
	start, end time.Time // of the first span to start and the last to end
	rows       []*row    // in order of their first start
	limits     scale     // of the adaptive limits sampled in every row

	items, failed                int
	attempts, throttled, retried int
}

// row is one region's (or account and region's) items, in lanes so that
// items that overlap do not hide each other.
type row struct {
	label string
	bars  []*bar   // in order of start
	lanes int      // at least 1
	limit []Sample // the adaptive limit of the row's clients, in time order
	last  time.Time
}

// bar is an item and the attempts made inside it, or, with no item, an
// attempt made outside any item (such as a listing before the fan-out).
type bar struct {
	item       bool
	key        string
	outcome    string
	failed     bool
	start, end time.Time
	started    time.Time // the fanout.started event; zero if it never started
	attempts   []attempt
	lane       int
}

type attempt struct {
	op         string // the SDK operation span's name, such as EC2.DescribeInstances
	n          int
	throttled  bool
	wait       time.Duration
	start, end time.Time
}

// newWaterfall lays out recorded spans and samples. It reads only the
// names above; every other span and sample is ignored.
func newWaterfall(spans []RecordedSpan, samples []Sample) *waterfall {
	wf := &waterfall{}
	wf.bounds(spans)
	rows := map[string]*row{}
	items := map[int]*bar{}
	for i := range spans {
		if s := &spans[i]; s.Name == itemSpan {
			b := wf.itemBar(s)
			items[s.ID] = b
			wf.rowFor(rows, rowLabel(s.Properties, b.key), b)
		}
	}
	for i := range spans {
		if s := &spans[i]; s.Name == attemptSpan {
			wf.addAttempt(spans, s, items, rows)
		}
	}
	for _, r := range rows {
		r.layout()
		wf.rows = append(wf.rows, r)
	}
	slices.SortFunc(wf.rows, func(a, b *row) int {
		return cmp.Or(a.bars[0].start.Compare(b.bars[0].start), cmp.Compare(a.label, b.label))
	})
	wf.addLimits(rows, samples)
	return wf
}

// bounds sets the waterfall's start and end from every span and event.
func (wf *waterfall) bounds(spans []RecordedSpan) {
	for i, s := range spans {
		if i == 0 || s.Start.Before(wf.start) {
			wf.start = s.Start
		}
		wf.end = latest(wf.end, s.Start, s.End)
		for _, e := range s.Events {
			wf.end = latest(wf.end, e.Time)
		}
	}
}

func latest(t time.Time, ts ...time.Time) time.Time {
	for _, u := range ts {
		if u.After(t) {
			t = u
		}
	}
	return t
}

// endOf is a span's end, or the waterfall's if it has not ended.
func (wf *waterfall) endOf(s *RecordedSpan) time.Time {
	if s.End.IsZero() {
		return wf.end
	}
	return s.End
}

func (wf *waterfall) itemBar(s *RecordedSpan) *bar {
	b := &bar{item: true, key: str(s.Properties[propKey]), outcome: str(s.Properties[propOutcome]),
		failed: s.Status == tracing.SpanStatusError, start: s.Start, end: wf.endOf(s)}
	for _, e := range s.Events {
		if e.Name == startedEvent && b.started.IsZero() {
			b.started = e.Time
		}
	}
	wf.items++
	if b.failed {
		wf.failed++
	}
	return b
}

// addAttempt puts an Attempt span in the item it nests in, or, outside any
// item, in a bar of its own in its region's row; one with neither is not
// drawn.
func (wf *waterfall) addAttempt(spans []RecordedSpan, s *RecordedSpan, items map[int]*bar, rows map[string]*row) {
	a := attempt{n: int(num(s.Properties[propAttempt])), throttled: s.Properties[propThrottled] == true,
		wait: time.Duration(num(s.Properties[propWait]) * float64(time.Second)), start: s.Start, end: wf.endOf(s)}
	if a.wait < minWait {
		a.wait = 0
	}
	var in *bar
	for p := s.Parent; p > 0 && p <= len(spans) && in == nil; p = spans[p-1].Parent {
		if a.op == "" && spans[p-1].Kind == tracing.SpanKindClient {
			a.op = spans[p-1].Name
		}
		in = items[p]
	}
	if in == nil {
		if str(s.Properties[propRegion]) == "" {
			return
		}
		in = &bar{start: a.start, end: a.end}
		wf.rowFor(rows, rowLabel(s.Properties, ""), in)
	}
	in.attempts = append(in.attempts, a)
	wf.attempts++
	if a.throttled {
		wf.throttled++
	}
	if a.n > 1 {
		wf.retried++
	}
}

// rowLabel is "account/region" when the account is set, the region, or,
// for an item outside the AWS layer, its key.
func rowLabel(p map[string]any, key string) string {
	region, account := str(p[propRegion]), str(p[propAccount])
	switch {
	case region == "":
		return key
	case account != "":
		return account + "/" + region
	}
	return region
}

func (wf *waterfall) rowFor(rows map[string]*row, label string, b *bar) {
	r := rows[label]
	if r == nil {
		r = &row{label: label}
		rows[label] = r
	}
	r.bars = append(r.bars, b)
	r.last = latest(r.last, b.end)
}

// layout orders a row's bars and puts each in the first lane free at its
// start.
func (r *row) layout() {
	slices.SortStableFunc(r.bars, func(a, b *bar) int { return a.start.Compare(b.start) })
	var ends []time.Time
	for _, b := range r.bars {
		b.lane = slices.IndexFunc(ends, func(t time.Time) bool { return !t.After(b.start) })
		if b.lane < 0 {
			b.lane = len(ends)
			ends = append(ends, time.Time{})
		}
		ends[b.lane] = b.end
	}
	r.lanes = max(1, len(ends))
}

// addLimits gives each row the samples of its clients' adaptive limit. A
// sample names the account only with the pool's AccountAttribute, and
// then also for the pool's own account, whose items name none: a sample
// whose account has no row goes to its region's row.
func (wf *waterfall) addLimits(rows map[string]*row, samples []Sample) {
	for _, s := range samples {
		region := str(s.Properties[propRegion])
		if s.Name != limitGauge || region == "" {
			continue
		}
		r := rows[rowLabel(s.Properties, "")]
		if r == nil {
			r = rows[region]
		}
		if r == nil {
			continue
		}
		r.limit = append(r.limit, s)
		wf.limits.add(s.Value)
	}
	for _, r := range rows {
		slices.SortStableFunc(r.limit, func(a, b Sample) int { return a.Time.Compare(b.Time) })
	}
}

// scale maps the adaptive limits on a log scale, from the lowest one
// sampled to the highest: a limit that drops from 2 to 0.02 requests per
// round trip falls as far from 2 to 0.2 as from 0.2 to 0.02.
type scale struct{ lo, hi float64 } // positive, or 0 before a positive sample

func (s *scale) add(v float64) {
	if v > 0 {
		s.lo, s.hi = cmp.Or(min(s.lo, v), v), max(s.hi, v)
	}
}

// at returns where v falls, from 0 at the lowest sample to 1 at the
// highest; 0.5 for all when they are equal. A limit of 0 or less, which
// the adaptive limit never is, is put at the lowest.
func (s scale) at(v float64) float64 {
	switch {
	case s.hi <= s.lo*1.0001:
		return 0.5
	case v <= s.lo:
		return 0
	}
	return math.Log(v/s.lo) / math.Log(s.hi/s.lo)
}

func str(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	}
	return fmt.Sprint(v)
}

// num reads a numeric property of any Go numeric type; 0 if it is not one.
func num(v any) float64 {
	switch v := v.(type) {
	case int:
		return float64(v)
	case int32:
		return float64(v)
	case int64:
		return float64(v)
	case uint:
		return float64(v)
	case uint32:
		return float64(v)
	case uint64:
		return float64(v)
	case float32:
		return float64(v)
	case float64:
		return v
	}
	return 0
}
