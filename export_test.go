package fanout

import "time"

// SetAdaptiveClock replaces a's clock, so that tests move time by hand.
func SetAdaptiveClock(a *Adaptive, now func() time.Time) { a.now = now }

// AdaptivePace is a's pacing decision for a request starting now: how
// long it waits.
func AdaptivePace(a *Adaptive) time.Duration { return a.pace() }
