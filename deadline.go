package fanout

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlineCtx is the context of an item under Options.ItemTimeout: one
// allocation per item, where context.WithTimeout makes four (its context,
// its timer, the timer's func, its cancel func) before anyone looks at it.
//
// It answers Deadline and Err by itself, Err from the parent's and the
// clock, and the first time it is asked for anything else (Done, a Value,
// a context derived from it, context.Cause) it makes the
// context.WithDeadline it stands for and hands that on. So whatever waits
// for it or derives from it gets the standard library's behaviour, timer
// and propagation included, and an operation that never waits for its
// context, or only checks Err, pays for none of it. Until then no timer
// runs: no one waits for Done, so no one needs waking.
type deadlineCtx struct {
	parent   context.Context
	deadline time.Time

	mu     sync.Mutex         // serializes making std, ending, and Err before std
	made   atomic.Bool        // std is set
	std    context.Context    // the context.WithDeadline it stands for, once made
	cancel context.CancelFunc // std's
	ended  error              // why it ended, when its item ended before std was made
}

var _ context.Context = (*deadlineCtx)(nil)

// newDeadlineCtx returns parent with a deadline d from now, or parent's
// own when that is sooner, as context.WithTimeout would.
func newDeadlineCtx(parent context.Context, d time.Duration) *deadlineCtx {
	deadline := time.Now().Add(d)
	if pd, ok := parent.Deadline(); ok && pd.Before(deadline) {
		deadline = pd
	}
	return &deadlineCtx{parent: parent, deadline: deadline}
}

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *deadlineCtx) Done() <-chan struct{} { return c.observe().Done() }

func (c *deadlineCtx) Value(key any) any { return c.observe().Value(key) }

// Err is that of std once made. Before, it is the parent's, else
// DeadlineExceeded once the deadline has passed, which makes std, done
// already, so that Err never changes once it is not nil.
func (c *deadlineCtx) Err() error {
	if c.made.Load() {
		return c.std.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.made.Load():
		return c.std.Err()
	case c.ended != nil:
		return c.ended
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if time.Now().Before(c.deadline) {
		return nil
	}
	return c.observeLocked().Err()
}

// observe returns std, made on first use.
func (c *deadlineCtx) observe() context.Context {
	if c.made.Load() {
		return c.std
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.observeLocked()
}

// observeLocked makes std, if it is not made yet: the context.WithDeadline
// that c stands for. When c's item ended first, std is done as c ended,
// whatever its parent has become since: with DeadlineExceeded, with
// Canceled, or, when the parent's end was the item's, as the parent.
func (c *deadlineCtx) observeLocked() context.Context {
	if c.made.Load() {
		return c.std
	}
	switch c.ended {
	case nil:
		c.std, c.cancel = context.WithDeadline(c.parent, c.deadline)
	case context.DeadlineExceeded: // done at once: the deadline has passed
		c.std, c.cancel = context.WithDeadline(context.WithoutCancel(c.parent), c.deadline)
	default:
		c.std, c.cancel = context.WithCancel(context.WithoutCancel(c.parent))
		c.cancel()
	}
	c.made.Store(true)
	return c.std
}

// end cancels c as its item ends, as the deferred cancel of a
// context.WithTimeout would: with Canceled, unless its deadline has passed
// or its parent is done already.
func (c *deadlineCtx) end() {
	c.mu.Lock()
	made := c.made.Load()
	if !made && c.parent.Err() == nil { // else Err and std follow the parent's, which will not change
		c.ended = context.Canceled
		if !time.Now().Before(c.deadline) {
			c.ended = context.DeadlineExceeded
		}
	}
	c.mu.Unlock()
	if made {
		c.cancel() // outside mu: it runs what derives from std
	}
}
