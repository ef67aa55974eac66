package temporal

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWindow sends requests from 8 goroutines through a window of 5 per
// 200ms, each with a random time on the way there and back, and counts
// the arrivals in every window of 200ms: never more than 5, even though
// a request can be slower on the way than the one after it.
func TestWindow(t *testing.T) {
	t.Parallel()
	const (
		n = 5
		d = 200 * time.Millisecond
	)
	w := newWindow(n, d)
	var mu sync.Mutex
	var arrivals []call
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				release, err := w.wait(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(rand.N(15 * time.Millisecond)) // on the way
				mu.Lock()
				arrivals = append(arrivals, call{at: time.Now(), account: "a"})
				mu.Unlock()
				time.Sleep(rand.N(15 * time.Millisecond)) // the answer's way back
				release()
			}
		}()
	}
	wg.Wait()
	if got := maxPerWindow(arrivals, d)["a"]; got != n {
		t.Errorf("at most %d arrivals in a window of %v; want %d exactly", got, d, n)
	}
}

// TestWindowCancel: a request whose context ends while it waits is not
// sent, and the request after it still waits for the one before.
func TestWindowCancel(t *testing.T) {
	t.Parallel()
	w := newWindow(1, 100*time.Millisecond)
	release, err := w.wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait on a cancelled ctx = %v; want context.Canceled", err)
	}
	released := time.Now()
	release()
	r3, err := w.wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r3()
	if waited := time.Since(released); waited < 100*time.Millisecond {
		t.Errorf("the request after a cancelled one went %v after the one before; want 100ms or more", waited)
	}
}

// TestTransportMeters: requests carrying a window wait for it, others
// do not, and a request that never goes has its body closed.
func TestTransportMeters(t *testing.T) {
	t.Parallel()
	var sent atomic.Int64
	tr := meteredTransport{base: roundTripFunc(func(*http.Request) (*http.Response, error) {
		sent.Add(1)
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})}
	w := newWindow(1, time.Hour)
	ctx := withWindow(context.Background(), w)
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://x", nil)
	if _, err := tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	body := &closeCounter{}
	req, _ = http.NewRequestWithContext(short, "POST", "http://x", body)
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second request in the window: %v; want it held until its deadline", err)
	}
	if !body.closed {
		t.Error("the request that was not sent kept its body open")
	}
	req, _ = http.NewRequest("GET", "http://x", nil) // no window
	if _, err := tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if n := sent.Load(); n != 2 {
		t.Errorf("%d requests sent; want 2", n)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type closeCounter struct{ closed bool }

func (c *closeCounter) Read([]byte) (int, error) { return 0, errors.New("not read") }
func (c *closeCounter) Close() error             { c.closed = true; return nil }
