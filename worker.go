package fanout

import "time"

// worker is one goroutine of a call, and what it carries from one item to
// the next so that a quick item costs little more than the call of op:
// its units, its context and its last clock reading.
type worker[K, T any] struct {
	r *run[K, T]

	// held: the worker holds one unit of each of r.sems, kept from its last
	// item (run.keep) as no one was blocked on them. Every item it runs
	// meanwhile holds that unit, so the bound is the same as with a release
	// and an acquire per item; and since it gives the units back after any
	// item that someone waits for, the semaphores' first-come order still
	// shares them between calls item by item.
	held bool

	ctx   *heldCtx   // its items' context (see context)
	it    itemTel    // its item's telemetry
	timer *itemTimer // its items' deadlines under ItemTimeout (itemctx.go)

	// since is where the next item's Elapsed starts: the clock when the
	// worker got its units, or, while it keeps them, at the end of its last
	// item, since only the engine's bookkeeping ran in between. One reading
	// of the clock per item instead of two.
	since time.Duration
}

// acquire takes wt units of each of the call's semaphores for the item,
// unless the worker kept them from its last item.
func (w *worker[K, T]) acquire(wt int64) bool {
	if w.held {
		return true
	}
	if !acquireAll(w.r.ctx, w.r.sems, wt) {
		return false
	}
	w.held = w.r.keep
	w.since = w.r.clock()
	return true
}

// release gives back the item's units, which ended at end, unless the
// worker may keep them for its next item.
func (w *worker[K, T]) release(wt int64, end time.Duration) {
	if w.held && !wanted(w.r.sems) {
		w.since = end
		return
	}
	releaseAll(w.r.sems, wt)
	w.held = false
}

// leave gives back the units the worker kept.
func (w *worker[K, T]) leave() {
	if w.held {
		releaseAll(w.r.sems, 1)
		w.held = false
	}
}

// clock reads the monotonic clock alone, as time since the call began:
// half the cost of time.Now, which reads the wall clock too.
func (r *run[K, T]) clock() time.Duration { return time.Since(r.t0) }
