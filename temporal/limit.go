package temporal

import (
	"context"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// window admits at most n requests in any window of length d, counted
// where they arrive: a request is sent only once the response to the
// n-th request before it has come back, and d more have passed. AWS has
// received a request by the time its response comes back, so the bound
// holds at AWS whatever the requests' time on the way; a token bucket
// refilled at n per d would let 2n through in some window (a full
// bucket, then its refill), and a gap measured between sends would let
// n+1 through when one request is slower on the way than the next.
type window struct {
	d time.Duration

	mu    sync.Mutex
	slots []*slot // the last n requests, oldest at next
	next  int
}

// slot is one request of a window: done is closed once its response
// came back (or it gave up), at end.
type slot struct {
	done chan struct{}
	end  time.Time
}

func newWindow(n int, d time.Duration) *window {
	w := &window{d: d, slots: make([]*slot, n)}
	for i := range w.slots {
		w.slots[i] = &slot{done: make(chan struct{})}
		close(w.slots[i].done)
	}
	return w
}

// wait blocks until a request may be sent, or ctx ends, and returns the
// func to call once its response came back. Requests are served in
// turn: each takes the place of the n-th before it.
func (w *window) wait(ctx context.Context) (func(), error) {
	mine := &slot{done: make(chan struct{})}
	w.mu.Lock()
	prev := w.slots[w.next]
	w.slots[w.next] = mine
	w.next = (w.next + 1) % len(w.slots)
	w.mu.Unlock()
	release := func() {
		mine.end = time.Now()
		close(mine.done)
	}
	select {
	case <-prev.done:
		if err := sleepUntil(ctx, prev.end.Add(w.d)); err != nil {
			release()
			return nil, err
		}
		return release, nil
	case <-ctx.Done():
		// The request is not sent; the one that takes this place must
		// still wait for prev.
		go func() {
			<-prev.done
			mine.end = prev.end
			close(mine.done)
		}()
		return nil, context.Cause(ctx)
	}
}

func sleepUntil(ctx context.Context, at time.Time) error {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// accountLimits holds one window per account that a worker's activities
// are scanning, shared by the activities of one account on the worker
// (a retry that lands on the worker that ran the attempt before it).
type accountLimits struct {
	rate int

	mu    sync.Mutex
	byAcc map[string]*heldWindow
}

type heldWindow struct {
	*window
	users int
}

func newAccountLimits(perSecond int) *accountLimits {
	return &accountLimits{rate: perSecond, byAcc: map[string]*heldWindow{}}
}

func (l *accountLimits) acquire(account string) *window {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.byAcc[account]
	if h == nil {
		h = &heldWindow{window: newWindow(l.rate, time.Second)}
		l.byAcc[account] = h
	}
	h.users++
	return h.window
}

// release ends a use of account's window. The window stays for a second
// after its last use, so that an attempt that starts on this worker
// within the second still waits for the requests before it.
func (l *accountLimits) release(account string) {
	time.AfterFunc(time.Second, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		h := l.byAcc[account]
		if h.users--; h.users == 0 {
			delete(l.byAcc, account)
		}
	})
}

// windowKey carries the window that meters the calls made on a context.
type windowKey struct{}

func withWindow(ctx context.Context, w *window) context.Context {
	return context.WithValue(ctx, windowKey{}, w)
}

// meteredTransport waits, before each request, for the window its
// context carries (the account's), and for limit, when not nil (the
// worker's STS rate). Every attempt of the SDK goes through it, retries
// included, as every attempt reaches AWS.
type meteredTransport struct {
	base  http.RoundTripper
	limit *rate.Limiter
}

func (t meteredTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var err error
	if t.limit != nil {
		err = t.limit.Wait(ctx)
	}
	release := func() {}
	if w, ok := ctx.Value(windowKey{}).(*window); ok && err == nil {
		release, err = w.wait(ctx)
	}
	if err != nil {
		if req.Body != nil { // a RoundTripper closes the body, even when it sends nothing
			req.Body.Close()
		}
		return nil, err
	}
	defer release()
	return t.base.RoundTrip(req)
}
