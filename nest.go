package fanout

import (
	"context"
	"sync"

	"golang.org/x/sync/semaphore"
)

// Nested calls. An operation that starts a call on its own Fanout, or on
// another Fanout sharing its Budget, must not wait for units its own item
// holds: once the outer items hold the whole limit, the inner calls would
// wait for ever. So each item's context records what the item holds of the
// shared semaphores, and a call made under that context is nested: it
// waits on no shared semaphore at all, so it can be no link of a cycle.
//
//   - For a shared semaphore its item holds, the nested call uses a private
//     one of the size the item holds, shared by every call nested in that
//     item: the bound holds, since nested items only use what their parent
//     item holds, and they make progress, since it holds at least 1.
//   - For a shared semaphore its item does not hold (the nested call's own
//     Fanout's Limit, when that Fanout is another one sharing the Budget),
//     the nested call uses a private one of the same size: the limit caps
//     the nested call by itself, not together with the Fanout's other calls.
//
// A nested call must end before its item does; a goroutine that keeps the
// item's context past its end is no longer bounded by what the item held.

// heldKey is the context key of what the running item holds.
type heldKey struct{}

// held is what one running item holds: w units of each of sems and one of
// each of scopeSems, all named by the shared semaphores they stand for, on
// top of what its enclosing item holds (parent). private holds the
// semaphores that stand for them in the calls nested in the item.
type held struct {
	parent    *held
	sems      []*semaphore.Weighted
	w         int64
	scopeSems []*semaphore.Weighted

	mu      sync.Mutex
	private map[*semaphore.Weighted]*semaphore.Weighted
}

// heldCtx is an item's context: one allocation carries both the context
// and what the item holds.
type heldCtx struct {
	context.Context
	h held
}

func (c *heldCtx) Value(key any) any {
	if key == (heldKey{}) {
		return &c.h
	}
	return c.Context.Value(key)
}

func heldIn(ctx context.Context) *held {
	h, _ := ctx.Value(heldKey{}).(*held)
	return h
}

// units returns the innermost enclosing item that holds the shared
// semaphore s, and how much of it.
func (h *held) units(s *semaphore.Weighted) (*held, int64) {
	for ; h != nil; h = h.parent {
		for _, hs := range h.sems {
			if hs == s {
				return h, h.w
			}
		}
		for _, hs := range h.scopeSems {
			if hs == s {
				return h, 1
			}
		}
	}
	return nil, 0
}

// holdsAny reports whether an enclosing item holds any of sems: whether a
// call that shares them is nested.
func (h *held) holdsAny(sems ...*semaphore.Weighted) bool {
	for _, s := range sems {
		if s == nil {
			continue
		}
		if owner, _ := h.units(s); owner != nil {
			return true
		}
	}
	return false
}

// stand returns the semaphore a nested call uses for the shared semaphore
// s of the given size, and the size of the one it returns.
func (h *held) stand(s *semaphore.Weighted, size int64) (*semaphore.Weighted, int64) {
	owner, u := h.units(s)
	if owner == nil {
		return semaphore.NewWeighted(size), size
	}
	owner.mu.Lock()
	defer owner.mu.Unlock()
	p, ok := owner.private[s]
	if !ok {
		if owner.private == nil {
			owner.private = make(map[*semaphore.Weighted]*semaphore.Weighted)
		}
		p = semaphore.NewWeighted(u)
		owner.private[s] = p
	}
	return p, u
}

// holding returns the context of an item that holds w units of the
// call's shared semaphores and one of its shared scope semaphores.
func (r *run[T]) holding(w int64) context.Context {
	return &heldCtx{Context: r.ctx, h: held{parent: r.parent, sems: r.shared, w: w, scopeSems: r.sharedScopes}}
}
