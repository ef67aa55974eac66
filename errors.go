package fanout

import (
	"errors"
	"fmt"
)

// ErrSkipped is the cause of every item that never ran: its context was
// cancelled, or FailFast stopped the fan-out, before it started. The
// item's error wraps both ErrSkipped and the reason, so errors.Is finds
// either.
var ErrSkipped = errors.New("fanout: skipped")

// ItemError is the error of one item. Every failed Result carries one.
// It names the item and wraps the operation's error, so errors.As and
// errors.Is reach the cause (a smithy.APIError, context.DeadlineExceeded)
// through it, and through the error that Run joins from all of them.
type ItemError struct {
	Index int    // position in keys
	Key   string // the item's key
	Err   error  // what went wrong
}

var _ error = (*ItemError)(nil)

func (e *ItemError) Error() string {
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

// skippedError is the error of an item that never ran.
type skippedError struct{ cause error }

func (e *skippedError) Error() string        { return "skipped: " + e.cause.Error() }
func (e *skippedError) Is(target error) bool { return target == ErrSkipped }
func (e *skippedError) Unwrap() error        { return e.cause }

// Skip marks an operation's outcome as skipped rather than failed: an
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

func (e *skipError) Error() string { return "fanout: skip: " + e.reason.Error() }
func (e *skipError) Unwrap() error { return e.reason }
