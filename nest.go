package fanout

import (
	"context"
	"sync"
	"sync/atomic"
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
// semaphores that stand for them in the calls nested in the item; lent
// is set once it holds one, so that no later item of the worker shares
// them (worker.context).
type held struct {
	parent    *held
	sems      []*weighted
	w         int64
	scopeSems []*weighted

	mu      sync.Mutex
	private map[*weighted]*weighted
	lent    atomic.Bool
}

// valueCtx is what context.WithValue makes for a key of type K, with the
// value in the same allocation, so that a context and what it carries
// cost one allocation, or none when reused.
type valueCtx[K comparable, V any] struct {
	context.Context
	v V
}

// String names the context without reading what it carries, which
// another goroutine may be changing, as fmt's reflection would.
func (c *valueCtx[K, V]) String() string { return contextName(c.Context) + ".WithValue(fanout)" }

func (c *valueCtx[K, V]) Value(key any) any {
	if _, ok := key.(K); ok {
		return &c.v
	}
	return c.Context.Value(key)
}

// heldCtx is an item's context, carrying what the item holds. A worker
// reuses it from item to item (see worker.context).
type heldCtx = valueCtx[heldKey, held]

func heldIn(ctx context.Context) *held {
	h, _ := ctx.Value(heldKey{}).(*held)
	return h
}

// units returns the innermost enclosing item that holds the shared
// semaphore s, and how much of it.
func (h *held) units(s *weighted) (*held, int64) {
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
func (h *held) holdsAny(sems ...*weighted) bool {
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
func (h *held) stand(s *weighted, size int64) (*weighted, int64) {
	owner, u := h.units(s)
	if owner == nil {
		return newWeighted(size), size
	}
	owner.mu.Lock()
	defer owner.mu.Unlock()
	p, ok := owner.private[s]
	if !ok {
		if owner.private == nil {
			owner.private = make(map[*weighted]*weighted)
		}
		p = newWeighted(u)
		owner.private[s] = p
		owner.lent.Store(true)
	}
	return p, u
}

// context returns the context of the worker's next item, of weight wt: the
// one of its last item when that held the same and no call nested in it
// made private semaphores from it, since then nothing tells the items
// apart; a new one otherwise, so that no two items share private
// semaphores, even when a call nested in one outlives it. A call nested in
// an item must end with it (see Run); one that starts only after the next
// item has begun on a reused context shares that item's private
// semaphores and may wait for it.
//
// An item with a span or a trace task of its own gets a context of its own
// over them.
func (w *worker[K, T]) context(wt int64) *heldCtx {
	r := w.r
	if base := w.it.ctx; base != nil {
		w.ctx = nil
		return &heldCtx{Context: base, v: held{parent: r.parent, sems: r.shared, w: wt, scopeSems: r.sharedScopes}}
	}
	if c := w.ctx; c != nil && c.v.w == wt && !c.v.lent.Load() {
		return c
	}
	w.ctx = &heldCtx{Context: r.ctx, v: held{parent: r.parent, sems: r.shared, w: wt, scopeSems: r.sharedScopes}}
	return w.ctx
}
