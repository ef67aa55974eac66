package fanout

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Fanout runs one operation per key, at most Limit weight at once, and
// returns one Result per key. The zero value is ready to use with zero
// Options. A Fanout is safe for concurrent use; its concurrent calls share
// its Limit.
type Fanout[T any] struct {
	once     sync.Once
	onDone   sync.Mutex // serializes OnDone across the Fanout's calls
	opts     *Options   // set by New; nil in the zero Fanout
	err      error      // invalid options given to New
	sem      *weighted  // the Fanout's Limit, shared by its calls
	scopeSem *weighted  // its ScopeLimit, when set, shared likewise
	limit    int64      // the smallest of its Limit and its Budget's size
}

// New returns a Fanout configured by optFns, applied in order to the
// default Options. Invalid options are not reported here but by every
// call, which then runs nothing.
func New[T any](optFns ...func(*Options)) *Fanout[T] {
	o := defaultOptions()
	f := &Fanout[T]{opts: &o, err: apply("New", &o, optFns)}
	f.init()
	return f
}

func (f *Fanout[T]) init() {
	f.once.Do(func() {
		if f.opts == nil {
			o := defaultOptions()
			f.opts = &o
		}
		if f.err == nil {
			f.err = f.opts.validate()
		}
		if f.err != nil {
			return
		}
		f.limit = f.opts.Limit
		f.sem = newWeighted(f.limit)
		if f.opts.ScopeLimit > 0 {
			f.scopeSem = newWeighted(int64(f.opts.ScopeLimit))
		}
		if b := f.opts.Budget; b != nil {
			f.limit = min(f.limit, b.size)
		}
	})
}

// Limit returns the most weight the Fanout lets run at once, across its
// calls: its Options.Limit, or its Budget's size if that is smaller; 0 if
// its options are invalid.
func (f *Fanout[T]) Limit() int64 {
	if f == nil {
		return 0
	}
	f.init()
	return f.limit
}

// options returns a copy of the Fanout's Options.
func (f *Fanout[T]) options() Options {
	f.init()
	return *f.opts
}

// Run calls op once per key, concurrently within the limits, and returns
// one Result per key in input order. Its error is Results.Err(): nil if
// and only if every item succeeded, else the items' errors joined.
//
// Run returns when every operation it started has returned. If ctx is
// cancelled, no new operation starts and the items that never started
// fail with ErrNotStarted and ctx's cause.
//
// Invalid options, a nil ctx or a nil op make Run return nil Results and
// an error that names the problem, without calling op.
func (f *Fanout[T]) Run(ctx context.Context, keys []string,
	op func(ctx context.Context, key string) (T, error), optFns ...func(*Options)) (Results[T], error) {
	r, err := f.newRun(ctx, keys, op, optFns)
	if err != nil {
		return nil, err
	}
	defer r.cancel(nil)
	results := make(Results[T], len(keys))
	r.deliver = func(res Result[T]) { results[res.Index] = res }
	r.keep = r.opts.Weight == nil && r.opts.OnDone == nil && r.scopeSems == nil
	r.wait(r.start())
	return results, results.Err()
}

// Stream calls op once per key, like Run, and yields each Result as its
// item finishes, in completion order. It holds no more results than the
// limit allows operations in flight, whatever the number of keys.
//
// When the loop over the sequence stops early, Stream cancels the
// operations still running, starts no new ones, and returns only after
// every goroutine it started has ended; the items it never started are not
// yielded. Each iteration of the sequence runs the operations anew.
//
// With invalid options, a nil ctx or a nil op, every key is yielded with
// that error and op is never called.
func (f *Fanout[T]) Stream(ctx context.Context, keys []string,
	op func(ctx context.Context, key string) (T, error), optFns ...func(*Options)) iter.Seq[Result[T]] {
	return func(yield func(Result[T]) bool) {
		r, err := f.newRun(ctx, keys, op, optFns)
		if err != nil {
			for i, key := range keys {
				if !yield(Result[T]{Index: i, Key: key, Err: &ItemError{Index: i, Key: key, Err: err}}) {
					return
				}
			}
			return
		}
		ch := make(chan Result[T], r.workers())
		r.deliver = func(res Result[T]) { ch <- res }
		wg := r.start()
		go func() {
			r.wait(wg)
			close(ch)
		}()
		defer func() {
			r.stop.Store(true)
			r.cancel(errStopped)
			for range ch { // let blocked workers deliver and end
			}
		}()
		for res := range ch {
			if !yield(res) {
				return
			}
		}
	}
}

// errStopped is the cause seen by operations still running when the
// caller stops consuming a Stream.
var errStopped = errors.New("fanout: stream consumer stopped")

// run is the state of one Run or Stream call.
type run[T any] struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	keys    []string
	op      func(context.Context, string) (T, error)
	opts    Options
	sems    []*weighted // acquired in order: the call's cap, the Fanout, the Budget
	limit   int64       // the smallest of the sems' sizes
	deliver func(Result[T])
	t0      time.Time // the origin of clock

	// keep lets workers keep their units from one item to the next (see
	// worker). Only Run sets it, and only when a worker between two items
	// can neither block nor run the caller's code: every item weighs 1, no
	// OnDone, no ScopeLimit, and delivering a result is a write to a slice.
	// A worker that waited on a Stream's consumer, on OnDone or on a scope
	// slot while keeping units would hold them for no item, and a call
	// waiting for them might be what it waits for.
	keep bool

	// With Options.Scope: items are claimed in order, scope by scope, and
	// scopeSems (the call's cap, the Fanout's) bound the scopes in flight
	// when a ScopeLimit is set.
	order     []int
	scopes    []*scope // in order of first key
	scopeOf   []*scope
	scopeSems []*weighted

	// What the items hold, for calls nested in them (see nest.go): the
	// shared semaphores that sems and scopeSems stand for, and what the
	// enclosing item holds.
	shared, sharedScopes []*weighted
	parent               *held
	nested               bool // an enclosing item holds some of the shared semaphores

	next atomic.Int64 // the next position in order to claim
	stop atomic.Bool  // set when a Stream's consumer left

	onDone       *sync.Mutex // the Fanout's: serializes OnDone across its calls, and guards the counts
	done, failed int
}

func (f *Fanout[T]) newRun(ctx context.Context, keys []string,
	op func(context.Context, string) (T, error), optFns []func(*Options)) (*run[T], error) {
	if f == nil {
		return nil, errors.New("fanout: nil *Fanout")
	}
	f.init()
	switch {
	case f.err != nil:
		return nil, f.err
	case ctx == nil:
		return nil, errors.New("fanout: nil Context")
	case op == nil:
		return nil, errors.New("fanout: nil op")
	}
	r := &run[T]{keys: keys, op: op, opts: *f.opts, onDone: &f.onDone, parent: heldIn(ctx), t0: time.Now()}
	if err := apply("call", &r.opts, optFns); err != nil {
		return nil, err
	}
	if err := r.opts.validate(); err != nil {
		return nil, err
	}
	if r.opts.Budget != f.opts.Budget {
		return nil, errBudgetPerCall
	}
	r.limit = f.limit
	if l := r.opts.Limit; l < f.limit {
		r.sems = append(r.sems, newWeighted(l))
		r.limit = l
	}
	var budget *weighted
	if b := r.opts.Budget; b != nil {
		budget = b.sem
	}
	r.nested = r.parent.holdsAny(f.sem, budget, f.scopeSem)
	r.share(f.sem, f.opts.Limit)
	if b := r.opts.Budget; b != nil {
		r.share(b.sem, b.size)
	}
	if err := r.groupScopes(f.opts.ScopeLimit, f.scopeSem); err != nil {
		return nil, err
	}
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	return r, nil
}

// share adds the shared semaphore s, of the given size, to the call's, or,
// when the call is nested, the private one that stands for it (nest.go).
func (r *run[T]) share(s *weighted, size int64) {
	r.shared = append(r.shared, s)
	if !r.nested {
		r.sems = append(r.sems, s)
		return
	}
	sem, u := r.parent.stand(s, size)
	r.sems = append(r.sems, sem)
	r.limit = min(r.limit, u)
}

// workers is the number of goroutines a call starts: no more items than
// that can run at once, since every item weighs at least 1.
func (r *run[T]) workers() int {
	return int(min(int64(len(r.keys)), r.limit))
}

// wait waits for the workers, then gives back the scope slots of scopes
// whose last items never ran.
func (r *run[T]) wait(wg *sync.WaitGroup) {
	wg.Wait()
	r.releaseScopes()
}

func (r *run[T]) start() *sync.WaitGroup {
	wg := new(sync.WaitGroup)
	n := r.workers()
	wg.Add(n)
	for range n {
		go r.work(wg)
	}
	return wg
}

// work claims items in input order until none is left.
func (r *run[T]) work(wg *sync.WaitGroup) {
	defer wg.Done()
	w := worker[T]{r: r}
	defer w.leave()
	// Each item's result in turn, filled in place: returned by value, it
	// was copied three times, a tenth of a quick item's cost.
	var res Result[T]
	for !r.stop.Load() {
		i := int(r.next.Add(1) - 1)
		if i >= len(r.keys) {
			return
		}
		if r.order != nil {
			i = r.order[i]
		}
		w.safeDo(i, &res)
		r.finish(&res)
	}
}

// safeDo runs item i into res: do, with any panic that escapes it made
// the item's error, so that a worker never takes the process down and
// every item still gets its one result. The caller's code is guarded
// where do calls it; this is the last line.
func (w *worker[T]) safeDo(i int, res *Result[T]) {
	*res = Result[T]{Index: i, Key: w.r.keys[i]}
	defer func() {
		if p := recover(); p != nil {
			*res = Result[T]{Index: i, Key: w.r.keys[i]}
			w.r.fail(res, &PanicError{Value: p, Stack: debug.Stack()})
		}
	}()
	if err := w.do(res); err != nil {
		w.r.fail(res, err)
	}
}

// do runs the item res names, fills in its Value, Skipped and Elapsed,
// and returns its error.
func (w *worker[T]) do(res *Result[T]) error {
	r, i := w.r, res.Index
	if r.scopeOf != nil {
		defer r.leaveScope(r.scopeOf[i])
	}
	if r.ctx.Err() != nil {
		w.leave() // kept units serve no item now: let whoever waits have them
		return r.notStarted()
	}
	if r.scopeOf != nil {
		if !r.enterScope(r.scopeOf[i]) {
			return r.notStarted()
		}
	}
	wt, err := r.weigh(res.Key)
	if err != nil {
		return err
	}
	if !w.acquire(wt) {
		return r.notStarted()
	}
	res.Value, res.Skipped, err = w.call(res.Key, wt)
	end := r.clock()
	res.Elapsed = end - w.since
	w.release(wt, end)
	if err != nil || res.Skipped != nil {
		var zero T
		res.Value = zero
	}
	return err
}

func (r *run[T]) notStarted() error { return &notStartedError{context.Cause(r.ctx)} }

// fail records err as the item's error.
func (r *run[T]) fail(res *Result[T], err error) {
	res.Err = &ItemError{Index: res.Index, Key: res.Key, Err: err}
}

// weigh returns the item's weight, or an error if no limit could ever
// admit it: semaphore.Acquire would block on it until ctx ends.
func (r *run[T]) weigh(key string) (w int64, err error) {
	if r.opts.Weight == nil {
		return 1, nil
	}
	defer recoverInto(&err)
	w = r.opts.Weight(key)
	if w < 1 || w > r.limit {
		return 0, fmt.Errorf("weight %d is outside 1..%d (the Limit)", w, r.limit)
	}
	return w, nil
}

// call runs op under the item's deadline, holding wt, and returns its
// value, its skip reason when it asked for a skip (Skip), or its error. A
// panic, in op or in looking into the error it returned, becomes the error.
func (w *worker[T]) call(key string, wt int64) (v T, skipped, err error) {
	var ctx context.Context = w.context(wt)
	if d := w.r.opts.ItemTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	defer recoverInto(&err)
	v, err = w.r.op(ctx, key)
	if skipped = skipReason(err); skipped != nil {
		err = nil
	}
	return v, skipped, err
}

func recoverInto(err *error) {
	if p := recover(); p != nil {
		*err = &PanicError{Value: p, Stack: debug.Stack()}
	}
}

// finish reports a finished item: it calls OnDone, stops the others under
// FailFast, and hands the result to the caller.
func (r *run[T]) finish(res *Result[T]) {
	if r.opts.OnDone != nil {
		r.progress(res)
	}
	if res.Err != nil && r.opts.FailFast {
		r.cancel(res.Err)
	}
	r.deliver(*res)
}

// progress calls OnDone, one call at a time across the Fanout's calls. A
// panic in OnDone becomes the item's error.
func (r *run[T]) progress(res *Result[T]) {
	r.onDone.Lock()
	defer r.onDone.Unlock()
	r.done++
	if res.Err != nil {
		r.failed++
	}
	err := guard(func() {
		r.opts.OnDone(Progress{
			Index: res.Index, Key: res.Key, Err: res.Err, Skipped: res.Skipped, Elapsed: res.Elapsed,
			Done: r.done, Failed: r.failed, Total: len(r.keys),
		})
	})
	if err == nil {
		return
	}
	err = fmt.Errorf("OnDone: %w", err)
	if res.Err == nil {
		r.failed++
	} else {
		err = errors.Join(res.Err.(*ItemError).Err, err)
	}
	var zero T
	res.Value, res.Skipped = zero, nil
	r.fail(res, err)
}

// guard calls fn and returns its panic, if any, as a *PanicError.
func guard(fn func()) (err error) {
	defer recoverInto(&err)
	fn()
	return nil
}
