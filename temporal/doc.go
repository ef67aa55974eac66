// Package temporal runs org-wide scans (accounts x regions) as durable
// Temporal workflows, across as many worker processes as the scan needs,
// each running [fanout.AccountRegions] with a [fanout.ClientPool] of its
// own. It is a module of its own (github.com/awsfanout/fanout/temporal),
// so that users of the fanout package never download Temporal.
//
// Status: the module requires the root module through a replace
// directive (replace github.com/awsfanout/fanout => ..), so it builds
// only inside this repository; it cannot be consumed from elsewhere
// until the root module is tagged and this one requires it by version.
//
// # Shape
//
// [ScanWorkflow] lists the organization's accounts, when the [Scan] names
// none, in an activity on the control queue; then it runs an
// [AccountWorkflow] per account, ScanOptions.AccountsInFlight at once,
// and continues as new every ScanOptions.AccountsPerRun accounts, so that
// its history holds about six events per account of one run. An account
// workflow runs one activity, [Worker.ScanAccount], on the scan queue,
// retried up to ScanOptions.MaxAttempts times: it scans the account's
// regions with fanout.AccountRegions, each region page by page with the
// user's [PageFunc], and hands each region's items to the user's [Sink].
//
//	w, err := temporal.NewWorker(cfg, ec2.NewFromConfig, listInstances, sink, nil)
//	tw := worker.New(c, temporal.DefaultScanQueue, temporal.TuneWorker(worker.Options{}))
//	w.Register(tw)
//
//	scan, err := temporal.NewScan("nightly-2026-11-24", nil, regions)
//	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: scan.ID, TaskQueue: temporal.DefaultScanQueue},
//		temporal.ScanWorkflowName, scan)
//
// # Delivery
//
// Every account-region reaches the sink at least once, as a [Result]
// whose Key (scan/account/region, see [Key]) is the same in every attempt
// on every worker: a sink that upserts by Key holds each account-region
// exactly once. A region reaches the sink again only when the worker that
// delivered it was lost before the heartbeat that records the delivery
// reached the server; with [TuneWorker]'s heartbeat settings that is at
// most the regions the lost worker had in flight. A region that fails for
// good (its role denied, the region not enabled) reaches the sink once,
// with its error; one that may pass on another attempt (throttling, a
// server error) fails the attempt, and reaches the sink with its error
// only on the last. A region whose delivery the sink refused (its error)
// fails the attempt too, and the next attempt hands the sink the same
// Result again; the sink is never handed its own error as a region's
// Result.Err.
//
// [ScanSummary] counts what was delivered, and lists the regions that
// failed: those delivered with an error, and those lost, which the sink
// holds nothing of that the scan knows of. A region is lost when the
// sink refused it on the account's last attempt (the Failure's Err is
// the sink's error), or when the last attempt ended before it delivered
// the region (Err says why: a timeout, a worker lost, an error of
// another region, a heartbeat the server refused). Whichever way the
// last attempt ends, the regions delivered before it, on any attempt,
// count as delivered.
//
// # Resume
//
// An attempt heartbeats its [Progress] after every page and every
// delivery: per region, the next page's token, the items so far and
// whether it was delivered. When a worker dies, the server gives the
// account to another worker once ScanOptions.HeartbeatTimeout has passed
// without a heartbeat; that attempt reads the progress, skips the
// delivered regions and asks each other region for the page after the
// last one recorded. A page is asked again only when its heartbeat had
// not reached the server: at most one page per region in flight.
//
// The heartbeat holds the items not yet delivered, so keep T small (an
// ID, a summary). The server's blob size limit (2 MiB by default,
// dynamic config limit.blobSize.error) bounds one heartbeat, and an
// account has one: the limit is shared by the items of every region of
// the account still in flight, up to WorkerOptions.RegionLimit of them.
// A heartbeat above it ends the account's activity for good: the server
// fails it at once, with no retry, and without the progress, so every
// region not delivered by then is lost. The worker checks the encoded
// progress against WorkerOptions.HeartbeatLimit before each heartbeat
// and, when a page would take it above, drops that page and fails its
// region alone, for good (see WorkerOptions.HeartbeatLimit).
//
// The heartbeat is stored by the server, and shown by its UI and CLI, in
// the clear unless the client's DataConverter has a payload codec that
// encrypts it: never put secrets (credentials, tokens, personal data) in
// T or in a page token.
//
// # Limits
//
// Per account, across workers: [WorkerOptions].AccountRate bounds the
// requests that reach AWS per account in any second, every retry and the
// AssumeRole into the account included. The worker meters them in its
// HTTP client, and the bound is the account's, not only the worker's,
// because one activity scans an account at a time: an account's next
// attempt starts after the one before ended (RetryInterval, at least a
// second) or was given up as dead (HeartbeatTimeout, at least a second).
// The one exception is a worker cut off from the server but not from
// AWS: it scans on until its heartbeats fail, about a HeartbeatTimeout,
// while another worker may already have the account.
//
// The bound is per account activity, not per AWS account: two scans of
// the same account at once (scans with different IDs, overlapping in
// time) run two activities, and when different workers run them each
// gets the full AccountRate, so the account sees up to twice the rate.
// Do not overlap scans of the same accounts, or divide the rate among
// them.
//
// On the server, [ConfigureQueues] sets the account as the fairness key's
// rate on the scan queue (UpdateTaskQueueConfig), so that the server
// hands out accounts fairly and bounds how fast an account's attempts
// follow each other, whichever workers run them; and a queue rate on the
// control queue, which holds the Organizations listing. The server meters
// task dispatch, not AWS calls, so it cannot bound the calls inside an
// activity; and its limiter lets a second's worth of tasks through at
// once on top of the rate (a GCRA with a one-second burst, per task queue
// partition), so even one call per task could see about twice the rate in
// some second. The per-key rate needs fairness on for the queue (dynamic
// config matching.enableFairness); without it, the server keeps the rate
// and does nothing with it.
//
// The calling account's STS quota is shared by every worker:
// WorkerOptions.STSRate bounds each worker's AssumeRole calls; give each
// worker its share. The roles are assumed in the workers, not on the
// control queue, since credentials must not pass through the workflow's
// history.
//
// # Workers
//
// A [Worker] is safe for concurrent use, and one per process serves every
// account activity the process runs, with one ClientPool: at most
// WorkerOptions.Limit regions at once in all, RegionLimit of them per
// account. Temporal's own
// worker must heartbeat without batching for the bound on repeats above
// to hold: [TuneWorker] sets its MaxHeartbeatThrottleInterval.
package temporal
