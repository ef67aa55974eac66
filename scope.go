package fanout

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// scope is one group of items under Options.Scope. It is admitted once,
// when its first item starts, and holds one unit of the call's ScopeLimit
// until its last item ends.
type scope struct {
	items     []int // indexes of the scope's keys, in input order
	once      sync.Once
	admitted  atomic.Bool
	remaining atomic.Int64 // items not yet finished
}

// groupScopes orders the items scope by scope, in order of each scope's
// first key. Claiming contiguous scopes is what keeps ScopeLimit free of
// deadlock: a worker waits for a scope slot only once every item of the
// scopes before it has been claimed, so those scopes can finish.
func (r *run[T]) groupScopes() (err error) {
	defer recoverInto(&err)
	byName := make(map[string]*scope)
	var scopes []*scope // in order of first key
	r.scopeOf = make([]*scope, len(r.keys))
	for i, key := range r.keys {
		name := r.opts.Scope(key)
		sc, ok := byName[name]
		if !ok {
			sc = new(scope)
			byName[name] = sc
			scopes = append(scopes, sc)
		}
		sc.items = append(sc.items, i)
		r.scopeOf[i] = sc
	}
	r.order = make([]int, 0, len(r.keys))
	for _, sc := range scopes {
		sc.remaining.Store(int64(len(sc.items)))
		r.order = append(r.order, sc.items...)
	}
	if r.opts.ScopeLimit > 0 {
		r.scopeSem = semaphore.NewWeighted(int64(r.opts.ScopeLimit))
	}
	return nil
}

// enterScope admits the item's scope if it is not in flight yet, and
// reports false if the call's context ended first.
func (r *run[T]) enterScope(sc *scope) bool {
	if r.scopeSem == nil {
		return true
	}
	sc.once.Do(func() { sc.admitted.Store(r.scopeSem.Acquire(r.ctx, 1) == nil) })
	return sc.admitted.Load()
}

func (r *run[T]) leaveScope(sc *scope) {
	if sc.remaining.Add(-1) == 0 && sc.admitted.Load() {
		r.scopeSem.Release(1)
	}
}
