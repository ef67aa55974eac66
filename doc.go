// Package fanout runs many AWS calls concurrently without melting anything:
// per region, per account, per item.
//
// A [Fanout] calls one operation per key (a region, an account, an object
// key) through a weighted limit and returns typed results in input order,
// with an error for each item that failed:
//
//	f := fanout.New[int](func(o *fanout.Options) { o.Limit = 16 })
//	results, err := f.Run(ctx, regions, func(ctx context.Context, region string) (int, error) {
//		return countInstances(ctx, region)
//	})
//
// Items need not be strings: [RunItems] takes a slice of any type, weighed
// and named by the item ([ItemOptions]), and returns results that carry
// it; [StreamItems] and [StreamItems2] take a sequence and pull an item only
// when a worker is free to run it, so that a listing ([PageItems]) feeds
// the calls as its pages arrive. The string calls are the same engine.
//
// # Guarantees
//
// The bound: at no moment does the total weight of running operations
// exceed the Limit (Options.Weight gives each item a weight; by default
// every item weighs 1). Concurrent calls on one Fanout share its Limit, and
// Fanouts that share a [Budget] share that too, so a process keeps one
// bound however many fan-outs it runs. Limits nest without multiplying: a
// call's own Limit caps it inside its Fanout's, never beside it.
//
// Results: [Fanout.Run] returns exactly one [Result] per key, in input
// order, each with a Value or an Err, never both. Its error is the items'
// errors joined with errors.Join, nil if and only if every item succeeded.
// Every item error is an [*ItemError] naming the key, so errors.As and
// errors.Is reach the cause (a smithy.APIError, context.DeadlineExceeded)
// both through one item's error and through the joined one. Duplicate keys
// are allowed; Result.Index tells them apart. [Fanout.Stream] yields the
// same results in completion order, holding no more of them than can run
// at once.
//
// Failures stay with their item: one failing region does not stop an
// inventory of thirty, unless Options.FailFast asks for it. The engine
// returns an operation's error as it was, inside the item's ItemError. Items
// that never started, because ctx was cancelled or FailFast stopped the
// call, fail with [ErrNotStarted] and the reason. An operation that returns
// [Skip] marks its item skipped, which is not a failure: "skipped" always
// means that, and "not started" always means a failure.
//
// Panics: errgroup lets a panic in one goroutine crash the process, and conc
// re-panics in the caller. Here a panic inside an operation becomes that
// item's error, a [*PanicError] with the panic value and the stack, and the
// other items go on: a fan-out over thirty regions should not lose
// twenty-nine answers to a bug that one region's data triggers. The same
// holds for everything of the caller's that the package calls or looks
// into: Options.Weight, Options.Scope, Options.OnDone, and the error an
// operation returns (a typed nil whose methods dereference it included).
// An operation must not call runtime.Goexit (t.FailNow does).
//
// Nesting: an operation may start calls on its own Fanout, or on another
// that shares its Budget (accounts outside, regions inside). A nested call
// runs within what its item holds, and waits on no shared limit, so it can
// neither wait for units its own ancestors hold nor for a slot held by a
// call that waits for them: it never deadlocks, and the bound holds across
// the levels. Calls nested in one item share what the item holds (an item
// of weight 1 runs its nested items one at a time); the nested call's own
// Fanout's Limit caps that call alone. A nested call must end before its
// item does. OnDone must not start a call on its own Fanout.
//
// Bad input fails at once and names itself, never hangs: an item whose
// weight is below 1 or above the Limit fails with an error naming the key,
// the weight and the limit (semaphore.Weighted.Acquire would block on it
// until ctx ended); a Limit below 1, a negative ItemTimeout, a nil ctx or a
// nil op make the call fail before anything runs.
//
// Options: every constructor of this module starts from documented
// defaults, each an exported constant ([DefaultLimit], [DefaultMaxAttempts],
// [DefaultAdaptiveMax], ...), then applies its func(*Options) in order. A
// value that cannot be honoured is an error that names it, never a silent
// clamp. The zero Fanout is ready to use with the default Options.
//
// Concurrency: a Fanout and a Budget are safe for concurrent use. Options
// passed to a call apply to a copy, so concurrent calls never see each
// other's settings. OnDone is never called concurrently with itself, even by
// concurrent calls of one Fanout.
//
// # Telemetry
//
// Off by default, at no cost per item. Spans, measurements and log
// records go through the interfaces the AWS SDK itself uses, smithy-go's
// tracing.TracerProvider and metrics.MeterProvider, and log/slog; the
// package never imports OpenTelemetry. smithy-go's modules
// smithyoteltracing and smithyotelmetrics adapt OpenTelemetry's providers
// (examples/otel wires them up).
//
// Options.TracerProvider gets one span per call, [SpanCall], and one per
// item, [SpanItem], under it, with the item's key ([AttrKey]) and index
// and, under Regions and AccountRegions, its region ([AttrRegion],
// cloud.region) and account ([AttrAccountID], cloud.account.id). The span
// starts when a worker claims the item; the [EventStarted] event marks
// when it got its units, so what comes before is its wait for the limits.
// The operation's context carries the span, so the SDK's spans (the
// operation, RetryLoop, each Attempt) nest under it. The span ends with
// the item's outcome ([AttrOutcome]: ok, error, skipped, not_started,
// panic).
//
// Options.MeterProvider gets [MetricItemsDone] by outcome (the counts are the
// results), [MetricItemDuration], [MetricItemWait] and [MetricInFlight].
// Options.Logger gets a Debug record per item (Warn for a panic), logged
// with the item's context so that a handler can correlate it with the
// trace.
//
// [PoolOptions].TracerProvider and MeterProvider are set on every client
// the pool builds, labelled with the client's region, and its account on
// spans (on measurements with PoolOptions.AccountAttribute, since an
// organization has many): the SDK's own spans and measurements name
// neither, so a fan-out's regions could not be told apart. The pool adds
// [MetricClientLimit] (each client's adaptive limit),
// [MetricClientThrottles] and [MetricClientBreaker], and marks the SDK's
// Attempt spans with [AttrThrottled] and [AttrWait] (the time the
// adaptive limit held the attempt). Regions and AccountRegions calls whose
// Options set no telemetry use the pool's. PoolOptions.Logger hears at
// Warn what a user must: an account denied, an item throttled past its
// retries, every region of a call answering as not enabled, a breaker
// that opened. No record, span or measurement holds a credential.
//
// While Go's execution tracer runs (go test -trace, runtime/trace.Start),
// each call and each item is a runtime/trace task named like its span,
// logged with its key, so go tool trace shows the fan-out item by item.
//
// AccountRegions wraps its work in a [SpanAccountRegions] span, so that
// the roles it assumes ahead of the items, and its calls, are one trace.
// [Accounts] makes its own STS client, which may serve several pools: to
// see its AssumeRole calls, set the providers on it through
// AccountOptions.STSOptions.
//
// Give the pool and the Options one and the same TracerProvider: an
// adapter such as smithyoteltracing looks in the context for a span of its
// own making, and finds the item's. The histograms are in seconds, and
// smithy-go's instruments cannot advise bucket boundaries: with
// OpenTelemetry, give them a View with boundaries in seconds
// (examples/otel does).
//
// Telemetry never changes a result: a panic in a provider or a logger of
// the caller's turns the call's telemetry off (the Logger hears of it
// once, unless it is what panicked), and a pool client's SDK call goes on
// without the span or measurement its provider panicked in making or
// recording. A span whose own methods panic is the exception: the SDK
// calls them itself, and such a panic fails its call. The counts by outcome
// are the items' results; for a Stream whose consumer stopped early, they
// include the items that finished but were never yielded.
//
// # AWS
//
// The AWS layer sits on top of the engine and reaches it through one seam:
// [Regions] and [AccountRegions] wrap the operation before handing it to
// [Fanout.Run], so that each item's error is classified, its throttled
// attempts are counted, and a disabled region can be skipped
// ([RegionOptions]). They return a [RegionResult] per item: the engine's
// [Result] with the account, the region and the throttle count. A plain
// Run over AWS calls gets the same classification from [Classified].
//
// AWS answers refused credentials with the codes of a region that is not
// enabled. Regions and AccountRegions call a region disabled only once the
// same credentials worked in a region of its partition (one sts
// GetCallerIdentity, remembered on success), and fail the item with
// [ErrCredentialsRefused] when they were refused there too; a run where
// every region looks disabled returns an error even with SkipDisabled.
//
// A [ClientPool] hands out one aws-sdk-go-v2 client per account and region,
// built once and shared, with one HTTP client sized for fan-out and
// bounded by [DefaultResponseTimeout], one credentials cache per account
// and a retryer per client without the client-side retry quota; a panic in
// a transport, a middleware or a credentials provider is the attempt's
// error. [Accounts] assumes a role in each account, through an STS client
// with the same retryer.
// Errors from a region that is not enabled classify as [ErrRegionDisabled]
// and throttling as [ErrThrottled] (see [Classify]); errors.As still
// reaches the smithy.APIError. [Collect], [Pages] and [Items] drain and
// stream SDK paginators. Each pool client carries an [Adaptive] limit that
// backs off when the service throttles and recovers on success, and a
// [Breaker]: after [DefaultBreakerThreshold] connection failures in a row
// (refused, reset, timed out; an API error is the endpoint answering) the
// client's calls fail at once with [ErrEndpointDown], which wraps the last
// failure and is never retried, until a probe after
// [DefaultBreakerCooldown] gets an answer. Without it a dead endpoint would
// cost every call left all of its attempts and back-offs, since the pool's
// retryer has no retry quota to run out. One region's dead endpoint leaves
// the other regions' clients alone.
//
// Region names are checked against every partition the pinned SDK knows
// (aws, aws-cn, aws-us-gov, aws-eusc, the ISO partitions).
//
// Package [github.com/awsfanout/fanout/discover] lists the regions an
// account has enabled and the accounts of an organization; it alone
// imports the EC2 and Organizations clients, so a program that does not
// need them never compiles them. Package
// [github.com/awsfanout/fanout/fanouttest] simulates AWS in process, with
// latency, throttling and faults per region, to test fan-outs offline.
//
// # Shards
//
// A run too big for one process splits by account, since AWS limits are
// per account and region: [Shard] and [ShardAccounts] keep shard i of n,
// each account whole, placed by rendezvous hashing so that every process
// agrees alone and adding a shard moves about 1/(n+1) of the accounts;
// [ShardFromEnv] reads i and n from the array-job engine running the
// process. Every shard shares the calling account's STS quota and the
// management account's Organizations quota: give each its share.
//
// Operations receive a context that is cancelled when the call's ctx is,
// when FailFast stops the call, when a Stream's consumer stops, and, with
// Options.ItemTimeout, when the item's own deadline passes. They should
// return promptly when it is; the AWS SDK's operations do.
package fanout
