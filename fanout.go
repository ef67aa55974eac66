package fanout

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime/debug"
	"runtime/trace"
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
	return f.run(ctx, keys, op, optFns, nil)
}

// run is Run, with what the AWS layer knows of each item for telemetry.
func (f *Fanout[T]) run(ctx context.Context, keys []string,
	op func(ctx context.Context, key string) (T, error), optFns []func(*Options), lb func(int) labels) (Results[T], error) {
	r, err := f.newRun(ctx, keys, op, optFns)
	if err != nil {
		return nil, err
	}
	r.labels = lb
	defer r.cancel(nil)
	results := make(Results[T], len(keys))
	r.results = results
	r.keep = r.weight == nil && r.opts.OnDone == nil && r.scopeSems == nil
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
		for res := range r.stream() {
			if !yield(res.Result) {
				return
			}
		}
	}
}

// stream runs the call and yields each result as its item finishes; see
// Stream.
func (r *run[K, T]) stream() iter.Seq[ItemResult[K, T]] {
	return func(yield func(ItemResult[K, T]) bool) {
		ch := make(chan ItemResult[K, T], min(r.workers(), maxBuffered))
		r.deliver = func(res *ItemResult[K, T]) { ch <- *res }
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

// run is the state of one call: its items are a slice, or a sequence
// pulled as workers free up.
type run[K, T any] struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	items  []K // the input, when a slice

	// The input, when a sequence: pull yields the next item, or its
	// producer's error, or false at the end. Workers pull one at a time,
	// under pullMu, which also guards pulled and pullEnded.
	pull      func() (K, error, bool)
	pullMu    sync.Mutex
	pulled    int
	pullEnded bool

	key       func(K) string // names an item in results, errors and progress
	weight    func(K) int64  // nil: every item weighs 1
	scopeName func(K) string // nil: no scopes
	op        func(context.Context, K) (T, error)
	opts      Options
	sems      []*weighted // acquired in order: the call's cap, the Fanout, the Budget
	limit     int64       // the smallest of the sems' sizes
	t0        time.Time   // the origin of clock

	// Where each item's result goes: in place, at its index, in the
	// caller's Results (Run) or ItemResults (RunItems), which start zeroed;
	// or, for a Stream, in the worker's own ItemResult, handed to deliver.
	// In place, a result is never copied, and the fields that stay zero
	// (Err and Skipped, most often) are never written: each pointer written
	// while the GC marks is one more for it to shade.
	results     []Result[T]
	itemResults []ItemResult[K, T]
	deliver     func(*ItemResult[K, T])

	// started counts the workers started; for a sequence, a worker starts
	// the next once it has pulled an item, so that there are never more
	// workers than items.
	started atomic.Int64
	wg      *sync.WaitGroup

	// keep lets workers keep their units from one item to the next (see
	// worker). Only Run sets it, and only when a worker between two items
	// can neither block nor run the caller's code: every item weighs 1, no
	// OnDone, no ScopeLimit, and the result is written in place.
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

	stop atomic.Bool // set when a Stream's consumer left

	// next is the next position in order to claim. Every worker adds to it
	// at every item, which takes its cache line from the other cores: the
	// padding keeps the fields they read at every item off that line.
	_    [64]byte
	next atomic.Int64
	_    [56]byte

	onDone       *sync.Mutex // the Fanout's: serializes OnDone across its calls, and guards the counts
	done, failed int

	timers itemTimers // the workers' deadlines under ItemTimeout (itemctx.go)

	tel    *callTel               // nil: no telemetry (Options.TracerProvider, MeterProvider, Logger)
	task   *trace.Task            // the call's, while the execution tracer runs
	labels func(index int) labels // what the AWS layer knows of each item, for telemetry
}

// newRun starts a call over keys, with optFns applied to the Fanout's
// options.
func (f *Fanout[T]) newRun(ctx context.Context, keys []string,
	op func(context.Context, string) (T, error), optFns []func(*Options)) (*run[string, T], error) {
	if f == nil {
		return nil, errors.New("fanout: nil *Fanout")
	}
	opts := f.options()
	if f.err == nil {
		if err := apply("call", &opts, optFns); err != nil {
			return nil, err
		}
	}
	r := &run[string, T]{items: keys, key: identity, weight: opts.Weight, scopeName: opts.Scope, op: op}
	return r, r.init(f, ctx, opts, op == nil)
}

func identity(key string) string { return key }

// init checks the call and sets it up in f, with its options, o.
func (r *run[K, T]) init(f fanoutOf, ctx context.Context, o Options, nilOp bool) error {
	switch {
	case f.fanoutErr() != nil:
		return f.fanoutErr()
	case ctx == nil:
		return errors.New("fanout: nil Context")
	case nilOp:
		return errors.New("fanout: nil op")
	}
	r.opts, r.parent, r.t0 = o, heldIn(ctx), time.Now()
	if err := r.opts.validate(); err != nil {
		return err
	}
	fo, sem, scopeSem, limit, onDone := f.state()
	r.onDone = onDone
	if r.opts.Budget != fo.Budget {
		return errBudgetPerCall
	}
	r.limit = limit
	if l := r.opts.Limit; l < limit {
		r.sems = append(r.sems, newWeighted(l))
		r.limit = l
	}
	var budget *weighted
	if b := r.opts.Budget; b != nil {
		budget = b.sem
	}
	r.nested = r.parent.holdsAny(sem, budget, scopeSem)
	r.share(sem, fo.Limit)
	if b := r.opts.Budget; b != nil {
		r.share(b.sem, b.size)
	}
	if err := r.groupScopes(fo.ScopeLimit, scopeSem); err != nil {
		return err
	}
	items := -1 // a sequence's
	if r.pull == nil {
		items = len(r.items)
	}
	ctx, r.tel, r.task = startCall(ctx, &r.opts, items, int(r.limit))
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	return nil
}

// fanoutOf is a Fanout of any result type, as a call sets itself up in it.
type fanoutOf interface {
	fanoutErr() error
	state() (o *Options, sem, scopeSem *weighted, limit int64, onDone *sync.Mutex)
}

func (f *Fanout[T]) fanoutErr() error {
	if f == nil {
		return errors.New("fanout: nil *Fanout")
	}
	f.init()
	return f.err
}

func (f *Fanout[T]) state() (*Options, *weighted, *weighted, int64, *sync.Mutex) {
	return f.opts, f.sem, f.scopeSem, f.limit, &f.onDone
}

// share adds the shared semaphore s, of the given size, to the call's, or,
// when the call is nested, the private one that stands for it (nest.go).
func (r *run[K, T]) share(s *weighted, size int64) {
	r.shared = append(r.shared, s)
	if !r.nested {
		r.sems = append(r.sems, s)
		return
	}
	sem, u := r.parent.stand(s, size)
	r.sems = append(r.sems, sem)
	r.limit = min(r.limit, u)
}

// workers is the most goroutines a call starts: no more items than that
// can run at once, since every item weighs at least 1.
func (r *run[K, T]) workers() int {
	if r.pull != nil {
		return int(r.limit)
	}
	return int(min(int64(len(r.items)), r.limit))
}

// total is the number of items, for Progress: 0 for a sequence.
func (r *run[K, T]) total() int {
	if r.pull != nil {
		return 0
	}
	return len(r.items)
}

// wait waits for the workers, then gives back the scope slots of scopes
// whose last items never ran.
func (r *run[K, T]) wait(wg *sync.WaitGroup) {
	wg.Wait()
	r.timers.stop()
	r.releaseScopes()
	r.tel.end(r.task)
}

// start starts the first worker; each worker starts the next once it
// holds its units (grow), so that no more items are claimed, or pulled,
// than can run, plus one waiting for room: with weights above 1, far
// fewer than the Limit.
func (r *run[K, T]) start() *sync.WaitGroup {
	r.wg = new(sync.WaitGroup)
	if r.workers() > 0 {
		r.started.Add(1)
		r.spawn()
	}
	return r.wg
}

// grow starts another worker, if the call may have more and has items
// left to give it.
func (r *run[K, T]) grow() {
	for {
		n := r.started.Load()
		if n >= int64(r.workers()) || (r.pull == nil && r.next.Load() >= int64(len(r.items))) {
			return
		}
		if r.started.CompareAndSwap(n, n+1) {
			r.spawn()
			return
		}
	}
}

func (r *run[K, T]) spawn() {
	r.wg.Add(1)
	go r.work()
}

// maxBuffered bounds the results a Stream holds for its consumer: with a
// Limit in bytes, the Limit is no bound on memory.
const maxBuffered = 1024

// work claims items in input order until none is left.
func (r *run[K, T]) work() {
	defer r.wg.Done()
	w := worker[K, T]{r: r}
	defer w.leave()
	var own *ItemResult[K, T] // a Stream's: each result in turn, delivered from here
	if r.deliver != nil {
		own = new(ItemResult[K, T])
	}
	for !r.stop.Load() {
		var res *Result[T]
		if r.pull != nil {
			if !r.pullNext(own) {
				return
			}
			if res = &own.Result; res.Err == nil {
				w.safeDo(own.Item, res)
			}
		} else {
			i := int(r.next.Add(1) - 1)
			if i >= len(r.items) {
				return
			}
			if r.order != nil {
				i = r.order[i]
			}
			res = r.slot(own, i)
			w.safeDo(r.items[i], res)
		}
		r.finish(&w.it, res)
		if own != nil {
			r.deliver(own)
		}
	}
}

// slot returns the result of the item at index i, zero but for its Index
// (and Item): in place in the caller's results, or in own for a Stream.
func (r *run[K, T]) slot(own *ItemResult[K, T], i int) *Result[T] {
	var res *Result[T]
	switch {
	case r.results != nil:
		res = &r.results[i]
	case r.itemResults != nil:
		ir := &r.itemResults[i]
		ir.Item = r.items[i]
		res = &ir.Result
	default:
		*own = ItemResult[K, T]{Item: r.items[i]}
		res = &own.Result
	}
	res.Index = i
	return res
}

// pullNext pulls the next item of a sequence into res, with its index,
// and reports whether there was one. A producer's error, or its panic, is
// an item of its own, failed, with whatever item it yielded beside the
// error, after which nothing more is pulled. Once the call's context has
// ended, the rest of the sequence, unpulled, is one more item, failed as
// not started: a Ctrl-C must not read as a sequence done.
func (r *run[K, T]) pullNext(res *ItemResult[K, T]) bool {
	r.pullMu.Lock()
	defer r.pullMu.Unlock()
	if r.pullEnded {
		return false
	}
	if r.ctx.Err() != nil { // the rest of the sequence is one item, not started
		r.pullEnded = true
		*res = ItemResult[K, T]{}
		res.Index = r.pulled
		r.pulled++
		r.fail(&res.Result, fmt.Errorf("the rest of the sequence, not pulled: %w", r.notStarted()))
		return true
	}
	var (
		item K
		err  error
		ok   bool
	)
	if perr := guard(func() { item, err, ok = r.pull() }); perr != nil {
		err, ok = perr, true
	}
	if !ok {
		r.pullEnded = true
		return false
	}
	*res = ItemResult[K, T]{Item: item}
	res.Index = r.pulled
	r.pulled++
	if err != nil {
		r.pullEnded = true
		r.fail(&res.Result, &ProducerError{Err: err})
	}
	return true
}

// safeDo runs item into its result, res: do, with any panic that escapes
// it made the item's error, so that a worker never takes the process down
// and every item still gets its one result. The caller's code is guarded
// where do calls it; this is the last line.
func (w *worker[K, T]) safeDo(item K, res *Result[T]) {
	defer func() {
		if p := recover(); p != nil {
			*res = Result[T]{Index: res.Index, Key: res.Key}
			w.r.fail(res, &PanicError{Value: p, Stack: debug.Stack()})
		}
	}()
	if err := w.do(item, res); err != nil {
		w.r.fail(res, err)
	}
}

// do runs item, fills in its result's Key, Value or Skipped, and Elapsed,
// and returns its error. res is zero but for its Index: a field that
// stays zero is not written.
func (w *worker[K, T]) do(item K, res *Result[T]) error {
	r, i := w.r, res.Index
	if r.scopeOf != nil {
		defer r.leaveScope(r.scopeOf[i])
	}
	var err error
	if res.Key, err = r.keyOf(item); err != nil {
		return err
	}
	w.beginItem(res)
	if r.ctx.Err() != nil {
		w.leave() // kept units serve no item now: let whoever waits have them
		return r.notStarted()
	}
	if r.scopeOf != nil {
		if !r.enterScope(r.scopeOf[i]) {
			return r.notStarted()
		}
	}
	wt, err := r.weigh(item)
	if err != nil {
		return err
	}
	if !w.acquire(wt) {
		return r.notStarted()
	}
	r.grow()
	w.startItem(i)
	v, skipped, err := w.call(item, wt)
	r.stopItem(&w.it, i)
	end := r.clock()
	res.Elapsed = end - w.since
	w.release(wt, end)
	switch {
	case skipped != nil:
		res.Skipped = skipped
	case err == nil:
		res.Value = v
	}
	return err
}

// keyOf names an item; a panic in the caller's Key is the item's error.
func (r *run[K, T]) keyOf(item K) (key string, err error) {
	if r.key == nil {
		return "", nil
	}
	defer recoverInto(&err)
	return r.key(item), nil
}

func (r *run[K, T]) notStarted() error { return &notStartedError{context.Cause(r.ctx)} }

// fail records err as the item's error.
func (r *run[K, T]) fail(res *Result[T], err error) {
	res.Err = &ItemError{Index: res.Index, Key: res.Key, Err: err}
}

// weigh returns the item's weight, or an error if no limit could ever
// admit it: semaphore.Acquire would block on it until ctx ends.
func (r *run[K, T]) weigh(item K) (w int64, err error) {
	if r.weight == nil {
		return 1, nil
	}
	defer recoverInto(&err)
	w = r.weight(item)
	if w < 1 || w > r.limit {
		return 0, fmt.Errorf("weight %d is outside 1..%d (the Limit)", w, r.limit)
	}
	return w, nil
}

// call runs op under the item's deadline, holding wt, and returns its
// value, its skip reason when it asked for a skip (Skip), or its error. A
// panic, in op or in looking into the error it returned, becomes the error.
func (w *worker[K, T]) call(item K, wt int64) (v T, skipped, err error) {
	var ctx context.Context = w.context(wt)
	if d := w.r.opts.ItemTimeout; d > 0 {
		t := w.itemTimer()
		// The monotonic clock alone: time.Now reads the wall clock too.
		// Two Adds, which saturate: clock()+d could wrap into the past.
		ctx = t.start(ctx, w.r.t0.Add(w.r.clock()).Add(d), d)
		defer t.stop()
	}
	defer recoverInto(&err)
	v, err = w.r.op(ctx, item)
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

// finish reports a finished item, whose result is res: it calls OnDone,
// ends its telemetry, it, and stops the others under FailFast.
func (r *run[K, T]) finish(it *itemTel, res *Result[T]) {
	if r.opts.OnDone != nil {
		r.progress(res)
	}
	if r.tel != nil || it.on() {
		r.reportItem(it, res)
	}
	if res.Err != nil && r.opts.FailFast {
		r.cancel(res.Err)
	}
}

// progress calls OnDone, one call at a time across the Fanout's calls. A
// panic in OnDone becomes the item's error.
func (r *run[K, T]) progress(res *Result[T]) {
	r.onDone.Lock()
	defer r.onDone.Unlock()
	r.done++
	if res.Err != nil {
		r.failed++
	}
	err := guard(func() {
		r.opts.OnDone(Progress{
			Index: res.Index, Key: res.Key, Err: res.Err, Skipped: res.Skipped, Elapsed: res.Elapsed,
			Done: r.done, Failed: r.failed, Total: r.total(),
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
