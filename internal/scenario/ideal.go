package scenario

import (
	"context"
	"sync"
	"time"

	"github.com/awsfanout/fanout/fanouttest"
)

// IdealCalls is the wall time of n calls that take call each, limit at a
// time, with nothing else in the way: n x call / limit, and never less than
// one call.
func IdealCalls(n int, call time.Duration, limit int) time.Duration {
	if n <= 0 || limit <= 0 {
		return 0
	}
	return max(call, time.Duration(n)*call/time.Duration(limit))
}

// IdealBucket is the wall time of n calls that take call each, limit at a
// time, against a token bucket with PerSecond above 0 (or the zero Bucket,
// which does not limit): the larger of IdealCalls and what the bucket lets
// through. fanouttest creates a bucket full when the first request
// arrives, and decides on each request as it arrives, before its latency:
// the n-th token is taken no sooner than (n - Burst) / PerSecond after the
// first, and its answer takes a call more, so the last call cannot end
// before call + (n - Burst) / PerSecond.
func IdealBucket(n int, call time.Duration, limit int, b fanouttest.Bucket) time.Duration {
	calls := IdealCalls(n, call, limit)
	if b.PerSecond <= 0 || n <= b.Burst {
		return calls
	}
	drain := time.Duration(float64(n-b.Burst) / b.PerSecond * float64(time.Second))
	return max(calls, call+drain)
}

// Calibration sizes the runs CallTime makes: Calls sequential calls, or
// fewer once they have taken Budget, but at least 5.
var Calibration = struct {
	Calls  int
	Budget time.Duration
}{Calls: 50, Budget: 2 * time.Second}

var callTimes = struct {
	sync.Mutex
	m map[fanouttest.Latency]time.Duration
}{m: map[fanouttest.Latency]time.Duration{}}

// CallTime is how long one DescribeInstances call takes at Limit 1 against
// a fanouttest server with latency l and no throttling, through a client
// with the SDK's defaults: the mean of a calibration run (see Calibration)
// after one call that opens the connection. It is measured once per
// latency in a process, and the ideals build on it.
func CallTime(ctx context.Context, l fanouttest.Latency) (time.Duration, error) {
	callTimes.Lock()
	defer callTimes.Unlock()
	if d, ok := callTimes.m[l]; ok {
		return d, nil
	}
	d, err := calibrate(ctx, l)
	if err != nil {
		return 0, err
	}
	callTimes.m[l] = d
	return d, nil
}

func calibrate(ctx context.Context, l fanouttest.Latency) (time.Duration, error) {
	srv, err := fanouttest.New(fanouttest.Config{Instances: 1, Latency: l})
	if err != nil {
		return 0, err
	}
	defer srv.Close()
	clients := plainClients(srv.AWSConfig("us-east-1"))
	defer clients.close()
	c := clients.get("us-east-1")
	if _, err := describeOnce(ctx, c); err != nil {
		return 0, err
	}
	n, start := 0, time.Now()
	for n < Calibration.Calls && (n < 5 || time.Since(start) < Calibration.Budget) {
		if _, err := describeOnce(ctx, c); err != nil {
			return 0, err
		}
		n++
	}
	return time.Since(start) / time.Duration(n), nil
}

// ComparePeers sets BestPeer and XBestPeer on each of one scenario's
// outcomes: the best peer is the fastest of the peers (every
// implementation but Fanout and the References) that failed the fewest calls, since a peer
// that ends sooner by failing calls has not done the work. With no peer
// among outs, it sets nothing.
func ComparePeers(outs []Outcome) {
	best := -1
	for i, o := range outs {
		if o.Impl == Fanout || o.Reference {
			continue
		}
		if best < 0 || o.Failed < outs[best].Failed || o.Failed == outs[best].Failed && o.WallS < outs[best].WallS {
			best = i
		}
	}
	if best < 0 {
		return
	}
	for i := range outs {
		outs[i].BestPeer = outs[best].Impl
		if outs[best].WallS > 0 {
			outs[i].XBestPeer = outs[i].WallS / outs[best].WallS
		}
	}
}
