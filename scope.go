package fanout

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// scope is one group of items under Options.Scope. It is admitted once,
// when its first item starts, and holds one unit of each ScopeLimit over
// the call until its last item ends.
type scope struct {
	items     []int // indexes of the scope's keys, in input order
	once      sync.Once
	admitted  atomic.Bool
	remaining atomic.Int64 // items not yet finished
}

// groupScopes orders the items scope by scope, in order of each scope's
// first key, and sets the ScopeLimits over the call: its own, when it caps
// the Fanout's, then the Fanout's shared one. Claiming contiguous scopes is
// what keeps ScopeLimit free of deadlock: a worker waits for a scope slot
// only once every item of the scopes before it has been claimed, so those
// scopes can finish, whatever other calls hold of a shared slot.
func (r *run[K, T]) groupScopes(shared int, sharedSem *weighted) (err error) {
	if r.scopeName == nil {
		// A ScopeLimit from New waits for the calls that have a Scope.
		if r.opts.ScopeLimit > 0 && r.opts.ScopeLimit != shared {
			return fmt.Errorf("fanout: Options.ScopeLimit is %d but Options.Scope is nil", r.opts.ScopeLimit)
		}
		return nil
	}
	if r.pull != nil {
		return errors.New("fanout: Options.Scope orders the items scope by scope, which needs them all up front; give a slice, not a sequence")
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("fanout: Options.Scope: %w", err)
		}
	}()
	defer recoverInto(&err)
	byName := make(map[string]*scope)
	var scopes []*scope // in order of first key
	r.scopeOf = make([]*scope, len(r.items))
	for i, item := range r.items {
		name := r.scopeName(item)
		sc, ok := byName[name]
		if !ok {
			sc = new(scope)
			byName[name] = sc
			scopes = append(scopes, sc)
		}
		sc.items = append(sc.items, i)
		r.scopeOf[i] = sc
	}
	r.scopes = scopes
	r.order = make([]int, 0, len(r.items))
	for _, sc := range scopes {
		sc.remaining.Store(int64(len(sc.items)))
		r.order = append(r.order, sc.items...)
	}
	if l := r.opts.ScopeLimit; l > 0 && (shared == 0 || l < shared) {
		r.scopeSems = append(r.scopeSems, newWeighted(int64(l)))
	}
	if sharedSem != nil {
		r.sharedScopes = append(r.sharedScopes, sharedSem)
		sem := sharedSem
		if r.nested {
			sem, _ = r.parent.stand(sharedSem, int64(shared))
		}
		r.scopeSems = append(r.scopeSems, sem)
	}
	return nil
}

// enterScope admits the item's scope if it is not in flight yet, and
// reports false if the call's context ended first.
func (r *run[K, T]) enterScope(sc *scope) bool {
	if r.scopeSems == nil {
		return true
	}
	sc.once.Do(func() { sc.admitted.Store(acquireAll(r.ctx, r.scopeSems, 1)) })
	return sc.admitted.Load()
}

func (r *run[K, T]) leaveScope(sc *scope) {
	if sc.remaining.Add(-1) == 0 && sc.admitted.Load() {
		releaseAll(r.scopeSems, 1)
	}
}

// releaseScopes gives back the slots of the scopes that were admitted but
// whose items did not all run, once the call's workers are done: a Stream
// left early claims no more items, so those scopes never reach their end.
func (r *run[K, T]) releaseScopes() {
	for _, sc := range r.scopes {
		if sc.admitted.Load() && sc.remaining.Swap(0) > 0 {
			releaseAll(r.scopeSems, 1)
		}
	}
}
