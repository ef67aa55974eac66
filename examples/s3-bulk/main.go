// Command s3-bulk fans out over thousands of S3 objects, per item: it
// seeds a bucket, heads every object, copies each one with a weight by its
// size (so a few big copies do not run beside many others), deletes the
// originals in batches of 1,000 keys, and checks what is left.
//
//	go run ./examples/s3-bulk                 # an in-process S3 (gofakes3): no account, no network
//	go run ./examples/s3-bulk -endpoint URL   # an S3 emulator
//	go run ./examples/s3-bulk -aws            # your account: it creates, fills and empties a bucket of its own
//
// The last line of stdout is
//
//	objects=N bytes=B copied=C deleted=D failed=F elapsed=1.234s
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/awsfanout/fanout"
)

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) }

// unit is what one unit of weight stands for: a copy of up to 256 KiB
// weighs 1, one of 4 MiB weighs 16.
const unit = 256 << 10

type options struct {
	aws      bool
	endpoint string
	region   string
	objects  int
	limit    int
	seed     uint64
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("s3-bulk", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.aws, "aws", false, "use your AWS account (creates, fills and empties a bucket of its own)")
	fs.StringVar(&o.endpoint, "endpoint", "", "use an S3 emulator at this URL")
	fs.StringVar(&o.region, "region", "us-east-1", "the bucket's region")
	fs.IntVar(&o.objects, "objects", 2000, "objects to work on")
	fs.IntVar(&o.limit, "limit", 64, "weight in flight: units of 256 KiB being copied at once")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the objects' sizes")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.aws && o.endpoint != "":
		return o, errors.New("-aws and -endpoint exclude each other")
	case o.objects < 1:
		return o, fmt.Errorf("-objects is %d; want 1 or more", o.objects)
	case o.limit < 16:
		return o, fmt.Errorf("-limit is %d; want 16 or more, the weight of the biggest object (4 MiB)", o.limit)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "s3-bulk:", err)
		}
		return 2
	}
	cfg, done, err := awsConfig(ctx, o, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "s3-bulk:", err)
		return 1
	}
	defer done()
	pool, err := fanout.NewClientPool(cfg, s3.NewFromConfig, func(p *fanout.PoolOptions[s3.Options]) {
		p.ClientOptions = append(p.ClientOptions, func(so *s3.Options) { so.UsePathStyle = o.endpoint != "" || !o.aws })
	})
	if err != nil {
		fmt.Fprintln(stderr, "s3-bulk:", err)
		return 1
	}
	defer pool.CloseIdleConnections()
	client, err := pool.Client("", o.region) // Get would not check the region
	if err != nil {
		fmt.Fprintln(stderr, "s3-bulk:", err)
		return 1
	}
	b := &bulk{s3: client, bucket: fmt.Sprintf("fanout-s3-bulk-%d", time.Now().UnixNano())}
	rng := rand.New(rand.NewPCG(o.seed, o.seed))
	for i := range o.objects {
		b.objects = append(b.objects, object{key: fmt.Sprintf("data/%05d.bin", i), size: size(rng)})
	}
	start := time.Now()
	sum, err := b.do(ctx, o, stdout)
	fmt.Fprintf(stdout, "objects=%d bytes=%d copied=%d deleted=%d failed=%d elapsed=%.3fs\n",
		o.objects, sum.bytes, sum.copied, sum.deleted, sum.failed, time.Since(start).Seconds())
	if err != nil {
		fmt.Fprintln(stderr, "s3-bulk:", err)
		return 1
	}
	if sum.failed > 0 {
		return 1
	}
	return 0
}

// size draws an object size: most small, a few up to 4 MiB.
func size(rng *rand.Rand) int64 {
	if rng.IntN(20) == 0 {
		return 1<<20 + rng.Int64N(3<<20)
	}
	return 1 + rng.Int64N(64<<10)
}

func awsConfig(ctx context.Context, o options, stdout io.Writer) (aws.Config, func(), error) {
	switch {
	case o.aws:
		fmt.Fprintln(stdout, "AWS: your account, through the default credential chain; a bucket of this run's own")
		cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(o.region))
		return cfg, func() {}, err
	case o.endpoint != "":
		fmt.Fprintf(stdout, "emulator: %s\n", o.endpoint)
		return staticConfig(o.region, o.endpoint), func() {}, nil
	}
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	fmt.Fprintln(stdout, "simulated S3: an in-process gofakes3 server; no AWS account or network used (-aws for your account)")
	return staticConfig(o.region, srv.URL), srv.Close, nil
}

func staticConfig(region, endpoint string) aws.Config {
	return aws.Config{
		Region: region, BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "example-secret", ""),
	}
}

type bulk struct {
	s3      *s3.Client
	bucket  string
	objects []object // to put
}

// object is one object to put: its key and size.
type object struct {
	key  string
	size int64
}

type summary struct {
	bytes                   int64
	copied, deleted, failed int
}

// do runs the steps, each a fan-out, and reports each on stdout. Puts
// fan out over the objects to make; heads and copies over the bucket's
// listing, as its pages arrive; deletes over batches of 1,000 keys.
func (b *bulk) do(ctx context.Context, o options, stdout io.Writer) (summary, error) {
	var sum summary
	if _, err := b.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &b.bucket}); err != nil {
		return sum, fmt.Errorf("create bucket %s: %w", b.bucket, err)
	}
	defer b.empty(context.WithoutCancel(ctx))
	f := fanout.New[int64](func(fo *fanout.Options) { fo.Limit = int64(o.limit) })
	step := func(name string, done, failed int, errs []error, took time.Duration) {
		sum.failed += failed
		what := "objects"
		if name == "delete" {
			what = "batches"
		}
		fmt.Fprintf(stdout, "%-6s %5d %s in %.3fs, %d failed\n", name, done, what, took.Seconds(), failed)
		for _, err := range errs[:min(3, len(errs))] {
			fmt.Fprintf(stdout, "  %v\n", err)
		}
	}
	t := time.Now()
	put, _ := fanout.RunItems(ctx, f, b.objects, b.put, func(po *fanout.ItemOptions[object]) {
		po.Key = func(obj object) string { return obj.key }
		po.Weight = func(obj object) int64 { return 1 + obj.size/unit }
	})
	step("put", len(put), len(put.Failed()), errorsOf(put.Failed()), time.Since(t))

	t = time.Now()
	n, errs := b.eachListed(ctx, f, "data/", b.head, nil, func(size int64) { sum.bytes += size })
	step("head", n, len(errs), errs, time.Since(t))

	t = time.Now()
	n, errs = b.eachListed(ctx, f, "data/", b.copy, bySize, func(int64) { sum.copied++ })
	step("copy", n, len(errs), errs, time.Since(t))

	t = time.Now()
	deleted, _ := b.deleteAll(ctx, "data/")
	step("delete", len(deleted), len(deleted.Failed()), errorsOf(deleted.Failed()), time.Since(t))
	for _, n := range deleted.Values() {
		sum.deleted += int(n)
	}

	left, err := b.count(ctx, "data/")
	if err == nil && left != 0 {
		err = fmt.Errorf("%d originals left after the deletes", left)
	}
	return sum, err
}

// eachListed runs op on every object under prefix as the listing yields
// it, each weighing what weight says (nil: 1); ok gets the value of each
// that succeeded. It returns how many objects it saw and the errors, each
// naming its key. This is the per-object section the README sets beside
// the same work with errgroup (eachListedErrgroup, in the tests).
func (b *bulk) eachListed(ctx context.Context, f *fanout.Fanout[int64], prefix string,
	op func(context.Context, s3types.Object) (int64, error), weight func(s3types.Object) int64, ok func(int64)) (n int, errs []error) {
	p := s3.NewListObjectsV2Paginator(b.s3, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix}, stopOnRepeat)
	listed := fanout.PageItems(ctx, p, p.NextPage, func(out *s3.ListObjectsV2Output) []s3types.Object { return out.Contents })
	for r := range fanout.StreamItems2(ctx, f, listed, op, func(o *fanout.ItemOptions[s3types.Object]) {
		o.Key = func(obj s3types.Object) string { return aws.ToString(obj.Key) }
		o.Weight = weight
	}) {
		if n++; r.Err != nil {
			errs = append(errs, r.Err)
		} else {
			ok(r.Value)
		}
	}
	return n, errs
}

// bySize weighs a copy by its size in units: a few big copies do not run
// beside many others.
func bySize(obj s3types.Object) int64 { return 1 + aws.ToInt64(obj.Size)/unit }

func errorsOf[K, T any](rs fanout.ItemResults[K, T]) []error {
	var errs []error
	for _, r := range rs {
		errs = append(errs, r.Err)
	}
	return errs
}

func (b *bulk) put(ctx context.Context, obj object) (int64, error) {
	body := bytes.Repeat([]byte{'x'}, int(obj.size))
	_, err := b.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &b.bucket, Key: &obj.key, Body: bytes.NewReader(body)})
	return obj.size, err
}

func (b *bulk) head(ctx context.Context, obj s3types.Object) (int64, error) {
	out, err := b.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: obj.Key})
	if err != nil {
		return 0, err
	}
	return aws.ToInt64(out.ContentLength), nil
}

func (b *bulk) copy(ctx context.Context, obj s3types.Object) (int64, error) {
	dst := "copy/" + aws.ToString(obj.Key)
	_, err := b.s3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &b.bucket, Key: &dst, CopySource: aws.String(b.bucket + "/" + aws.ToString(obj.Key))})
	return aws.ToInt64(obj.Size), err
}

// deleteAll deletes every object under prefix in batches of up to 1,000
// keys, 8 batches at once, and returns how many S3 deleted of each.
func (b *bulk) deleteAll(ctx context.Context, prefix string) (fanout.ItemResults[[]s3types.ObjectIdentifier, int64], error) {
	p := s3.NewListObjectsV2Paginator(b.s3, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix}, stopOnRepeat)
	ids, err := fanout.Collect(ctx, p, p.NextPage, func(out *s3.ListObjectsV2Output) []s3types.ObjectIdentifier {
		var ids []s3types.ObjectIdentifier
		for _, obj := range out.Contents {
			ids = append(ids, s3types.ObjectIdentifier{Key: obj.Key})
		}
		return ids
	})
	if err != nil {
		return nil, err
	}
	return fanout.RunItems(ctx, fanout.New[int64](func(o *fanout.Options) { o.Limit = 8 }), slices.Collect(slices.Chunk(ids, 1000)), b.deleteBatch,
		func(o *fanout.ItemOptions[[]s3types.ObjectIdentifier]) {
			o.Key = func(batch []s3types.ObjectIdentifier) string { return "from " + aws.ToString(batch[0].Key) }
		})
}

// deleteBatch deletes a batch of up to 1,000 keys and returns how many S3
// deleted.
func (b *bulk) deleteBatch(ctx context.Context, batch []s3types.ObjectIdentifier) (int64, error) {
	out, err := b.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &b.bucket, Delete: &s3types.Delete{Objects: batch, Quiet: aws.Bool(false)}})
	if err != nil {
		return 0, err
	}
	if len(out.Errors) > 0 {
		e := out.Errors[0]
		return int64(len(out.Deleted)), fmt.Errorf("%d keys not deleted, first %s: %s", len(out.Errors), aws.ToString(e.Key), aws.ToString(e.Message))
	}
	return int64(len(out.Deleted)), nil
}

func (b *bulk) count(ctx context.Context, prefix string) (int, error) {
	p := s3.NewListObjectsV2Paginator(b.s3, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix}, stopOnRepeat)
	objs, err := fanout.Collect(ctx, p, p.NextPage, func(o *s3.ListObjectsV2Output) []s3types.Object { return o.Contents })
	return len(objs), err
}

// empty deletes everything the run left in its bucket, and the bucket.
func (b *bulk) empty(ctx context.Context) {
	_, _ = b.deleteAll(ctx, "")
	_, _ = b.s3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &b.bucket})
}

// stopOnRepeat ends a listing whose endpoint repeats a continuation token,
// rather than looping on it.
func stopOnRepeat(o *s3.ListObjectsV2PaginatorOptions) { o.StopOnDuplicateToken = true }
