package fanout

import "time"

// SetAdaptiveClock replaces a's clock, so that tests move time by hand.
func SetAdaptiveClock(a *Adaptive, now func() time.Time) { a.now = now }

// AdaptivePace is a's pacing decision for a request starting now: how
// long it waits.
func AdaptivePace(a *Adaptive) time.Duration {
	d, _, _, _ := a.pace()
	return d
}

// GuardAdaptiveCalls is the API option that gives back the places of a
// call's attempts when something under the retry middleware panics.
var GuardAdaptiveCalls = guardCalls

// AdaptiveNextStart is the earliest time a's pacing lets the next request
// start.
func AdaptiveNextStart(a *Adaptive) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.next
}

// AdaptiveGap is the time a's pacing puts between request starts.
func AdaptiveGap(a *Adaptive) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gap()
}
