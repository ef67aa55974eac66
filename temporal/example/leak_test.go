package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/awsfanout/fanout/temporal/internal/leaktest"
)

// TestMain checks that no goroutine of this package, or of the AWS
// clients and HTTP servers of its tests, outlives the tests; those the
// in-process Temporal server leaves are ignored (see leaktest).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leaktest.ServerOptions()...)
}
