package fanout

import (
	"context"
	"errors"
	"fmt"
	"iter"
)

// Paginator is what every SDK paginator has: HasMorePages, with NextPage
// passed beside it as a method value (its option type differs per service,
// which an interface cannot spell).
type Paginator interface{ HasMorePages() bool }

// Collect drains a paginator and returns the items of every page, from
// items(page). Pass the paginator and its NextPage method:
//
//	p := ec2.NewDescribeInstancesPaginator(client, &ec2.DescribeInstancesInput{},
//		func(o *ec2.DescribeInstancesPaginatorOptions) { o.StopOnDuplicateToken = true })
//	rs, err := fanout.Collect(ctx, p, p.NextPage, func(out *ec2.DescribeInstancesOutput) []types.Reservation {
//		return out.Reservations
//	})
//
// It stops at the first error, returning the items so far with it, and
// when ctx ends, with ctx's error, even if next ignores ctx. A nil ctx,
// paginator, next or items is an error that names it; a panic in the
// paginator, next or items becomes a *PanicError.
//
// Paginators are not safe for concurrent use: make one per operation, and
// fan out across targets instead.
func Collect[Item, Out, O any](ctx context.Context, p Paginator,
	next func(context.Context, ...func(*O)) (Out, error), items func(Out) []Item) ([]Item, error) {
	if err := checkPaging(ctx, "Collect", p, next == nil); err != nil {
		return nil, err
	}
	if items == nil {
		return nil, errors.New("fanout: Collect: nil items func")
	}
	var all []Item
	for item, err := range PageItems(ctx, p, next, items) {
		if err != nil {
			return all, err
		}
		all = append(all, item)
	}
	return all, nil
}

// Pages yields a paginator's pages one at a time, and stops after the
// first error, which it yields. It stops when ctx ends, yielding ctx's
// error, even if next ignores ctx. A nil ctx, paginator or next is
// yielded as an error that names it; a panic in the paginator or next is
// yielded as a *PanicError.
func Pages[Out, O any](ctx context.Context, p Paginator,
	next func(context.Context, ...func(*O)) (Out, error)) iter.Seq2[Out, error] {
	if err := checkPaging(ctx, "Pages", p, next == nil); err != nil {
		return func(yield func(Out, error) bool) {
			var zero Out
			yield(zero, err)
		}
	}
	return pageSeq(ctx, p, next)
}

// PageItems yields the items of a paginator's pages, from items(page),
// one at a time, fetching each page only when the consumer has taken
// every item of the one before: fed to StreamItems2, a listing runs only
// as far ahead of the calls on its items as they drain it.
//
//	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: &bucket})
//	objects := fanout.PageItems(ctx, p, p.NextPage, func(out *s3.ListObjectsV2Output) []types.Object {
//		return out.Contents
//	})
//	for r := range fanout.StreamItems2(ctx, f, objects, deleteObject) { ... }
//
// It stops after the first error, which it yields, and when ctx ends,
// yielding ctx's error, as Pages does. A nil ctx, paginator, next or
// items is yielded as an error that names it; a panic in the paginator,
// next or items is yielded as a *PanicError.
func PageItems[Item, Out, O any](ctx context.Context, p Paginator,
	next func(context.Context, ...func(*O)) (Out, error), items func(Out) []Item) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		var zero Item
		err := checkPaging(ctx, "PageItems", p, next == nil)
		if err == nil && items == nil {
			err = errors.New("fanout: PageItems: nil items func")
		}
		if err != nil {
			yield(zero, err)
			return
		}
		for page, err := range pageSeq(ctx, p, next) {
			var got []Item
			if err == nil {
				got, err = guarded(func() ([]Item, error) { return items(page), nil })
			}
			if err != nil {
				yield(zero, err)
				return
			}
			for _, item := range got {
				if !yield(item, nil) {
					return
				}
			}
		}
	}
}

func checkPaging(ctx context.Context, fn string, p Paginator, nilNext bool) error {
	switch {
	case ctx == nil:
		return fmt.Errorf("fanout: %s: nil Context", fn)
	case p == nil:
		return fmt.Errorf("fanout: %s: nil paginator", fn)
	case nilNext:
		return fmt.Errorf("fanout: %s: nil next func (pass the paginator's NextPage)", fn)
	}
	return nil
}

// pageSeq is Pages on checked input. Only the calls into the paginator
// are guarded: a panic in the loop body that yield runs is the consumer's.
func pageSeq[Out, O any](ctx context.Context, p Paginator,
	next func(context.Context, ...func(*O)) (Out, error)) iter.Seq2[Out, error] {
	return func(yield func(Out, error) bool) {
		for {
			more, err := guarded(func() (bool, error) { return p.HasMorePages(), nil })
			if err == nil && !more {
				return
			}
			var page Out
			switch {
			case err != nil:
			case ctx.Err() != nil: // next may ignore ctx and never stop
				err = ctx.Err()
			default:
				page, err = guarded(func() (Out, error) { return next(ctx) })
			}
			if !yield(page, err) || err != nil {
				return
			}
		}
	}
}

// guarded calls fn, whose panic becomes its *PanicError.
func guarded[V any](fn func() (V, error)) (v V, err error) {
	defer recoverInto(&err)
	return fn()
}

// Page is a batch of items from one key's pages, as Items yields it.
// Err is set, and Items empty, when the key's pagination failed; Done is
// set on the last batch of a key.
type Page[Item any] struct {
	Index int    // position of the key in keys, on the Done page
	Key   string // the key
	Items []Item
	Err   error // nil, or an *ItemError
	Done  bool  // the key's last batch
}

// Items fans out over keys, each with its own pages, and yields the items
// page by page as they arrive, from all keys at once, without holding them
// all: at most one page per operation in flight waits for the consumer.
// Each key ends with a Page whose Done is set, carrying its error if it
// failed. Breaking out of the loop cancels the rest, as with Stream. A nil
// ctx, f or pages fails every key with an error that names it.
func Items[Item any](ctx context.Context, f *Fanout[int], keys []string,
	pages func(ctx context.Context, key string) iter.Seq2[[]Item, error], optFns ...func(*Options)) iter.Seq[Page[Item]] {
	return func(yield func(Page[Item]) bool) {
		if err := checkItems(ctx, pages == nil); err != nil {
			for i, key := range keys {
				if !yield(Page[Item]{Index: i, Key: key, Err: &ItemError{Index: i, Key: key, Err: err}, Done: true}) {
					return
				}
			}
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ch := make(chan Page[Item])
		op := func(ctx context.Context, key string) (int, error) {
			n := 0
			for items, err := range pages(ctx, key) {
				if err != nil {
					return n, err
				}
				n += len(items)
				select {
				case ch <- Page[Item]{Key: key, Items: items}:
				case <-ctx.Done():
					return n, context.Cause(ctx)
				}
			}
			return n, nil
		}
		go func() {
			defer close(ch)
			for r := range f.Stream(ctx, keys, op, optFns...) {
				select {
				case ch <- Page[Item]{Index: r.Index, Key: r.Key, Err: r.Err, Done: true}:
				case <-ctx.Done():
				}
			}
		}()
		defer func() {
			cancel()
			for range ch { // let the producer see the cancel and end
			}
		}()
		for pg := range ch {
			if !yield(pg) {
				return
			}
		}
	}
}

func checkItems(ctx context.Context, nilPages bool) error {
	switch {
	case ctx == nil:
		return errors.New("fanout: Items: nil Context")
	case nilPages:
		return errors.New("fanout: Items: nil pages func")
	}
	return nil
}
