package fanout

import (
	"cmp"
	"math"
	"time"
)

// The edge of a small bucket.
//
// A bucket of one token admits a request if, and only if, the last one it
// admitted came at least one over its rate before: it banks nothing, so
// every moment a client paces below the rate is lost for good, and a
// request a little early is throttled at once. A climb and a cut, as the
// law for every other quota goes, cost such a client a fifth of its time.
// But the bucket's answers say where its rate is. Each answered request's
// gap, the time from the start of the last request admitted before it, is
// either too short (throttled) or long enough (admitted): the gap of the
// rate lies between the longest gap throttled (lo) and the shortest
// admitted (hi).
//
// A client whose first burst met a small bucket (see smallBucket) reads
// its paced requests so at each cut, if they read as a bucket of one
// token's: no admitted gap shorter than a throttled one by more than a
// tenth (see gaps). A request that reached the bucket late, because the
// machine or the network held it, makes the requests after it read
// short, and one admitted late reads as a short gap admitted: so of the
// throttles after an admitted request only the first counts (unless the
// admitted one before had throttles after it too, or a later one comes at
// twice its gap: then the rate fell), and a lone
// throttled gap past that tenth, with another that is not, is taken for
// such a request, not for the edge. It paces at the edge they show:
//
//   - its gap is the longer of lo and hi, 1% more: a gap a little too
//     short is throttled now and then, and costs one start each time,
//     while a margin for the jitter would cost every start;
//   - when hi is more than half as long again as lo, the middle of the two
//     (geometric), where each throttle or admission halves what is not
//     known; with no admitted gap yet, a quarter past lo;
//   - a cut never speeds the client up; the quota is one over lo.
//
// Between cuts the rate does not climb. Instead, every probeEvery starts,
// or once a second if that comes first, one request more goes out just
// ahead of the next start: at a gap from the last one shorter by the
// probe's step (4%, or 5% a second of the gap, if more; the first after a
// cut, at the middle of the gap and lo, if that is shorter). It costs
// nothing but an attempt: the start after it keeps its place, and if the
// probe is throttled, that start finds the token the probe did not take.
// If the probe is admitted, its gap, 1% more, is the new gap (by at most
// twice the step, and only while the limit is used, to no shorter than the
// requests in flight use: see used; otherwise the gap and the step stay as
// they are), and the step doubles for the next probe; if not, the
// step starts over. Either way it cuts nothing, nor does a throttle of
// the start after it, which the probe may have caused. An admitted
// probe's gap is known once the request before it is answered: at a
// round trip of many gaps, jittered by more than one, that one is often
// still out when the probe's answer comes (a third of the probes
// admitted, at 200 a second and 200ms), and the probe waits for it; a
// cut before that answer reads the edge anew, and drops it.
//
// A probe admitted at a gap shorter than lo says the bucket is faster
// than it was, or that the jitter favoured it: a little short, the gap
// goes to lo, 1% more; but the next probe admitted a little short too says
// lo is the old quota's: the gaps from the first of the two on (or from
// the last cut, if later) are read anew, the probe's gap is taken as any
// admitted probe's is, and until a cut reads the edge again, the lo
// forgotten stands in for one with no throttle read since. A cut at the
// edge between the two does not break the row: a request held on its way
// throttles the one after it at the client's own gap, and at a round trip
// of many gaps such a cut comes between most probes, each raising the gap
// 1%. (A bucket of two, whose banked token admits such probes, drains as
// the gap shortens, and the throttle that follows reads the edge again.)
// Well short of lo (by twice the least step), the client takes it that
// the quota grew: it leaves the edge, forgets the gaps before, and climbs
// by slow start; the next throttle finds the edge again. Requests that do
// not read as a bucket of one token's (a bucket of two, or a bigger one
// another client had left empty, banks tokens) take the client back to
// the law for every quota (see cut).

// The edge's constants (see above).
const (
	edgeMargin  = 0.01 // over the gap the requests show
	edgeCross   = 1.1  // how far an admitted gap may fall short of a throttled one
	edgeWide    = 1.5  // hi over lo past which the gap goes to the middle
	edgeDescent = 0.25 // past lo, with no admitted gap yet

	edgeRead     = 64 // requests gaps reads (see readFrom)
	edgeAnswered = 16 // of them answered, at least

	probeEvery = 16          // starts between probes
	probeOnce  = time.Second // or a probe at least this often
	probeStep  = 0.04        // the least step
)

// probes is what a client at the edge keeps of its probes.
type probes struct {
	at    time.Time     // the start of the probe out, if any
	won   time.Time     // the start of the last probe admitted
	last  time.Time     // the start of the last probe
	step  float64       // the next probe's gap is the gap over 1+step
	since int           // starts since the last probe
	held  time.Time     // the start of a probe admitted whose gap waits on the request before it, still out
	short time.Time     // the start of the first of two probes in a row admitted a little short of lo, if one was
	gone  time.Duration // the lo the last row forgot, until a cut reads the edge again
}

// edgeReading is what gaps reads off the paced requests.
type edgeReading struct {
	lo  time.Duration // the longest gap throttled
	hi  time.Duration // the shortest gap admitted
	run time.Duration // the longest gap throttled since the last request admitted, if none is out since
	at  time.Duration // when that request started, since the log's base
}

// gaps reads the newest requests held (see readFrom), those started
// since forget, as a bucket
// of one token would answer them (a gap is the time from the start of the
// last request admitted before); with no admitted gap yet, hi is a quarter
// past lo. A request between that is still out, or was cut short, may
// have taken a token or not: the gap of an admitted request is still no
// longer than from the last admitted, but that of a throttled one is only
// known to be no shorter than from the last of those, which is what lo
// counts. (At a round trip of many gaps, jittered by more than one, the
// requests just before a throttled one are often out when it comes back:
// read as unknown, it took the client off the edge.) One given back
// unsent took nothing, and is read as never started. ok
// says whether they read so: a gap throttled, and no admitted one shorter
// than a throttled one by more than edgeCross.
//
// Of the throttles after one admitted request, lo counts the first, and a
// later one only at twice its gap or more, or if a request was throttled
// after the admitted one before too: a bucket that meets a request late
// (the machine, the network) refills late, and throttles the requests
// after it at gaps longer than its rate by as much as it was late. Their
// gaps say how late that one was, not where the rate is, unless it comes
// again after the next (then the rate fell); run keeps them, for the next
// start to wait out. And the longest throttled
// gap past edgeCross, when the second longest is not, is taken for a
// request that reached the bucket late, or for one admitted late: lo is
// the second.
func (l *pacedLog) gaps() (e edgeReading, ok bool) {
	var lo, lo2, hi time.Duration // lo2: the second longest gap throttled
	var last, first, run time.Duration
	var from time.Duration // a throttled gap counts from: last, or a later start not answered
	known := false
	// Whether a request was throttled since the last admitted one (first
	// is its gap), and since the one admitted before.
	throttled, before := false, false
	hi = -1
	for k := l.readFrom(); k < l.n; k++ {
		r := l.reqs[k%len(l.reqs)]
		if r.at < l.forget {
			continue
		}
		switch {
		case r.admitted():
			if known && (hi < 0 || r.at-last < hi) {
				hi = r.at - last
			}
			last, from, known, run = r.at, r.at, true, 0
			throttled, before = false, throttled
		case r.throttled():
			if !known {
				break
			}
			g := r.at - from
			counts := !throttled || g >= 2*first || before
			if !throttled {
				first, throttled = g, true
			}
			if counts {
				switch {
				case g > lo:
					lo, lo2 = g, lo
				case g > lo2:
					lo2 = g
				}
			}
			if from == last { // the run is waited out from last: none out since
				run = max(run, g)
			}
		case r.notSent():
		default:
			from, run = r.at, 0
		}
	}
	if lo > 0 && hi < 0 {
		hi = time.Duration(float64(lo) * (1 + edgeDescent))
	}
	if cross := time.Duration(float64(hi) * edgeCross); lo >= cross && lo2 > 0 && lo2 < cross {
		lo = lo2
	}
	return edgeReading{lo, hi, run, last}, lo > 0 && float64(lo) < float64(hi)*edgeCross
}

// readFrom is the first request gaps reads: of the newest edgeRead, or
// further back, to the newest edgeAnswered answered, if fewer answered
// (at a round trip of many gaps, most of the newest are still out). A
// reading over more than that counts more held requests as edges, and
// forgets an edge that was too long later.
func (l *pacedLog) readFrom() int {
	k, answered := l.n, 0
	l.all(func(_ int, r pacedReq) bool {
		if l.n-k >= edgeRead && answered >= edgeAnswered {
			return false
		}
		if r.answered() {
			answered++
		}
		k--
		return true
	})
	return k
}

// gapBefore is the gap of the request started at at, if known (see gaps);
// out says whether what stands in the way is a request still out, whose
// answer may tell it.
func (l *pacedLog) gapBefore(at time.Duration) (g time.Duration, ok, out bool) {
	l.all(func(_ int, r pacedReq) bool {
		switch {
		case r.at >= at || r.tookNone():
			return true
		case r.admitted():
			g, ok = at-r.at, true
		case !r.ended:
			out = true
		}
		return false
	})
	return g, ok, out
}

// cutAtEdge cuts to the edge the requests show, lo and hi as gaps reads
// them, and returns its gap: the client's, or where minRate holds the
// client faster, the longer one the edge shows.
func (a *Adaptive) cutAtEdge(lo, hi time.Duration) time.Duration {
	g := time.Duration(float64(max(lo, hi)) * (1 + edgeMargin))
	if float64(hi) > edgeWide*float64(lo) {
		g = time.Duration(math.Sqrt(float64(lo) * float64(hi)))
	}
	a.quota = 1 / lo.Seconds()
	a.setRate(min(1/g.Seconds(), a.rate))
	a.probe.at, a.probe.won, a.probe.held, a.probe.since, a.probe.gone = time.Time{}, time.Time{}, time.Time{}, 0, 0
	if !a.edge { // a row lives on through a cut at the edge, not through one that finds it
		a.probe.short = time.Time{}
	}
	a.probe.step = max(a.probeStep(), math.Sqrt(float64(g)/float64(lo))-1)
	if a.rate > minRate {
		return a.gap()
	}
	return g // the rate cannot follow it
}

// probeStep is the step a probe starts over with: probeStep, or 5% a
// second of the gap (huntPerSecond), if more. At a request every five
// seconds, a quota that grew a hundredfold is found in a few probes.
func (a *Adaptive) probeStep() float64 {
	return max(probeStep, huntPerSecond*a.gap().Seconds())
}

// probeRate is the rate of a probe's gap.
func (a *Adaptive) probeRate() float64 { return a.rate * (1 + a.probe.step) }

// probeStart is when a probe may start, if one is due, for a request
// asking at now: at the edge, with no probe out, probeEvery starts since
// the last (or one, a second after it), its gap from the last start
// before now and the next start.
func (a *Adaptive) probeStart(now time.Time) (time.Time, bool) {
	p := &a.probe
	every := probeEvery
	if now.Sub(p.last) >= probeOnce {
		every = 1
	}
	if !a.edge || !p.at.IsZero() || p.since < every || a.lastStart.IsZero() {
		return time.Time{}, false
	}
	t := a.lastStart.Add(time.Duration(float64(a.gap()) / (1 + p.step)))
	if t.Before(now) || !t.Before(a.next) {
		return time.Time{}, false
	}
	return t, true
}

// nextStart is the earliest start pace gives next.
func (a *Adaptive) nextStart() time.Time {
	if t, ok := a.probeStart(a.now()); ok {
		return t
	}
	return a.next
}

// probed says whether a throttle of the request started at start may be
// a probe's doing: it started within a gap after a probe out or admitted.
func (a *Adaptive) probed(start time.Time) bool {
	after := func(p time.Time) bool { return !p.IsZero() && start.After(p) && start.Sub(p) < a.gap() }
	return a.edge && (after(a.probe.at) || after(a.probe.won))
}

// probeEnded takes the answer o to the probe started at start.
func (a *Adaptive) probeEnded(start time.Time, o attemptEnd) {
	p := &a.probe
	p.at = time.Time{}
	if o != endAnswered {
		p.step, p.short = a.probeStep(), time.Time{}
		return
	}
	p.won, p.held = start, start
	a.probeHeld()
}

// probeHeld takes the gap of the probe admitted that waits on the request
// before it, if that one is answered now (or cut short: then the gap is
// not known).
func (a *Adaptive) probeHeld() {
	p := &a.probe
	if p.held.IsZero() {
		return
	}
	g, ok, out := a.paced.gapBefore(a.paced.since(p.held))
	if out {
		return
	}
	start := p.held
	p.held = time.Time{}
	if ok {
		a.probeAdmitted(start, g)
	}
}

// probeAdmitted takes the gap g of the probe started at start, admitted.
func (a *Adaptive) probeAdmitted(start time.Time, g time.Duration) {
	p := &a.probe
	e, _ := a.paced.gaps()
	first := p.short
	p.short = time.Time{}
	lo := cmp.Or(e.lo, p.gone) // what the last row forgot, if nothing throttled is read since
	switch {
	case float64(g) < float64(lo)*(1-2*probeStep): // the quota grew: off the edge; increase climbs, while the limit is used
		a.paced.forget = a.paced.since(start)
		a.edge, a.quota = false, 0
	case g >= e.lo:
	case first.IsZero():
		p.short = start
		g = e.lo // the jitter's, likely
	default: // the second in a row: lo is the old quota's
		if a.lastCut.After(first) {
			first = a.lastCut
		}
		a.paced.forget = a.paced.since(first)
		p.gone = e.lo
	}
	g = max(time.Duration(float64(g)*(1+edgeMargin)), time.Duration(float64(a.gap())/(1+2*p.step)))
	g = max(g, a.usedGap())
	if g >= a.gap() || !a.used(a.now()) {
		return
	}
	a.setRate(1 / g.Seconds())
	p.step = min(2*p.step, 1)
	// Space the starts given since anew, from the last one.
	anchor := start
	if last, ok := a.paced.newest(func(r pacedReq) bool { return r.probe }); ok && last.After(anchor) {
		anchor = last
	}
	a.lastStart, a.next = anchor, anchor.Add(a.gap())
	a.spaced++
}
