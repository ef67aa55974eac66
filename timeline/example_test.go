package timeline_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/smithy-go/tracing"

	"github.com/awsfanout/fanout/timeline"
)

// Example records spans as the fanout package starts them (a call, an
// item, the SDK's attempt inside it) and draws them.
func Example() {
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
	var svg strings.Builder
	if err := rec.WriteSVG(&svg); err != nil {
		fmt.Println(err)
	}
	fmt.Println(strings.Count(svg.String(), `<g class="row">`), "row,", strings.Count(svg.String(), "throttled\""), "throttled attempt")
	// Output:
	// 1 fanout.call in 0
	// 2 fanout.item in 1
	// 3 Attempt in 2
	// 1 row, 1 throttled attempt
}
