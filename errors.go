package fanout

import (
	"errors"
	"fmt"
)

// ErrNotStarted is the cause of every item that never started: its
// context was cancelled, or FailFast stopped the fan-out, before it
// started. It is a failure: the item has no answer. The item's error wraps
// both ErrNotStarted and the reason, so errors.Is finds either.
var ErrNotStarted = errors.New("fanout: not started")

// ItemError is the error of one item. Every failed Result carries one.
// It names the item and wraps the operation's error, so errors.As and
// errors.Is reach the cause (an API error, context.DeadlineExceeded)
// through it, and through the error that Run joins from all of them.
type ItemError struct {
	Index int    // position in keys
	Key   string // the item's key
	Err   error  // what went wrong
}

var _ error = (*ItemError)(nil)

func (e *ItemError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("fanout: item %d: %v", e.Index, e.Err)
	}
	return fmt.Sprintf("fanout: item %d %q: %v", e.Index, e.Key, e.Err)
}

// Unwrap returns the item's underlying error.
func (e *ItemError) Unwrap() error { return e.Err }

// PanicError is what a panic inside an operation becomes: that item's error,
// with the value passed to panic and the goroutine's stack at that point.
// The other items go on.
type PanicError struct {
	Value any
	Stack []byte
}

var _ error = (*PanicError)(nil)

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so errors.Is and
// errors.As see through a panic(err).
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// notStartedError is the error of an item that never started.
type notStartedError struct{ cause error }

func (e *notStartedError) Error() string        { return "not started: " + e.cause.Error() }
func (e *notStartedError) Is(target error) bool { return target == ErrNotStarted }
func (e *notStartedError) Unwrap() error        { return e.cause }

// Skip marks an operation's outcome as skipped, which is not a failure: an
// operation that returns Skip(reason), or an error wrapping it, gives its
// item a Result with Skipped set to reason and no Err. Use it for items
// that are legitimately absent, such as an object deleted since it was
// listed.
func Skip(reason error) error {
	if reason == nil {
		reason = errors.New("skipped")
	}
	return &skipError{reason}
}

type skipError struct{ reason error }

// skipReason returns the reason of a Skip that err is or wraps, or nil.
func skipReason(err error) error {
	if err == nil {
		return nil
	}
	var skip *skipError
	if errors.As(err, &skip) {
		return skip.reason
	}
	return nil
}

func (e *skipError) Error() string { return "fanout: skip: " + e.reason.Error() }
func (e *skipError) Unwrap() error { return e.reason }
