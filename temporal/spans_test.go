package temporal

import (
	"sort"
	"testing"
	"time"
)

// logSpans logs how long accounts took, first call to last, and how
// many made calls at once.
func logSpans(t *testing.T, calls []call) {
	first, last := map[string]time.Time{}, map[string]time.Time{}
	for _, c := range calls {
		if f, ok := first[c.account]; !ok || c.at.Before(f) {
			first[c.account] = c.at
		}
		if c.at.After(last[c.account]) {
			last[c.account] = c.at
		}
	}
	var durs []time.Duration
	type ev struct {
		at time.Time
		d  int
	}
	var evs []ev
	for a := range first {
		durs = append(durs, last[a].Sub(first[a]))
		evs = append(evs, ev{first[a], 1}, ev{last[a], -1})
	}
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	sort.Slice(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	n, peak := 0, 0
	for _, e := range evs {
		n += e.d
		peak = max(peak, n)
	}
	t.Logf("account span p50 %v p90 %v max %v; peak accounts at once %d", durs[len(durs)/2], durs[len(durs)*9/10], durs[len(durs)-1], peak)
}
