package fanout

import (
	"context"
	"iter"
)

// Paginator is what every SDK paginator has: HasMorePages, with NextPage
// passed beside it as a method value (its option type differs per service,
// which an interface cannot spell).
type Paginator interface{ HasMorePages() bool }

// Collect drains a paginator and returns the items of every page, from
// items(page). Pass the paginator and its NextPage method:
//
//	p := ec2.NewDescribeInstancesPaginator(client, &ec2.DescribeInstancesInput{})
//	rs, err := fanout.Collect(ctx, p, p.NextPage, func(out *ec2.DescribeInstancesOutput) []types.Reservation {
//		return out.Reservations
//	})
//
// Paginators are not safe for concurrent use: make one per operation, and
// fan out across targets instead.
func Collect[Item, Out, O any](ctx context.Context, p Paginator,
	next func(context.Context, ...func(*O)) (Out, error), items func(Out) []Item) ([]Item, error) {
	var all []Item
	for page, err := range Pages(ctx, p, next) {
		if err != nil {
			return all, err
		}
		all = append(all, items(page)...)
	}
	return all, nil
}

// Pages yields a paginator's pages one at a time, and stops after the
// first error, which it yields.
func Pages[Out, O any](ctx context.Context, p Paginator,
	next func(context.Context, ...func(*O)) (Out, error)) iter.Seq2[Out, error] {
	return func(yield func(Out, error) bool) {
		for p.HasMorePages() {
			page, err := next(ctx)
			if !yield(page, err) || err != nil {
				return
			}
		}
	}
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
// failed. Breaking out of the loop cancels the rest, as with Stream.
func Items[Item any](ctx context.Context, f *Fanout[int], keys []string,
	pages func(ctx context.Context, key string) iter.Seq2[[]Item, error], optFns ...func(*Options)) iter.Seq[Page[Item]] {
	return func(yield func(Page[Item]) bool) {
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
