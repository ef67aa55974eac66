//go:build unix

package fanout_test

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/awsfanout/fanout"
)

// BenchmarkPacedWaitCPU: the processor time that clients at the edge of
// small buckets spend waiting for their paced starts, 8 of them at 200
// starts a second each, each on a schedule of its own: in cores (one wait
// spins at a time; the others finish on the timer).
func BenchmarkPacedWaitCPU(b *testing.B) {
	const clients, gap = 8, 5 * time.Millisecond
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start, cpu0 := time.Now(), cpu()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() { // each on a schedule of its own
			defer wg.Done()
			_ = fanout.SleepExactly(context.Background(), gap*time.Duration(i)/clients, 0)
			for range b.N {
				if err := fanout.SleepExactly(context.Background(), gap, time.Millisecond); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(cpu()-cpu0)/float64(time.Since(start)), "cores")
}
