package fanout

import (
	"fmt"
	"time"

	"golang.org/x/sync/semaphore"
)

// DefaultLimit is the total weight in flight when Options.Limit is 0.
//
// It is below EC2's smallest API burst (50 calls per account and region), so a
// fan-out over one region at the default limit does not start out throttled.
const DefaultLimit = 32

// Options configures a Fanout. The zero value is ready to use: DefaultLimit,
// every item weighs 1, no deadline per item, and a failure does not stop the
// other items.
//
// Options given to New apply to every call; options given to Run or Stream
// apply to that call only and work on a copy, so concurrent calls never see
// each other's settings.
type Options struct {
	// Limit bounds the total weight of operations running at once. 0 means
	// DefaultLimit; a negative Limit makes Run fail.
	//
	// Set in New, it is the Fanout's budget, shared by all of its concurrent
	// calls. Set per call, it caps that call inside the Fanout's budget; it
	// never raises it.
	Limit int64

	// Budget, when not nil, is a weighted limit shared with other Fanouts,
	// whatever their result type: an item runs only when both its Fanout's
	// Limit and the Budget have room for its weight. It can only be set in New.
	Budget *Budget

	// Weight returns the weight of one item; nil means every item weighs 1.
	// An item whose weight is below 1 or above the Limit fails at once with
	// an error that names the key, the weight and the limit; the others run.
	Weight func(key string) int64

	// FailFast makes the first failure cancel the contexts of the operations
	// still running, with that failure as the cause, and start no new ones.
	// The items that never ran fail with ErrSkipped.
	FailFast bool

	// ItemTimeout, when positive, is the deadline of each operation, counted
	// from its start. 0 means none; a negative value makes Run fail.
	ItemTimeout time.Duration

	// Scope, when not nil, names the scope of a key (an account, say), and
	// ScopeLimit, when positive, bounds how many scopes have items in flight
	// at once, inside the Limit: limits nest, they never multiply. A scope
	// is in flight from the start of its first item to the end of its last;
	// items are started scope by scope, in order of each scope's first key.
	// AccountRegions sets Scope to the account.
	Scope      func(key string) string
	ScopeLimit int

	// SkipDisabled reports an item whose error is ErrRegionDisabled as
	// skipped (Result.Skipped) rather than failed.
	SkipDisabled bool

	// CountThrottles watches each item's attempts: it counts the throttled
	// ones into Result.Throttles and Progress.Throttles, and when an item
	// ends on its context (an ItemTimeout during a retry's back-off) it
	// adds the last attempt's error to the item's, so errors.As still
	// finds the API error. It needs adaptive clients (a ClientPool's, or
	// AdaptiveRetryer); Regions and AccountRegions set it.
	CountThrottles bool

	// OnDone, when not nil, is called once for each finished item, in the
	// order items finish, never concurrently with itself: a progress bar
	// needs no lock. It runs on the goroutine that ran the item, so it
	// should be quick.
	OnDone func(Progress)
}

// Budget is a weighted limit that several Fanouts share, so that one process
// stays within one bound however many fan-outs run at once. It is safe for
// concurrent use.
type Budget struct {
	sem  *semaphore.Weighted
	size int64
}

// NewBudget returns a Budget that lets at most size weight run at once.
// A size below 1 is raised to 1.
func NewBudget(size int64) *Budget {
	size = max(size, 1)
	return &Budget{sem: semaphore.NewWeighted(size), size: size}
}

// Size returns the total weight the Budget lets run at once.
func (b *Budget) Size() int64 { return b.size }

// Progress describes one finished item; OnDone receives it.
type Progress struct {
	Index   int           // position in keys
	Key     string        // the item's key
	Err     error         // nil, or the item's *ItemError
	Elapsed time.Duration // time spent in the operation (0 if it never ran)

	Skipped   error // non-nil when the item was skipped, not failed
	Throttles int   // the item's throttled attempts (Options.CountThrottles)

	// Counts of items so far, including this one: Done counts every
	// finished item, Failed those with Err; Total is the number of keys.
	Done, Failed, Total int
}

func (o *Options) validate() error {
	if o.Limit < 0 {
		return fmt.Errorf("fanout: Options.Limit is %d; want 0 (DefaultLimit) or more", o.Limit)
	}
	if o.ScopeLimit < 0 {
		return fmt.Errorf("fanout: Options.ScopeLimit is %d; want 0 (none) or more", o.ScopeLimit)
	}
	if o.ScopeLimit > 0 && o.Scope == nil {
		return fmt.Errorf("fanout: Options.ScopeLimit is %d but Options.Scope is nil", o.ScopeLimit)
	}
	if o.ItemTimeout < 0 {
		return fmt.Errorf("fanout: Options.ItemTimeout is %v; want 0 (none) or more", o.ItemTimeout)
	}
	return nil
}

func (o *Options) limit() int64 {
	if o.Limit == 0 {
		return DefaultLimit
	}
	return o.Limit
}
