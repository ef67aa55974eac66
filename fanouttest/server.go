// Package fanouttest is an in-process AWS endpoint for testing fan-outs
// offline: latency, throttling and faults on demand, per region, answered
// in the services' real wire formats so that the real aws-sdk-go-v2
// clients parse them as they would AWS's answers.
//
// A Server either forwards to another endpoint (moto_server, LocalStack)
// or answers a few calls itself: ec2 DescribeRegions, ec2
// DescribeInstances (paginated), sts GetCallerIdentity and sts AssumeRole
// (credentials that act in the role's account). Clients reach it through
// BaseEndpoint:
//
//	srv, err := fanouttest.New(fanouttest.Config{
//		Instances: 12,
//		Latency:   fanouttest.Latency{Fixed: 20 * time.Millisecond},
//		Throttle:  &fanouttest.EC2Buckets,
//		Region:    map[string]fanouttest.RegionConfig{"me-south-1": {Fault: fanouttest.Disabled}},
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer srv.Close()
//	cfg := srv.AWSConfig("us-east-1")
//
// The region of a request is read from its SigV4 credential scope, as AWS
// does, so one Server stands for every region.
package fanouttest

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"golang.org/x/time/rate"
)

// Server is an in-process AWS endpoint. It is safe for concurrent use.
type Server struct {
	// URL is the endpoint to give clients as BaseEndpoint.
	URL string

	cfg     Config
	srv     *httptest.Server
	proxy   *httputil.ReverseProxy
	closing chan struct{}
	once    sync.Once

	conns atomic.Int64
	total counters

	mu      sync.Mutex
	regions map[string]*regionState
}

type regionState struct {
	counters
	mu      sync.Mutex
	buckets map[string]*rate.Limiter // by kind of action
}

type counters struct {
	requests, throttled, inflight, peak atomic.Int64
}

func (c *counters) enter() {
	c.requests.Add(1)
	n := c.inflight.Add(1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
}

// New starts a Server on a loopback port, or returns an error that names
// a setting of cfg it cannot honour.
func New(cfg Config) (*Server, error) {
	if err := cfg.builtInOnly(); err != nil { // before the defaults fill them
		return nil, err
	}
	if cfg.Regions == nil {
		cfg.Regions = DefaultRegions
	}
	if cfg.Account == "" {
		cfg.Account = DefaultAccount
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, closing: make(chan struct{}), regions: make(map[string]*regionState)}
	if cfg.Upstream != "" {
		u, _ := url.Parse(cfg.Upstream) // validated
		s.proxy = httputil.NewSingleHostReverseProxy(u)
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.Start()
	s.URL = s.srv.URL
	return s, nil
}

// Close stops the Server and waits for its handlers to return. Requests
// still hanging or waiting out their latency fail: their connections are
// dropped without an answer, so a client never reads them as a success.
func (s *Server) Close() {
	s.once.Do(func() { close(s.closing) })
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// AWSConfig returns a config whose clients reach the Server, with static
// credentials, in region. Its HTTPClient is left nil: set your own, or use
// a ClientPool's.
func (s *Server) AWSConfig(region string) aws.Config {
	return aws.Config{
		Region:       region,
		BaseEndpoint: aws.String(s.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDFANOUTTEST", "fanouttest-secret", ""),
	}
}

// request is what the Server reads off one request.
type request struct {
	accessKey, region, service, action string
	form                               url.Values
	json                               bool // a JSON protocol
}

func parse(r *http.Request) (request, []byte) {
	body, _ := io.ReadAll(r.Body)
	q := request{json: strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json")}
	// Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/ec2/aws4_request, ...
	if _, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
		if parts := strings.Split(strings.SplitN(cred, ",", 2)[0], "/"); len(parts) >= 4 {
			q.accessKey, q.region, q.service = parts[0], parts[2], parts[3]
		}
	}
	if q.json {
		_, q.action, _ = strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	} else {
		q.form, _ = url.ParseQuery(string(body))
		q.action = q.form.Get("Action")
	}
	return q, body
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	q, body := parse(r)
	rs := s.region(q.region)
	s.total.enter()
	rs.enter()
	defer s.total.inflight.Add(-1)
	defer rs.inflight.Add(-1)

	rc := s.cfg.Region[q.region]
	switch rc.Fault {
	case Reset:
		reset(w)
		return
	case Hang:
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		abort()
	}
	if !s.sleep(r.Context(), rc) {
		abort()
	}
	switch {
	case rc.Fault == Disabled:
		writeError(w, q, disabledError)
	case rc.Fault == Error500:
		writeError(w, q, internalError)
	case !rs.allow(s.buckets(rc), q):
		s.total.throttled.Add(1)
		rs.throttled.Add(1)
		writeError(w, q, throttleError)
	case s.proxy != nil:
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.proxy.ServeHTTP(w, r)
	default:
		s.respond(w, q)
	}
}

func (s *Server) region(name string) *regionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs, ok := s.regions[name]
	if !ok {
		rs = &regionState{buckets: make(map[string]*rate.Limiter)}
		s.regions[name] = rs
	}
	return rs
}

func (s *Server) sleep(ctx context.Context, rc RegionConfig) bool {
	l := s.cfg.Latency
	if rc.Latency != nil {
		l = *rc.Latency
	}
	d := l.draw()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closing:
		return false
	}
}

func (s *Server) buckets(rc RegionConfig) *Buckets {
	if rc.Throttle != nil {
		return rc.Throttle
	}
	return s.cfg.Throttle
}

// allow takes a token from the bucket that meters q's kind of action.
func (rs *regionState) allow(b *Buckets, q request) bool {
	if b == nil {
		return true
	}
	kind, bucket := "mutating", b.Mutating
	switch {
	case q.action == "DescribeInstances" && q.form.Get("MaxResults") == "" && !hasFilter(q.form):
		kind, bucket = "unfiltered", b.UnfilteredDescribe
	case strings.HasPrefix(q.action, "Describe"), strings.HasPrefix(q.action, "List"), strings.HasPrefix(q.action, "Get"):
		kind, bucket = "non-mutating", b.NonMutating
	}
	if bucket.PerSecond <= 0 && bucket.Burst <= 0 {
		return true
	}
	return rs.limiter(kind, bucket).Allow()
}

func (rs *regionState) limiter(kind string, b Bucket) *rate.Limiter {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	lim, ok := rs.buckets[kind]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(b.PerSecond), max(b.Burst, 1))
		rs.buckets[kind] = lim
	}
	return lim
}

func hasFilter(form url.Values) bool {
	for k := range form {
		if strings.HasPrefix(k, "Filter.") || strings.HasPrefix(k, "InstanceId.") {
			return true
		}
	}
	return false
}

// abort drops the connection under the request without answering: a
// handler that returned instead would send 200 with an empty body, which
// the SDK reads as an empty success.
func abort() { panic(http.ErrAbortHandler) }

// reset closes the connection under the request without answering.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		abort()
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		abort()
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // an RST, as a dropped connection gives
	}
	conn.Close()
}

// Stats counts what a Server saw.
type Stats struct {
	Requests     int64 // requests received
	Throttled    int64 // of which answered as throttled
	PeakInFlight int64 // most requests in flight at once
	Conns        int64 // TCP connections opened (in Total only)
}

// Snapshot holds the counts in total and per region.
type Snapshot struct {
	Total  Stats
	Region map[string]Stats
}

// Stats returns the counts so far.
func (s *Server) Stats() Snapshot {
	snap := Snapshot{Total: s.total.stats(), Region: map[string]Stats{}}
	snap.Total.Conns = s.conns.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, rs := range s.regions {
		snap.Region[name] = rs.stats()
	}
	return snap
}

func (c *counters) stats() Stats {
	return Stats{Requests: c.requests.Load(), Throttled: c.throttled.Load(), PeakInFlight: c.peak.Load()}
}
