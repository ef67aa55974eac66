package temporal

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine of this package, or of the AWS
// clients and HTTP servers of its tests, outlives the tests. The
// in-process Temporal server (v1.30.4) does not end all of its own on
// Stop: its system workers (SDK workers it runs itself: a test that
// starts none of its own still leaves 64 of their goroutines), its
// membership timers, metrics loops and their HTTP servers, pprof server, database opener and gRPC
// connections. Those are ignored, by the functions they run; a
// goroutine of this package's runs none of them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("go.temporal.io/sdk/internal.(*baseWorker).runPoller"),
		goleak.IgnoreAnyFunction("go.temporal.io/sdk/internal.(*baseWorker).runTaskDispatcher"),
		goleak.IgnoreAnyFunction("go.temporal.io/sdk/internal.(*baseWorker).runEagerTaskDispatcher"),
		goleak.IgnoreAnyFunction("go.temporal.io/sdk/internal/common/backoff.(*ConcurrentRetrier).throttleInternal"),
		goleak.IgnoreAnyFunction("go.temporal.io/sdk/internal.(*localActivityTunnel).getTask"),
		goleak.IgnoreAnyFunction("go.temporal.io/server/common/membership/ringpop.(*monitor).startHeartbeatUpsertLoop.func1"),
		goleak.IgnoreAnyFunction("go.temporal.io/server/common/persistence.(*healthSignalAggregatorImpl).emitMetricsLoop"),
		goleak.IgnoreAnyFunction("go.temporal.io/server/common/stream_batcher.(*Batcher[...]).loop"),
		goleak.IgnoreAnyFunction("go.temporal.io/server/service/worker.(*perNamespaceWorkerManager).periodicRefresh"),
		goleak.IgnoreAnyFunction("github.com/temporalio/ringpop-go.(*Ringpop).startTimers.func1"),
		goleak.IgnoreAnyFunction("github.com/temporalio/ringpop-go.(*Ringpop).startTimers.func2"),
		goleak.IgnoreAnyFunction("github.com/uber-go/tally/v4.(*scope).reportLoop"),
		goleak.IgnoreAnyFunction("github.com/uber-go/tally/v4/prometheus.Configuration.NewReporter.func5"),
		goleak.IgnoreAnyFunction("go.temporal.io/server/common/pprof.(*PProfInitializerImpl).Start.func1"),
		goleak.IgnoreAnyFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
		goleak.IgnoreAnyFunction("database/sql.(*DB).connectionOpener"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc.(*addrConn).resetTransportAndUnlock"),
	)
}
