package fanout

import (
	"context"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// weighted is a [semaphore.Weighted] that counts the callers blocked on
// it. A worker that runs item after item of weight 1 keeps its unit from
// one item to the next for as long as no one is blocked on the semaphore
// (see run.keep): a release and an acquire per item cost close to half
// of the engine's time on a quick item, and they change nothing while no
// one else wants the unit.
type weighted struct {
	sem     *semaphore.Weighted
	waiting atomic.Int64
}

func newWeighted(size int64) *weighted { return &weighted{sem: semaphore.NewWeighted(size)} }

// acquire is semaphore.Weighted.Acquire, counted among the waiters while it
// blocks. Like Acquire, it fails when ctx is done even if w is free.
func (s *weighted) acquire(ctx context.Context, w int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.sem.TryAcquire(w) {
		return nil
	}
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	return s.sem.Acquire(ctx, w)
}

func (s *weighted) release(w int64) { s.sem.Release(w) }

// acquireAll acquires w on each of sems in order, or, if ctx ends first,
// on none of them.
func acquireAll(ctx context.Context, sems []*weighted, w int64) bool {
	for k, s := range sems {
		if s.acquire(ctx, w) != nil {
			releaseAll(sems[:k], w)
			return false
		}
	}
	return true
}

func releaseAll(sems []*weighted, w int64) {
	for _, s := range sems {
		s.release(w)
	}
}

// wanted reports whether anyone is blocked on any of sems.
func wanted(sems []*weighted) bool {
	for _, s := range sems {
		if s.waiting.Load() > 0 {
			return true
		}
	}
	return false
}
