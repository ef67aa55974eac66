package scenario

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/awsfanout/fanout"
)

// listedObject is one object of a listing, as S3's ListObjectsV2 gives it.
type listedObject struct {
	Key  string
	Size int64
}

// listPage is one page of a listing.
type listPage struct{ Objects []listedObject }

// pageSize is a listing's page: S3's 1,000 keys.
const pageSize = 1000

// lister is an in-process paginator over n objects, shaped as the SDK's
// are (HasMorePages, NextPage with options): each page is built when
// asked for, as one arrives over the wire.
type lister struct{ n, next int }

func (l *lister) HasMorePages() bool { return l.next < l.n }

func (l *lister) NextPage(ctx context.Context, _ ...func(*struct{})) (*listPage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	page := &listPage{Objects: make([]listedObject, 0, min(pageSize, l.n-l.next))}
	for ; l.next < l.n && len(page.Objects) < pageSize; l.next++ {
		page.Objects = append(page.Objects, listedObject{Key: fmt.Sprintf("logs/2026/%09d.gz", l.next), Size: int64(l.next%4096) << 10})
	}
	return page, nil
}

func objectsOf(p *listPage) []listedObject { return p.Objects }

// inspect is the per-object work: a checksum of its key, standing for a
// call on the object.
func inspect(_ context.Context, o listedObject) (uint32, error) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(o.Key))
	return h.Sum32(), nil
}

// pipeline: list p.PipelineItems objects and inspect each at Limit, each
// object weighing 1 per MiB begun. fanout streams the listing into the
// fan-out (PageItems, StreamItems2); errgroup, as usually written, lists
// everything first and then fans out over the slice. For peak heap.
func pipeline(ctx context.Context, impl string, p Params) (Outcome, error) {
	if impl != Fanout && impl != Errgroup {
		return Outcome{Impl: impl}, ErrSkipped
	}
	n := p.PipelineItems
	o := Outcome{Impl: impl, Limit: p.Limit} // Items: the results seen
	weight := func(o listedObject) int64 { return 1 + o.Size>>20 }
	stop := sampleHeap(&o)
	cpu0, start := cpuTime(), time.Now()
	var sum uint32 // every result is used
	switch impl {
	case Fanout:
		f := fanout.New[uint32](func(o *fanout.Options) { o.Limit = int64(p.Limit) })
		l := &lister{n: n}
		objects := fanout.PageItems(ctx, l, l.NextPage, objectsOf)
		for r := range fanout.StreamItems2(ctx, f, objects, inspect, func(o *fanout.ItemOptions[listedObject]) { o.Weight = weight }) {
			if r.Err != nil {
				o.Failed++
			}
			o.Items++
			sum += r.Value
		}
	case Errgroup:
		l := &lister{n: n}
		objects, err := fanout.Collect(ctx, l, l.NextPage, objectsOf)
		if err != nil {
			stop()
			return o, err
		}
		values := make([]uint32, len(objects))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(p.Limit) // errgroup has no weights: one place per object
		for i, obj := range objects {
			g.Go(func() (err error) {
				values[i], err = inspect(gctx, obj)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			o.Failed++
		}
		for _, v := range values {
			sum += v
		}
		o.Items = len(values)
	}
	o.WallS, o.CPUS = time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds()
	stop()
	_ = sum
	return o, nil
}
