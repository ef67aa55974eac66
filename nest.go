package fanout

import (
	"context"

	"golang.org/x/sync/semaphore"
)

// Nested calls. An operation that starts a call on its own Fanout, or on
// another Fanout sharing its Budget, must not wait for units its own item
// holds: once the outer items hold the whole limit, the inner calls would
// wait for ever. So an item's context records what it holds of each
// shared semaphore, and a call made under that context runs within it: a
// private semaphore of that size stands in for the shared one. The bound
// holds, since the inner items only use what their parent item holds, and
// the inner call makes progress, since its parent holds at least 1.

// heldKey is the context key of what the running item holds.
type heldKey struct{}

// held is what the items of one call hold: w units of each of sems and one
// of each of scopeSems, all named by the shared semaphores they stand for,
// on top of what the enclosing item holds (parent).
type held struct {
	parent    *held
	sems      []*semaphore.Weighted
	w         int64
	scopeSems []*semaphore.Weighted
}

// units returns how much of the shared semaphore s the innermost enclosing
// item holds, and whether it holds any.
func (h *held) units(s *semaphore.Weighted) (int64, bool) {
	for ; h != nil; h = h.parent {
		for _, hs := range h.sems {
			if hs == s {
				return h.w, true
			}
		}
		for _, hs := range h.scopeSems {
			if hs == s {
				return 1, true
			}
		}
	}
	return 0, false
}

func heldIn(ctx context.Context) *held {
	h, _ := ctx.Value(heldKey{}).(*held)
	return h
}

// within returns s, or, when the enclosing item holds units of s, a
// private semaphore of that size to use in its place.
func (h *held) within(s *semaphore.Weighted) (*semaphore.Weighted, int64) {
	if u, ok := h.units(s); ok {
		return semaphore.NewWeighted(u), u
	}
	return s, 0
}

// holding returns the context of an item that holds w units of the
// call's shared semaphores and one of its shared scope semaphores. Items
// of weight 1 share one such context per call (see newRun).
func (r *run[T]) holding(w int64) context.Context {
	if w == 1 {
		return r.ctx
	}
	return context.WithValue(r.ctx, heldKey{}, r.held(w))
}

func (r *run[T]) held(w int64) *held {
	return &held{parent: r.parent, sems: r.shared, w: w, scopeSems: r.sharedScopes}
}
