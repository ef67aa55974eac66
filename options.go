package fanout

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"
)

// DefaultLimit is the Limit of Options that do not set one: a modest
// number of calls in flight, below the smallest burst a typical API
// quota allows.
const DefaultLimit = 32

// Options configures a Fanout. New starts from the defaults (DefaultLimit,
// every item weighs 1, no deadline per item, a failure does not stop the
// other items) and applies its option functions in order; a value that
// cannot be honoured makes every call fail with an error that names it.
//
// Options given to New apply to every call; options given to Run or Stream
// start from the Fanout's, apply to that call only and work on a copy, so
// concurrent calls never see each other's settings.
type Options struct {
	// Limit bounds the total weight of operations running at once; it must
	// be at least 1. Default: DefaultLimit.
	//
	// Set in New, it bounds the Fanout as a whole: all of its concurrent
	// calls share it. Set per call, it caps that call inside the Fanout's budget; it
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
	// The items that never started fail with ErrNotStarted.
	FailFast bool

	// ItemTimeout, when positive, is the deadline of each operation, counted
	// from its start. 0 means none; a negative value makes calls fail.
	//
	// The operation's context behaves as a context.WithTimeout's, its
	// Cause and the contexts derived from it included. It costs one
	// allocation per item, and, from the operation's first call of its Done
	// method (every call of the AWS SDK makes one), what a
	// context.WithTimeout costs besides.
	ItemTimeout time.Duration

	// Scope, when not nil, names the scope of a key: a group of keys that
	// shares something worth bounding, such as a tenant. ScopeLimit, when
	// positive, bounds how many scopes have items in flight at once, inside
	// the Limit: limits nest, they never multiply. A scope is in flight from the start of its first item to the
	// end of its last; items are started scope by scope, in order of each
	// scope's first key.
	//
	// Like Limit, a ScopeLimit set in New is shared by the Fanout's
	// concurrent calls that have a Scope (a scope in flight in two calls
	// counts twice), and one set per call caps that call inside it. A
	// ScopeLimit set per call without a Scope makes the call fail.
	Scope      func(key string) string
	ScopeLimit int

	// OnDone, when not nil, is called once for each finished item, in the
	// order items finish, never concurrently with itself, across all the
	// Fanout's calls: a progress bar needs no lock. It runs on the goroutine
	// that ran the item, so it should be quick. A panic in it becomes the
	// item's error.
	OnDone func(Progress)

	// TracerProvider, when not nil, gets one span per call (SpanCall) and
	// one per item (SpanItem), whose context the operation receives, so
	// that the SDK's spans nest under the item's. MeterProvider, when not
	// nil, gets the items by outcome, their durations, their waits for the
	// limits and the items in flight; Logger, when not nil, a Debug record
	// per item. They are the SDK's own interfaces, from smithy-go, which
	// its smithyoteltracing and smithyotelmetrics modules adapt from
	// OpenTelemetry; see the package documentation, Telemetry. nil, the
	// default, costs nothing per item. Telemetry never changes a result: a
	// panic in any of them turns the call's telemetry off, and the Logger
	// hears of it once.
	TracerProvider tracing.TracerProvider
	MeterProvider  metrics.MeterProvider
	Logger         *slog.Logger
}

// defaultOptions are the Options every Fanout starts from.
func defaultOptions() Options { return Options{Limit: DefaultLimit} }

func (o *Options) validate() error {
	if o.Limit < 1 {
		return fmt.Errorf("fanout: Options.Limit is %d; want 1 or more (DefaultLimit is %d)", o.Limit, DefaultLimit)
	}
	if o.ScopeLimit < 0 {
		return fmt.Errorf("fanout: Options.ScopeLimit is %d; want 0 (none) or more", o.ScopeLimit)
	}
	if o.Budget != nil && o.Budget.sem == nil {
		return errors.New("fanout: Options.Budget was not made by NewBudget")
	}
	if o.ItemTimeout < 0 {
		return fmt.Errorf("fanout: Options.ItemTimeout is %v; want 0 (none) or more", o.ItemTimeout)
	}
	return nil
}

// Budget is a weighted limit that several Fanouts share, so that one process
// stays within one bound however many fan-outs run at once. It is safe for
// concurrent use.
type Budget struct {
	sem  *weighted
	size int64
}

// NewBudget returns a Budget that lets at most size weight run at once, or
// an error if size is below 1.
func NewBudget(size int64) (*Budget, error) {
	if size < 1 {
		return nil, fmt.Errorf("fanout: NewBudget(%d): the size must be 1 or more", size)
	}
	return &Budget{sem: newWeighted(size), size: size}, nil
}

// Size returns the total weight the Budget lets run at once; 0 for a nil
// Budget.
func (b *Budget) Size() int64 {
	if b == nil {
		return 0
	}
	return b.size
}

var errBudgetPerCall = errors.New("fanout: Options.Budget can only be set in New")

// apply applies optFns to o in order: the one way every constructor and
// call of this package takes its options. A nil function, or one that
// panics, is an error that names it.
func apply[O any](what string, o *O, optFns []func(*O)) error {
	for i, fn := range optFns {
		if fn == nil {
			return fmt.Errorf("fanout: %s: option function %d is nil", what, i)
		}
		if err := guard(func() { fn(o) }); err != nil {
			return fmt.Errorf("fanout: %s: option function %d: %w", what, i, err)
		}
	}
	return nil
}
