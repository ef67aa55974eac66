package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/aws/smithy-go"

	"github.com/awsfanout/fanout"
)

// Run returns one result per key, in input order, whatever order the
// operations finish in.
func ExampleFanout_Run() {
	regions := []string{"us-east-1", "eu-west-1", "ap-south-1"}
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = 2 })
	results, err := f.Run(context.Background(), regions, func(ctx context.Context, region string) (int, error) {
		return len(region), nil // stands in for an SDK call
	})
	if err != nil {
		fmt.Println("failed:", err)
	}
	for _, r := range results {
		fmt.Println(r.Key, r.Value)
	}
	// Output:
	// us-east-1 9
	// eu-west-1 9
	// ap-south-1 10
}

// A failed item does not stop the others; Run's error joins every item's
// error, and each names its key.
func ExampleFanout_Run_errors() {
	f := fanout.New[string]()
	results, err := f.Run(context.Background(), []string{"a", "bad", "c"}, func(ctx context.Context, key string) (string, error) {
		if key == "bad" {
			return "", errors.New("no such thing")
		}
		return strings.ToUpper(key), nil
	})
	fmt.Println(results.Values())
	fmt.Println(err)
	// Output:
	// [A C]
	// fanout: item 1 "bad": no such thing
}

// errors.As reaches the AWS API error inside an item's error, and inside the
// joined error too.
func ExampleItemError() {
	f := fanout.New[int]()
	_, err := f.Run(context.Background(), []string{"eu-west-1"}, func(ctx context.Context, region string) (int, error) {
		return 0, &smithy.GenericAPIError{Code: "RequestLimitExceeded", Message: "Request limit exceeded."}
	})
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		fmt.Println("code:", apiErr.ErrorCode())
	}
	var itemErr *fanout.ItemError
	if errors.As(err, &itemErr) {
		fmt.Println("region:", itemErr.Key)
	}
	// Output:
	// code: RequestLimitExceeded
	// region: eu-west-1
}

// Stream yields results as they finish and holds only as many as can run at
// once, so it suits millions of keys.
func ExampleFanout_Stream() {
	keys := []string{"a", "bb", "ccc"}
	f := fanout.New[int]()
	total := 0
	for r := range f.Stream(context.Background(), keys, func(ctx context.Context, key string) (int, error) {
		return len(key), nil
	}) {
		total += r.Value
	}
	fmt.Println(total)
	// Output: 6
}

// Weights let big items take more of the limit: here a 5 GiB object counts
// as 5 and a small one as 1, so at most 8 GiB-equivalents copy at once.
func ExampleOptions_weight() {
	sizesGiB := map[string]int64{"small.txt": 1, "big.iso": 5, "medium.tar": 3}
	f := fanout.New[string](func(o *fanout.Options) {
		o.Limit = 8
		o.Weight = func(key string) int64 { return sizesGiB[key] }
	})
	results, _ := f.Run(context.Background(), []string{"small.txt", "big.iso", "medium.tar"},
		func(ctx context.Context, key string) (string, error) { return "copied " + key, nil })
	fmt.Println(results.Values())
	// Output: [copied small.txt copied big.iso copied medium.tar]
}

// FailFast stops at the first failure: the operations still running see
// their context cancelled, and the items that never ran fail with
// ErrNotStarted.
func ExampleOptions_failFast() {
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = 1; o.FailFast = true })
	results, _ := f.Run(context.Background(), []string{"ok", "broken", "never", "ran"}, func(ctx context.Context, key string) (int, error) {
		if key == "broken" {
			return 0, errors.New("access denied")
		}
		return 1, nil
	})
	for _, r := range results {
		fmt.Printf("%s notStarted=%v err=%v\n", r.Key, errors.Is(r.Err, fanout.ErrNotStarted), r.Err != nil)
	}
	// Output:
	// ok notStarted=false err=false
	// broken notStarted=false err=true
	// never notStarted=true err=true
	// ran notStarted=true err=true
}

// OnDone drives a progress display; it is never called concurrently.
func ExampleOptions_onDone() {
	var lines []string
	f := fanout.New[int](func(o *fanout.Options) {
		o.OnDone = func(p fanout.Progress) {
			lines = append(lines, fmt.Sprintf("%s done", p.Key))
			if p.Done == p.Total {
				lines = append(lines, fmt.Sprintf("%d/%d, %d failed", p.Done, p.Total, p.Failed))
			}
		}
	})
	_, _ = f.Run(context.Background(), []string{"x", "y"}, func(context.Context, string) (int, error) { return 0, nil })
	sort.Strings(lines[:2]) // completion order varies
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// x done
	// y done
	// 2/2, 0 failed
}

// A Budget bounds several Fanouts of different result types together.
func ExampleBudget() {
	budget, err := fanout.NewBudget(20) // at most 20 calls in flight in this process
	if err != nil {
		log.Fatal(err)
	}
	counts := fanout.New[int](func(o *fanout.Options) { o.Budget = budget })
	names := fanout.New[string](func(o *fanout.Options) { o.Budget = budget; o.Limit = 5 })
	fmt.Println(counts.Limit(), names.Limit(), budget.Size())
	// Output: 20 5 20
}

// A Logger gets a record per item at Debug, with its key, outcome and
// times (dropped here, to print the same every run), logged with the
// item's context so that a handler can add its trace.
func ExampleOptions_logger() {
	drop := func(_ []string, a slog.Attr) slog.Attr {
		switch a.Key {
		case slog.TimeKey, "elapsed", "wait":
			return slog.Attr{}
		}
		return a
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: drop}))
	f := fanout.New[int](func(o *fanout.Options) { o.Limit, o.Logger = 1, log })
	_, _ = f.Run(context.Background(), []string{"us-east-1", "eu-west-1"}, func(ctx context.Context, region string) (int, error) {
		if region == "eu-west-1" {
			return 0, errors.New("AccessDenied")
		}
		return 1, nil
	})
	// Output:
	// level=DEBUG msg="fanout: item" key=us-east-1 index=0 outcome=ok
	// level=DEBUG msg="fanout: item" key=eu-west-1 index=1 outcome=error error=AccessDenied
}

// Each shard of a run split across processes keeps its own accounts, all
// of each account's regions with it.
func ExampleShard() {
	keys := []string{"111111111111/us-east-1", "111111111111/eu-west-1", "222222222222/us-east-1",
		"222222222222/eu-west-1", "333333333333/us-east-1", "333333333333/eu-west-1"}
	for i := range 2 {
		mine, err := fanout.Shard(fanout.ShardSpec{Index: i, Count: 2}, keys, fanout.AccountOf)
		if err != nil {
			fmt.Println(err)
		}
		fmt.Println(i, mine)
	}
	// Output:
	// 0 [333333333333/us-east-1 333333333333/eu-west-1]
	// 1 [111111111111/us-east-1 111111111111/eu-west-1 222222222222/us-east-1 222222222222/eu-west-1]
}
