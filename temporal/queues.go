package temporal

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/awsfanout/fanout/discover"
)

// QueueRates are the rates the server enforces on a scan's task queues,
// across every worker (see ConfigureQueues).
type QueueRates struct {
	// AccountTasks is the most account activities per second the server
	// dispatches per account (the fairness key), retries included.
	// 0 leaves the queue without a per-account rate.
	AccountTasks float64

	// Control is the most tasks per second the server dispatches from the
	// control queue, which runs the Organizations listing only: the STS
	// calls (AssumeRole into each account) run in the scan's workers,
	// bounded by WorkerOptions.STSRate. 0 leaves it unlimited.
	Control float64
}

// ConfigureQueues sets rates on the activity task queues of o, in
// namespace, with UpdateTaskQueueConfig: a fairness key rate on the scan
// queue and a queue rate on the control queue. The server enforces the
// per-key rate only where fairness is on (dynamic config
// matching.enableFairness, on the scan queue at least); without it, the
// call succeeds and the rate does nothing.
//
// The server meters the dispatch of tasks, not AWS calls: an account's
// activity makes all of its calls under one task. The per-account limit
// on calls is the worker's (WorkerOptions.AccountRate); this rate bounds
// how fast an account's attempts can follow each other, whichever
// workers run them.
func ConfigureQueues(ctx context.Context, c client.Client, namespace string, o ScanOptions, r QueueRates) error {
	o = o.withDefaults()
	switch {
	case c == nil:
		return errors.New("fanout/temporal: ConfigureQueues: nil client")
	case r.AccountTasks < 0 || r.Control < 0:
		return fmt.Errorf("fanout/temporal: QueueRates %+v: a rate is negative", r)
	}
	update := func(queue string, req *workflowservice.UpdateTaskQueueConfigRequest) error {
		req.Namespace, req.TaskQueue, req.TaskQueueType, req.Identity = namespace, queue, enumspb.TASK_QUEUE_TYPE_ACTIVITY, "fanout"
		if _, err := c.WorkflowService().UpdateTaskQueueConfig(ctx, req); err != nil {
			return fmt.Errorf("fanout/temporal: UpdateTaskQueueConfig on %s: %w", queue, err)
		}
		return nil
	}
	if r.AccountTasks > 0 {
		if err := update(o.ScanQueue, &workflowservice.UpdateTaskQueueConfigRequest{
			UpdateFairnessKeyRateLimitDefault: rateUpdate(r.AccountTasks, "fanout: per-account rate"),
		}); err != nil {
			return err
		}
	}
	if r.Control > 0 {
		return update(o.ControlQueue, &workflowservice.UpdateTaskQueueConfigRequest{
			UpdateQueueRateLimit: rateUpdate(r.Control, "fanout: Organizations listing"),
		})
	}
	return nil
}

func rateUpdate(perSecond float64, reason string) *workflowservice.UpdateTaskQueueConfigRequest_RateLimitUpdate {
	return &workflowservice.UpdateTaskQueueConfigRequest_RateLimitUpdate{
		RateLimit: &taskqueuepb.RateLimit{RequestsPerSecond: float32(perSecond)},
		Reason:    reason,
	}
}

// OrganizationLister returns the listing RegisterControl wants: the
// organization's ACTIVE accounts (discover.OrganizationAccounts), with
// an organizations client made from cfg, in the management account or a
// delegated administrator.
func OrganizationLister(cfg aws.Config, optFns ...func(*organizations.Options)) func(ctx context.Context) ([]string, error) {
	client := organizations.NewFromConfig(cfg, optFns...)
	return func(ctx context.Context) ([]string, error) {
		return discover.OrganizationAccounts(ctx, client)
	}
}
