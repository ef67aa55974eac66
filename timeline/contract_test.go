package timeline

import (
	"testing"

	"github.com/awsfanout/fanout"
)

// TestContractNames fails when the fanout package renames a span, an
// event, a property or an instrument that a waterfall reads. ("Attempt"
// and "operation.attempt" are the SDK's; examples/regions' tests draw a
// real run.)
func TestContractNames(t *testing.T) {
	for _, n := range []struct{ ours, fanouts string }{
		{itemSpan, fanout.SpanItem},
		{startedEvent, fanout.EventStarted},
		{limitGauge, fanout.MetricClientLimit},
		{propKey, fanout.AttrKey},
		{propOutcome, fanout.AttrOutcome},
		{outcomeSkipped, fanout.OutcomeSkipped},
		{propThrottled, fanout.AttrThrottled},
		{propWait, fanout.AttrWait},
		{propRegion, fanout.AttrRegion},
		{propAccount, fanout.AttrAccountID},
	} {
		if n.ours != n.fanouts {
			t.Errorf("timeline reads %q; the fanout package names it %q", n.ours, n.fanouts)
		}
	}
}
