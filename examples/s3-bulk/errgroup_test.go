package main

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/awsfanout/fanout"
)

// eachListedErrgroup is eachListed written with errgroup and a weighted
// semaphore, as it is written without fanout: the same listing fed to the
// calls as its pages arrive, the same weights, every object's error kept.
// The README counts its lines beside eachListed's.
func (b *bulk) eachListedErrgroup(ctx context.Context, limit int64, prefix string,
	op func(context.Context, s3types.Object) (int64, error), weight func(s3types.Object) int64, ok func(int64)) (n int, errs []error) {
	p := s3.NewListObjectsV2Paginator(b.s3, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix}, stopOnRepeat)
	sem := semaphore.NewWeighted(limit)
	var g errgroup.Group
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
list:
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			fail(err)
			break
		}
		for _, obj := range page.Contents {
			w := int64(1)
			if weight != nil {
				w = weight(obj)
			}
			if w > limit {
				fail(fmt.Errorf("%s: weight %d is over the limit %d", aws.ToString(obj.Key), w, limit))
				continue
			}
			if err := sem.Acquire(ctx, w); err != nil {
				fail(err)
				break list
			}
			g.Go(func() error {
				defer sem.Release(w)
				v, err := op(ctx, obj)
				mu.Lock()
				defer mu.Unlock()
				n++
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", aws.ToString(obj.Key), err))
				} else {
					ok(v)
				}
				return nil
			})
		}
	}
	_ = g.Wait()
	return n, errs
}

// TestPerObjectSection: eachListed and its errgroup twin do the same work
// over the same bucket, and eachListed takes fewer lines.
func TestPerObjectSection(t *testing.T) {
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	defer srv.Close()
	cfg := staticConfig("us-east-1", srv.URL)
	pool, err := fanout.NewClientPool(cfg, s3.NewFromConfig, func(p *fanout.PoolOptions[s3.Options]) {
		p.ClientOptions = append(p.ClientOptions, func(o *s3.Options) { o.UsePathStyle = true })
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.CloseIdleConnections()
	client := pool.Get("us-east-1")
	ctx := context.Background()
	b := &bulk{s3: client, bucket: "per-object"}
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &b.bucket}); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		b.objects = append(b.objects, object{key: fmt.Sprintf("data/%05d.bin", i), size: int64(i%7) * unit})
	}
	f := fanout.New[int64](func(o *fanout.Options) { o.Limit = 16 })
	if _, err := fanout.RunItems(ctx, f, b.objects, b.put); err != nil {
		t.Fatal(err)
	}
	var ours, theirs int64
	n1, errs1 := b.eachListed(ctx, f, "data/", b.head, bySize, func(v int64) { ours += v })
	n2, errs2 := b.eachListedErrgroup(ctx, 16, "data/", b.head, bySize, func(v int64) { theirs += v })
	if n1 != 300 || n2 != 300 || len(errs1)+len(errs2) != 0 || ours != theirs {
		t.Fatalf("fanout: %d objects, %d bytes, %v; errgroup: %d objects, %d bytes, %v", n1, ours, errs1, n2, theirs, errs2)
	}

	lines := func(file, fn string) int {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(f.Decls, func(d ast.Decl) bool { fd, ok := d.(*ast.FuncDecl); return ok && fd.Name.Name == fn })
		if i < 0 {
			t.Fatalf("no func %s in %s", fn, file)
		}
		return fset.Position(f.Decls[i].End()).Line - fset.Position(f.Decls[i].Pos()).Line + 1
	}
	withFanout, withErrgroup := lines("main.go", "eachListed"), lines("errgroup_test.go", "eachListedErrgroup")
	t.Logf("the per-object section: %d lines with fanout, %d with errgroup", withFanout, withErrgroup)
	if withFanout >= withErrgroup {
		t.Errorf("eachListed is %d lines, errgroup's %d; want fewer", withFanout, withErrgroup)
	}
}
