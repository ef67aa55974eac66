package fanout

import (
	"errors"
	"time"
)

// Result is the outcome of one item: a Value or an Err, never both.
type Result[T any] struct {
	Index   int           // position in keys
	Key     string        // the item's key
	Value   T             // the operation's value; the zero value when Err is set
	Err     error         // nil, or an *ItemError
	Elapsed time.Duration // time spent in the operation (0 if it never ran)
}

// Results holds one Result per key, in input order.
type Results[T any] []Result[T]

// Values returns the values of the items that succeeded, in input order.
func (rs Results[T]) Values() []T {
	vs := make([]T, 0, len(rs))
	for _, r := range rs {
		if r.Err == nil {
			vs = append(vs, r.Value)
		}
	}
	return vs
}

// Failed returns the results that carry an error, in input order.
func (rs Results[T]) Failed() Results[T] {
	var failed Results[T]
	for _, r := range rs {
		if r.Err != nil {
			failed = append(failed, r)
		}
	}
	return failed
}

// Err joins the items' errors with errors.Join, in input order; it is nil
// if and only if every item succeeded.
func (rs Results[T]) Err() error {
	var errs []error
	for _, r := range rs {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return errors.Join(errs...)
}
