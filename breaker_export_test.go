package fanout

import "time"

// SetBreakerClock replaces b's clock, so that tests move time by hand.
func SetBreakerClock(b *Breaker, now func() time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.now = now
}

// PoolBreaker returns the breaker of p's client for account and region,
// or nil when the client has none (or has not been built).
func PoolBreaker[C any](p *ClientPool[C], account, region string) *Breaker {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.breakers[acctRegion{account, region}]
}
