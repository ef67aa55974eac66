package fanout_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/awsfanout/fanout"
)

// FuzzRun checks, over limits, weights and failure patterns, that every key
// gets exactly one result, the bound holds, and Run ends.
func FuzzRun(f *testing.F) {
	f.Add(uint8(4), uint16(50), uint64(1), uint64(0b1011), false, false)
	f.Add(uint8(1), uint16(3), uint64(7), uint64(0), true, false)
	f.Add(uint8(16), uint16(200), uint64(42), ^uint64(0), true, true)
	f.Add(uint8(0), uint16(0), uint64(0), uint64(0), false, true)
	f.Fuzz(func(t *testing.T, limit uint8, n uint16, seed, failures uint64, failFast, panics bool) {
		keys := make([]string, n%400)
		for i := range keys {
			keys[i] = strconv.Itoa(i)
		}
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		weights := make(map[string]int64, len(keys))
		for _, k := range keys {
			weights[k] = rng.Int64N(int64(limit)+3) - 1 // includes 0, -1 and above the limit
		}
		var c inflight
		lim := int64(limit)
		fo := fanout.New[int](func(o *fanout.Options) {
			o.Limit = int64(limit)
			o.FailFast = failFast
			o.Weight = func(k string) int64 { return weights[k] }
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := fo.Run(ctx, keys, func(ctx context.Context, k string) (int, error) {
			w := weights[k]
			c.add(w)
			defer c.add(-w)
			i, _ := strconv.Atoi(k)
			if failures>>(i%64)&1 == 1 {
				if panics {
					panic(k)
				}
				return 0, errors.New(k)
			}
			return i, nil
		})
		if ctx.Err() != nil {
			t.Fatal("Run did not end within 10s")
		}
		if limit == 0 { // cannot be honoured: nothing runs
			if res != nil || err == nil || !strings.Contains(err.Error(), "Options.Limit is 0") || c.peak.Load() != 0 {
				t.Fatalf("Limit 0: %d results, err %v, peak %d", len(res), err, c.peak.Load())
			}
			return
		}
		if len(res) != len(keys) {
			t.Fatalf("%d results for %d keys", len(res), len(keys))
		}
		for i, r := range res {
			if r.Index != i || r.Key != keys[i] || (r.Err != nil && r.Value != 0) || (r.Err == nil && r.Value != i) {
				t.Fatalf("result %d: %+v", i, r)
			}
			if w := weights[keys[i]]; (w < 1 || w > lim) && r.Err == nil {
				t.Fatalf("item %d with weight %d under limit %d succeeded", i, w, lim)
			}
		}
		if p := c.peak.Load(); p > lim {
			t.Fatalf("peak weight %d above limit %d", p, lim)
		}
		if (err == nil) != (len(res.Failed()) == 0) {
			t.Fatalf("err %v with %d failed", err, len(res.Failed()))
		}
	})
}
