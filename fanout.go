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

	"golang.org/x/sync/semaphore"
)

// Fanout runs one operation per key, at most Limit weight at once, and
// returns one Result per key. The zero value is ready to use with zero
// Options. A Fanout is safe for concurrent use; its concurrent calls share
// its Limit.
type Fanout[T any] struct {
	once  sync.Once
	opts  Options
	err   error               // invalid options given to New
	sem   *semaphore.Weighted // the Fanout's Limit, shared by its calls
	limit int64               // the smallest of its Limit and its Budget's size
}

// New returns a Fanout configured by optFns, applied in order to zero Options.
func New[T any](optFns ...func(*Options)) *Fanout[T] {
	f := &Fanout[T]{}
	for _, fn := range optFns {
		fn(&f.opts)
	}
	f.init()
	return f
}

func (f *Fanout[T]) init() {
	f.once.Do(func() {
		f.err = f.opts.validate()
		f.limit = max(f.opts.limit(), 1)
		f.sem = semaphore.NewWeighted(f.limit)
		if b := f.opts.Budget; b != nil {
			f.limit = min(f.limit, b.size)
		}
	})
}

// Limit returns the most weight the Fanout lets run at once, across its
// calls: its Options.Limit, or its Budget's size if that is smaller.
func (f *Fanout[T]) Limit() int64 {
	f.init()
	return f.limit
}

// Run calls op once per key, concurrently within the limits, and returns
// one Result per key in input order. Its error is Results.Err(): nil if
// and only if every item succeeded, else the items' errors joined.
//
// Run returns when every operation it started has returned. If ctx is
// cancelled, no new operation starts and the items that never ran fail
// with ErrSkipped and ctx's cause.
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
	r.start().Wait()
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
			wg.Wait()
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
	sems    []*semaphore.Weighted // acquired in order: the call's cap, the Fanout, the Budget
	limit   int64                 // the smallest of the sems' sizes
	deliver func(Result[T])

	// With Options.Scope: items are claimed in order, scope by scope, and
	// scopeSem bounds the scopes in flight when ScopeLimit is set.
	order    []int
	scopeOf  []*scope
	scopeSem *semaphore.Weighted

	next atomic.Int64 // the next position in order to claim
	stop atomic.Bool  // set when a Stream's consumer left

	mu           sync.Mutex // serializes OnDone and guards the counts
	done, failed int
}

func (f *Fanout[T]) newRun(ctx context.Context, keys []string,
	op func(context.Context, string) (T, error), optFns []func(*Options)) (*run[T], error) {
	f.init()
	switch {
	case f.err != nil:
		return nil, f.err
	case ctx == nil:
		return nil, errors.New("fanout: nil Context")
	case op == nil:
		return nil, errors.New("fanout: nil op")
	}
	r := &run[T]{keys: keys, op: op, opts: f.opts}
	for _, fn := range optFns {
		fn(&r.opts)
	}
	if err := r.opts.validate(); err != nil {
		return nil, err
	}
	if r.opts.Budget != f.opts.Budget {
		return nil, errors.New("fanout: Options.Budget can only be set in New")
	}
	r.limit = f.limit
	if l := r.opts.limit(); l < f.limit {
		r.sems = append(r.sems, semaphore.NewWeighted(l))
		r.limit = l
	}
	r.sems = append(r.sems, f.sem)
	if b := r.opts.Budget; b != nil {
		r.sems = append(r.sems, b.sem)
	}
	if r.opts.Scope != nil {
		if err := r.groupScopes(); err != nil {
			return nil, err
		}
	}
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	return r, nil
}

// workers is the number of goroutines a call starts: no more items than
// that can run at once, since every item weighs at least 1.
func (r *run[T]) workers() int {
	return int(min(int64(len(r.keys)), r.limit))
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
	for !r.stop.Load() {
		i := int(r.next.Add(1) - 1)
		if i >= len(r.keys) {
			return
		}
		if r.order != nil {
			i = r.order[i]
		}
		r.finish(r.do(i))
	}
}

// do runs item i and returns its result.
func (r *run[T]) do(i int) Result[T] {
	res := Result[T]{Index: i, Key: r.keys[i]}
	if r.ctx.Err() != nil {
		return r.fail(res, &skippedError{context.Cause(r.ctx)})
	}
	if r.scopeOf != nil {
		sc := r.scopeOf[i]
		defer r.leaveScope(sc)
		if !r.enterScope(sc) {
			return r.fail(res, &skippedError{context.Cause(r.ctx)})
		}
	}
	w, err := r.weigh(res.Key)
	if err != nil {
		return r.fail(res, err)
	}
	if !r.acquire(w) {
		return r.fail(res, &skippedError{context.Cause(r.ctx)})
	}
	start := time.Now()
	res.Value, res.Throttles, err = r.call(res.Key)
	res.Elapsed = time.Since(start)
	r.release(w)
	if err != nil {
		var zero T
		res.Value = zero
		return r.fail(res, Classify(err))
	}
	return res
}

// fail records err as the item's error, or as its skip reason when the
// operation asked for a skip (Skip) or SkipDisabled covers it.
func (r *run[T]) fail(res Result[T], err error) Result[T] {
	var skip *skipError
	switch {
	case errors.As(err, &skip):
		res.Skipped = skip.reason
	case r.opts.SkipDisabled && errors.Is(err, ErrRegionDisabled):
		res.Skipped = err
	default:
		res.Err = &ItemError{Index: res.Index, Key: res.Key, Err: err}
	}
	return res
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

func (r *run[T]) acquire(w int64) bool {
	for k, s := range r.sems {
		if s.Acquire(r.ctx, w) != nil {
			for _, s := range r.sems[:k] {
				s.Release(w)
			}
			return false
		}
	}
	return true
}

func (r *run[T]) release(w int64) {
	for _, s := range r.sems {
		s.Release(w)
	}
}

// call runs op under the item's deadline, counts its throttled attempts
// if asked to, and turns a panic into an error.
func (r *run[T]) call(key string) (v T, throttles int, err error) {
	ctx := r.ctx
	if r.opts.ItemTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.opts.ItemTimeout)
		defer cancel()
	}
	if r.opts.CountThrottles {
		st := new(itemStats)
		ctx = context.WithValue(ctx, statsKey{}, st)
		defer func() { throttles, err = st.result(err) }()
	}
	defer recoverInto(&err)
	v, err = r.op(ctx, key)
	return v, 0, err
}

func recoverInto(err *error) {
	if p := recover(); p != nil {
		*err = &PanicError{Value: p, Stack: debug.Stack()}
	}
}

// finish reports a finished item: it stops the others under FailFast,
// calls OnDone, and hands the result to the caller.
func (r *run[T]) finish(res Result[T]) {
	if res.Err != nil && r.opts.FailFast {
		r.cancel(res.Err)
	}
	if r.opts.OnDone != nil {
		r.progress(res)
	}
	r.deliver(res)
}

func (r *run[T]) progress(res Result[T]) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done++
	if res.Err != nil {
		r.failed++
	}
	r.opts.OnDone(Progress{
		Index: res.Index, Key: res.Key, Err: res.Err, Skipped: res.Skipped, Elapsed: res.Elapsed, Throttles: res.Throttles,
		Done: r.done, Failed: r.failed, Total: len(r.keys),
	})
}
