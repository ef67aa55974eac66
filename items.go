package fanout

import (
	"context"
	"errors"
	"fmt"
	"iter"
)

// ItemResult is the outcome of one item of any type: the item, and its
// Result. Its Key is what ItemOptions.Key named the item, or empty.
type ItemResult[K, T any] struct {
	Item K
	Result[T]
}

// ItemResults holds one ItemResult per item, in input order.
type ItemResults[K, T any] []ItemResult[K, T]

// Values returns the values of the items that succeeded, in input order.
func (rs ItemResults[K, T]) Values() []T { return values(rs, resultOf[K, T]) }

// Failed returns the results that carry an error, in input order.
func (rs ItemResults[K, T]) Failed() ItemResults[K, T] { return filter(rs, resultOf[K, T], failed[T]) }

// Skipped returns the results that were skipped (see Skip), in input
// order.
func (rs ItemResults[K, T]) Skipped() ItemResults[K, T] {
	return filter(rs, resultOf[K, T], skipped[T])
}

// Err joins the items' errors with errors.Join, in input order; it is nil
// if and only if no item failed.
func (rs ItemResults[K, T]) Err() error { return joinErrs(rs, resultOf[K, T]) }

func resultOf[K, T any](r *ItemResult[K, T]) *Result[T] { return &r.Result }

// ItemOptions configures a call over items of type K: the Fanout's
// Options, and how to name, weigh and group an item. Options.Weight and
// Options.Scope take a key; set Weight and Scope here instead, which take
// the item. A Fanout's own Options.Weight or Options.Scope, from New,
// applies to each item's Key.
type ItemOptions[K any] struct {
	Options

	// Key names an item in its Result, its error and Progress, for logs
	// and for people; it need not be unique. nil leaves Key empty and
	// errors name the item by its index.
	Key func(item K) string

	// Weight returns the weight of one item; nil means every item weighs
	// 1, or what the Fanout's Options.Weight says of its Key. The rules of
	// Options.Weight hold.
	Weight func(item K) int64

	// Scope names the scope of an item, as Options.Scope does of a key. It
	// needs the items up front: a call over a sequence with a Scope fails.
	Scope func(item K) string
}

// RunItems calls op once per item, concurrently within f's limits, and
// returns one ItemResult per item in input order, as Fanout.Run does for
// keys; every guarantee of Run holds. Its error is ItemResults.Err().
//
// Invalid options, a nil ctx, f or op make RunItems return nil results
// and an error that names the problem, without calling op.
func RunItems[K, T any](ctx context.Context, f *Fanout[T], items []K,
	op func(ctx context.Context, item K) (T, error), optFns ...func(*ItemOptions[K])) (ItemResults[K, T], error) {
	r, err := newItemRun(ctx, f, items, nil, op, optFns)
	if err != nil {
		return nil, err
	}
	defer r.cancel(nil)
	results := make(ItemResults[K, T], len(items))
	r.itemResults = results
	r.keep = r.weight == nil && r.opts.OnDone == nil && r.scopeSems == nil
	r.wait(r.start())
	return results, results.Err()
}

// StreamItems calls op once per item of a sequence and yields each
// ItemResult as its item finishes, as Fanout.Stream does for keys. It
// pulls an item only when a worker is free to run it, so it holds no
// more items, and no more results, than the limit lets run at once,
// however long the sequence: a listing feeds the calls as its pages
// arrive (see PageItems). It pulls an item when a worker is free to take
// it: no more are pulled than can run at once, plus one waiting for room.
// Index counts the items in the order pulled. Progress.Total is 0: a
// sequence's length is not known.
//
// When the loop over the results stops early, StreamItems stops pulling,
// cancels the operations still running, stops the sequence and returns
// once every goroutine it started has ended. A page fetch the sequence is
// in the middle of is the sequence's own: cancel the ctx it fetches with
// (PageItems') to cut it short. Once ctx ends it pulls nothing more: the
// items already pulled that had not started fail with ErrNotStarted, and
// the rest of the sequence is one more result, failed the same way, so
// that a cancelled run never reads as a sequence done. With invalid
// options, a nil ctx, f, op or sequence, it yields one result, with Index
// -1 and the error, and pulls nothing.
func StreamItems[K, T any](ctx context.Context, f *Fanout[T], items iter.Seq[K],
	op func(ctx context.Context, item K) (T, error), optFns ...func(*ItemOptions[K])) iter.Seq[ItemResult[K, T]] {
	var seq iter.Seq2[K, error]
	if items != nil {
		seq = func(yield func(K, error) bool) {
			for item := range items {
				if !yield(item, nil) {
					return
				}
			}
		}
	}
	return StreamItems2(ctx, f, seq, op, optFns...)
}

// StreamItems2 is StreamItems over a sequence whose producer can fail,
// such as PageItems: its error is a result of its own, after the items
// it yielded before, wrapped in a *ProducerError, with the item yielded
// beside it (most often the zero value), and nothing more is pulled. The
// items already pulled each still get their result. A panic of the
// sequence's is its error, as a *PanicError; one raised once the loop
// has stopped it has no result left to go to, and is dropped.
func StreamItems2[K, T any](ctx context.Context, f *Fanout[T], items iter.Seq2[K, error],
	op func(ctx context.Context, item K) (T, error), optFns ...func(*ItemOptions[K])) iter.Seq[ItemResult[K, T]] {
	return func(yield func(ItemResult[K, T]) bool) {
		if items == nil {
			yield(ItemResult[K, T]{Result: Result[T]{Index: -1, Err: &ItemError{Index: -1, Err: errors.New("fanout: nil items sequence")}}})
			return
		}
		next, stop := iter.Pull2(items)
		defer func() { _ = guard(stop) }() // a sequence that panics once told to stop: nothing is left to tell
		r, err := newItemRun(ctx, f, nil, next, op, optFns)
		if err != nil {
			yield(ItemResult[K, T]{Result: Result[T]{Index: -1, Err: &ItemError{Index: -1, Err: err}}})
			return
		}
		for res := range r.stream() {
			if !yield(res) {
				return
			}
		}
	}
}

// ProducerError is the error of the item a sequence's producer failed to
// yield (StreamItems2): its error, or its panic as a *PanicError.
type ProducerError struct{ Err error }

func (e *ProducerError) Error() string { return "fanout: the items' producer failed: " + e.Err.Error() }

// Unwrap returns the producer's error.
func (e *ProducerError) Unwrap() error { return e.Err }

// newItemRun sets up a call over items, a slice, or pull, a sequence.
func newItemRun[K, T any](ctx context.Context, f *Fanout[T], items []K, pull func() (K, error, bool),
	op func(context.Context, K) (T, error), optFns []func(*ItemOptions[K])) (*run[K, T], error) {
	if f == nil {
		return nil, errors.New("fanout: nil *Fanout")
	}
	o := ItemOptions[K]{Options: f.options()}
	byKey := o.Options // the Fanout's Weight and Scope, which take a key
	o.Options.Weight, o.Options.Scope = nil, nil
	if f.fanoutErr() == nil {
		if err := apply("call", &o, optFns); err != nil {
			return nil, err
		}
	}
	switch {
	case o.Options.Weight != nil:
		return nil, errors.New("fanout: ItemOptions.Options.Weight is set; set ItemOptions.Weight, which takes the item")
	case o.Options.Scope != nil:
		return nil, errors.New("fanout: ItemOptions.Options.Scope is set; set ItemOptions.Scope, which takes the item")
	}
	r := &run[K, T]{items: items, pull: pull, key: o.Key, weight: o.Weight, scopeName: o.Scope, op: op}
	var err error
	if r.weight == nil && byKey.Weight != nil {
		r.weight, err = byItem(o.Key, byKey.Weight, "Weight")
	}
	if err == nil && r.scopeName == nil && byKey.Scope != nil {
		r.scopeName, err = byItem(o.Key, byKey.Scope, "Scope")
	}
	if err != nil {
		return nil, err
	}
	return r, r.init(f, ctx, o.Options, op == nil)
}

// byItem applies fn, an option of the Fanout's that takes a key, to each
// item's key.
func byItem[K, V any](key func(K) string, fn func(string) V, name string) (func(K) V, error) {
	if key == nil {
		return nil, fmt.Errorf("fanout: the Fanout's Options.%s takes a key, and ItemOptions.Key is nil; set ItemOptions.Key, or ItemOptions.%[1]s", name)
	}
	return func(item K) V { return fn(key(item)) }, nil
}
