package fanout

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// The deadline of each item under Options.ItemTimeout. context.WithTimeout
// costs 4 allocations per item (its context, its timer, the timer's func,
// its cancel func), a lock of the call's context to join its children and
// another to leave them, and a timer set and stopped. An itemCtx costs one
// allocation:
//
//   - Its deadline: ItemTimeout from the item's start, read on the
//     monotonic clock; the worker's one timer (itemTimer), shared by all
//     its items, ends the current item once its deadline has passed.
//   - Its parent: with no Done channel to close, nothing needs to watch
//     its parent. Asked (Err, Done) or ended (its deadline, its return), it
//     looks, and ends with its parent if that ended first: what a
//     context.WithDeadline, which its parent cancels at once, would say.
//   - Its return: the worker ends it, as the deferred cancel of a
//     context.WithTimeout would.
//
// That holds only while no one asks for its Done channel. The first Done
// makes what it stands for, a context.WithDeadline of its parent (its
// mirror), which from then on answers for it: the contexts derived from
// it, through any number of context.WithValue, are the mirror's children,
// cancelled with it as the context package cancels children, and no
// goroutine watches it. Every call of the AWS SDK asks for Done, as does
// net/http for each request: an operation that calls the SDK pays what
// context.WithTimeout cost, plus this allocation. One that only checks
// Err, or does not look, does not.

// itemState says whether an item's context has ended, and how, before it
// has a mirror.
type itemState = uint32

const (
	itemLive     itemState = iota
	itemReturned           // its item returned: Canceled
	itemExpired            // its deadline passed: DeadlineExceeded
	itemByParent           // its parent ended first: the parent's Err and cause
)

// itemCtx is the context of one item under Options.ItemTimeout: its
// parent, the context the item would have without a deadline, with a
// deadline. It behaves as the context.WithDeadline it stands for, Cause
// included: ended for a reason of its own, its deadline or its item's
// return, it answers context.Cause's question (causeKey) with nothing, so
// that Cause gives its Err, as WithDeadline's would, even once its parent
// ends with a cause of its own; ended with its parent, it passes the
// question on to it.
type itemCtx struct {
	parent   context.Context
	deadline time.Time
	timed    bool // the deadline is its own, not its parent's earlier one: its timer ends it

	state    atomic.Uint32 // an itemState, until it has a mirror
	mirrored atomic.Bool   // mirror is set

	mu     sync.Mutex // serializes its end and the making of its mirror
	perr   error      // the parent's Err, when itemByParent
	mirror context.Context
	cancel context.CancelFunc // the mirror's
}

// closedchan is Done once a context ended before anyone asked for Done.
var closedchan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// end ends c, for the reason own unless its parent has ended: then with
// the parent, as a context.WithDeadline that its parent cancels first.
// Once c has a mirror, that is the mirror's to say: only the item's
// return cancels it.
func (c *itemCtx) end(own itemState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mirrored.Load() {
		if own == itemReturned {
			c.cancel()
		}
		return
	}
	if c.state.Load() != itemLive {
		return
	}
	if err := c.parent.Err(); err != nil {
		own, c.perr = itemByParent, err
	}
	c.state.Store(own)
}

// live reports whether c, without a mirror, has not ended, ending it first
// if its parent has.
func (c *itemCtx) live() bool {
	if c.state.Load() != itemLive {
		return false
	}
	if c.parent.Err() == nil {
		return true
	}
	c.end(itemByParent)
	return false
}

func (c *itemCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *itemCtx) Done() <-chan struct{} {
	if c.mirrored.Load() {
		return c.mirror.Done()
	}
	if !c.live() && !c.mirrored.Load() {
		return closedchan
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.mirrored.Load() {
		if c.state.Load() != itemLive {
			return closedchan
		}
		if c.timed {
			c.mirror, c.cancel = context.WithDeadline(c.parent, c.deadline)
		} else { // as context.WithDeadline does: the parent's deadline is the timer
			c.mirror, c.cancel = context.WithCancel(c.parent)
		}
		c.mirrored.Store(true)
	}
	return c.mirror.Done()
}

func (c *itemCtx) Err() error {
	if !c.mirrored.Load() && c.live() {
		return nil
	}
	if c.mirrored.Load() {
		return c.mirror.Err()
	}
	switch c.state.Load() { // ended without a mirror: for good
	case itemExpired:
		return context.DeadlineExceeded
	case itemByParent:
		return c.perr
	}
	return context.Canceled
}

// Value is the parent's, but for context.Cause's question: the mirror's
// answer, when there is one; else nothing once c ended for a reason of
// its own, so that Cause gives Err.
func (c *itemCtx) Value(key any) any {
	if key == causeKey {
		if c.mirrored.Load() {
			return c.mirror.Value(key)
		}
		if s := c.state.Load(); s == itemReturned || s == itemExpired {
			return nil
		}
	}
	return c.parent.Value(key)
}

// String names c as context.WithDeadline names its contexts.
func (c *itemCtx) String() string {
	return contextName(c.parent) + ".WithDeadline(" + c.deadline.String() + " [" + time.Until(c.deadline).String() + "])"
}

// contextName names c without reading its fields, which another goroutine
// may be changing, as fmt's reflection would.
func contextName(c context.Context) string {
	if s, ok := c.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", c)
}

// causeKey is the key that context.Cause asks a context's Value for, to
// find the cancelCtx whose cause it reports: the context package's own,
// unexported, learnt by asking Cause about a context that notes it. nil if
// Cause asks for none, in a Go that finds causes some other way: items
// then get a context.WithDeadline.
var causeKey = func() (key any) {
	context.Cause(causeProbe{&key})
	return key
}()

// causeProbe is a context that has ended and notes the first key asked of
// its Value.
type causeProbe struct{ key *any }

func (causeProbe) Deadline() (time.Time, bool) { return time.Time{}, false }
func (causeProbe) Done() <-chan struct{}       { return closedchan }
func (causeProbe) Err() error                  { return context.Canceled }

func (p causeProbe) Value(key any) any {
	if *p.key == nil {
		*p.key = key
	}
	return nil
}

// itemTimer gives the items of one worker their contexts under
// Options.ItemTimeout, and ends each once its deadline has passed, with one
// timer for all of them. The timer is not reset for each item, which would
// read the clock: the deadlines of a worker's items only grow, so a timer
// set for an earlier item's fires no later than the current one's, and
// then sets itself for what is left of it. One firing per ItemTimeout per
// worker, at most, for items that end in time.
type itemTimer struct {
	cur    atomic.Pointer[itemCtx]
	armed  atomic.Bool // the timer is set: a firing is to come
	timer  *time.Timer
	cancel context.CancelFunc // the current item's, when it has a context.WithDeadline
}

func newItemTimer() *itemTimer {
	t := new(itemTimer)
	t.timer = time.AfterFunc(time.Hour, t.fire)
	t.timer.Stop()
	return t
}

// minItemTimer is the least ItemTimeout the worker's timer serves. A
// shorter one has passed, or all but, when the operation starts: its
// context.WithDeadline says so at once, as context.WithTimeout would.
const minItemTimer = time.Millisecond

// start returns the context of the worker's next item, over parent, with
// the given deadline, ItemTimeout d from its start. The item must stop it
// when it returns.
func (t *itemTimer) start(parent context.Context, deadline time.Time, d time.Duration) context.Context {
	if causeKey == nil || d < minItemTimer {
		var ctx context.Context
		ctx, t.cancel = context.WithDeadline(parent, deadline)
		return ctx
	}
	c := &itemCtx{parent: parent, deadline: deadline, timed: true}
	if pd, ok := parent.Deadline(); ok && pd.Before(deadline) {
		c.deadline, c.timed = pd, false // the parent ends first, as in context.WithDeadline
	}
	t.cur.Store(c)
	if c.timed {
		t.arm(d)
	}
	return c
}

// arm sets the timer to fire in d, unless it is set already. Only the one
// that sets armed resets the timer, and only its firing clears armed.
func (t *itemTimer) arm(d time.Duration) {
	if !t.armed.Load() && t.armed.CompareAndSwap(false, true) {
		t.timer.Reset(d)
	}
}

// stop ends the current item's context: its item returned.
func (t *itemTimer) stop() {
	if t.cancel != nil {
		t.cancel()
		t.cancel = nil
		return
	}
	c := t.cur.Load()
	t.cur.Store(nil)
	c.end(itemReturned)
}

// fire ends the current item if its deadline has passed, or sets the
// timer again for what is left of it. Clearing armed first, and looking at
// the current item after, means that an item that start makes current
// meanwhile is seen here, or sets the timer itself. An item with a mirror
// has the mirror's timer.
func (t *itemTimer) fire() {
	t.armed.Store(false)
	c := t.cur.Load()
	if c == nil || !c.timed || c.mirrored.Load() || c.state.Load() != itemLive {
		return
	}
	if left := time.Until(c.deadline); left > 0 {
		t.arm(left)
		return
	}
	c.end(itemExpired)
}

// itemTimers are the itemTimers of a call's workers, to stop once they are
// done: a timer left set would hold its worker's until it fired.
type itemTimers struct {
	mu  sync.Mutex
	all []*itemTimer
}

func (ts *itemTimers) add() *itemTimer {
	t := newItemTimer()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.all = append(ts.all, t)
	return t
}

func (ts *itemTimers) stop() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, t := range ts.all {
		t.timer.Stop()
	}
}

// itemTimer returns the worker's itemTimer, made on its first item.
func (w *worker[K, T]) itemTimer() *itemTimer {
	if w.timer == nil {
		w.timer = w.r.timers.add()
	}
	return w.timer
}
