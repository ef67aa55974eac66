package fanout

import (
	"errors"
	"time"
)

// Result is the outcome of one item: a Value, an Err, or a Skipped reason,
// exactly one of them.
type Result[T any] struct {
	Index   int           // position in the input: keys or items, or the order pulled from a sequence
	Key     string        // the item's key
	Value   T             // the operation's value; the zero value unless it succeeded
	Err     error         // nil, or an *ItemError
	Skipped error         // nil, or why the item was skipped rather than failed (see Skip)
	Elapsed time.Duration // time spent in the operation (0 if it never ran)
}

// OK reports whether the item succeeded.
func (r Result[T]) OK() bool { return r.Err == nil && r.Skipped == nil }

// Results holds one Result per key, in input order.
type Results[T any] []Result[T]

// Values returns the values of the items that succeeded, in input order.
func (rs Results[T]) Values() []T { return values(rs, self[T]) }

// Failed returns the results that carry an error, in input order.
func (rs Results[T]) Failed() Results[T] { return filter(rs, self[T], failed[T]) }

// Skipped returns the results that were skipped (see Skip), in input
// order. Items that never started are not among them: they failed with
// ErrNotStarted.
func (rs Results[T]) Skipped() Results[T] { return filter(rs, self[T], skipped[T]) }

// Err joins the items' errors with errors.Join, in input order; it is nil
// if and only if no item failed. Skipped items are not failures.
func (rs Results[T]) Err() error { return joinErrs(rs, self[T]) }

// The methods of Results and ItemResults, over a slice of R and res,
// which finds the Result in an R.

func self[T any](r *Result[T]) *Result[T] { return r }
func failed[T any](r *Result[T]) bool     { return r.Err != nil }
func skipped[T any](r *Result[T]) bool    { return r.Skipped != nil }

func values[S ~[]R, R, T any](rs S, res func(*R) *Result[T]) []T {
	vs := make([]T, 0, len(rs))
	for i := range rs {
		if r := res(&rs[i]); r.OK() {
			vs = append(vs, r.Value)
		}
	}
	return vs
}

func filter[S ~[]R, R, T any](rs S, res func(*R) *Result[T], keep func(*Result[T]) bool) S {
	var out S
	for i := range rs {
		if keep(res(&rs[i])) {
			out = append(out, rs[i])
		}
	}
	return out
}

func joinErrs[S ~[]R, R, T any](rs S, res func(*R) *Result[T]) error {
	var errs []error
	for i := range rs {
		if err := res(&rs[i]).Err; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Progress describes one finished item; Options.OnDone receives it.
type Progress struct {
	Index   int           // position in the input, as Result.Index
	Key     string        // the item's key
	Err     error         // nil, or the item's *ItemError
	Skipped error         // non-nil when the item was skipped (see Skip)
	Elapsed time.Duration // time spent in the operation (0 if it never ran)

	// Counts of items so far, including this one: Done counts every
	// finished item, Failed those with Err; Total is the number of keys or
	// items, 0 for a sequence (StreamItems), whose length is not known.
	Done, Failed, Total int
}
