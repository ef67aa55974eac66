// Package leaktest holds what goleak must ignore in tests that run a
// Temporal server in process.
package leaktest

import "go.uber.org/goleak"

// ServerOptions are goleak options that ignore the goroutines the
// in-process Temporal server (v1.30.4) leaves after Stop: its system
// workers (SDK workers it runs itself: a test that starts none of its own
// still leaves 64 of their goroutines), its membership timers, metrics
// loops and their HTTP servers, pprof server, database opener and gRPC
// connections. They are ignored by the functions they run; a goroutine
// of the fanout modules runs none of them.
func ServerOptions() []goleak.Option {
	funcs := []string{
		"go.temporal.io/sdk/internal.(*baseWorker).runPoller",
		"go.temporal.io/sdk/internal.(*baseWorker).runTaskDispatcher",
		"go.temporal.io/sdk/internal.(*baseWorker).runEagerTaskDispatcher",
		"go.temporal.io/sdk/internal/common/backoff.(*ConcurrentRetrier).throttleInternal",
		"go.temporal.io/sdk/internal.(*localActivityTunnel).getTask",
		"go.temporal.io/server/common/membership/ringpop.(*monitor).startHeartbeatUpsertLoop.func1",
		"go.temporal.io/server/common/persistence.(*healthSignalAggregatorImpl).emitMetricsLoop",
		"go.temporal.io/server/common/stream_batcher.(*Batcher[...]).loop",
		"go.temporal.io/server/service/worker.(*perNamespaceWorkerManager).periodicRefresh",
		"go.temporal.io/server/common/pprof.(*PProfInitializerImpl).Start.func1",
		"github.com/temporalio/ringpop-go.(*Ringpop).startTimers.func1",
		"github.com/temporalio/ringpop-go.(*Ringpop).startTimers.func2",
		"github.com/uber-go/tally/v4.(*scope).reportLoop",
		"github.com/uber-go/tally/v4/prometheus.Configuration.NewReporter.func5",
		"github.com/rcrowley/go-metrics.(*meterArbiter).tick",
		"database/sql.(*DB).connectionOpener",
		"google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run",
		"google.golang.org/grpc.(*addrConn).resetTransportAndUnlock",
	}
	opts := make([]goleak.Option, len(funcs))
	for i, f := range funcs {
		opts[i] = goleak.IgnoreAnyFunction(f)
	}
	return opts
}
