package timeline_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/aws/smithy-go/tracing"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/timeline"
)

// Example records a fan-out and draws it. Over AWS, make the Recorder
// the ClientPool's providers too (PoolOptions.TracerProvider and
// MeterProvider), so that the SDK's attempts and the adaptive limits are
// drawn in their regions' rows; examples/regions' -timeline flag does.
func Example() {
	rec := timeline.New()
	f := fanout.New[int](func(o *fanout.Options) {
		o.Limit = 2
		o.TracerProvider, o.MeterProvider = rec, rec
	})
	keys := []string{"eu-west-1", "us-east-1", "<a&b>"}
	_, err := f.Run(context.Background(), keys, func(ctx context.Context, key string) (int, error) {
		return len(key), nil
	})
	if err != nil {
		fmt.Println(err)
	}

	var svg bytes.Buffer // or an *os.File
	if err := rec.WriteSVG(&svg); err != nil {
		fmt.Println(err)
	}
	fmt.Println(strings.Count(svg.String(), `<g class="row">`), "rows")
	fmt.Println(strings.Contains(svg.String(), "3 items, 0 failed"))
	// Output:
	// 3 rows
	// true
}

// ExampleRecorder_Spans shows spans nesting through their contexts, as
// the fanout package's and the SDK's do: a call, an item, an attempt.
func ExampleRecorder_Spans() {
	rec := timeline.New()
	tr := rec.Tracer("github.com/awsfanout/fanout")
	ctx, call := tr.StartSpan(context.Background(), "fanout.call")
	ctx, item := tr.StartSpan(ctx, "fanout.item", func(o *tracing.SpanOptions) {
		o.Properties.Set("fanout.key", "eu-west-1")
		o.Properties.Set("cloud.region", "eu-west-1")
	})
	item.AddEvent("fanout.started")
	_, attempt := tr.StartSpan(ctx, "Attempt", func(o *tracing.SpanOptions) { o.Properties.Set("operation.attempt", 1) })
	attempt.SetProperty("fanout.throttled", true)
	attempt.End()
	item.End()
	call.End()

	for _, s := range rec.Spans() {
		fmt.Println(s.ID, s.Name, "in", s.Parent)
	}
	// Output:
	// 1 fanout.call in 0
	// 2 fanout.item in 1
	// 3 Attempt in 2
}
