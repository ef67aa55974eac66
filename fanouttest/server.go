package fanouttest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
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
	enabled map[string]map[string]bool // Config.AccountRegions, as sets
	rules   []*rule
	now     func() time.Time
	start   time.Time
	srv     *httptest.Server
	proxy   *httputil.ReverseProxy
	closing chan struct{}
	once    sync.Once

	conns atomic.Int64
	total counters

	mu       sync.Mutex
	regions  map[string]*counters
	accounts map[string]*counters
	buckets  map[bucketKey]*rate.Limiter
	keys     map[string]string // access key to account, from AssumeRole answers
}

// bucketKey names a throttle bucket: one per account, region, service and
// kind of action, and in the query and JSON protocols per action too, as
// EC2 meters each action on its own.
type bucketKey struct{ account, region, service, action, kind string }

type counters struct {
	requests, throttled, faulted, inflight, peak atomic.Int64
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
	// The Server keeps copies: a caller that changes its config later
	// changes nothing, unchecked.
	cfg.Regions, cfg.Accounts, cfg.Faults = slices.Clone(cfg.Regions), slices.Clone(cfg.Accounts), slices.Clone(cfg.Faults)
	cfg.RegionInstances, cfg.RegionThrottle = maps.Clone(cfg.RegionInstances), maps.Clone(cfg.RegionThrottle)
	if cfg.Account == "" {
		cfg.Account = DefaultAccount
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, rules: compile(cfg.Faults, cfg.Seed), now: cfg.Clock, closing: make(chan struct{}),
		regions: map[string]*counters{}, accounts: map[string]*counters{},
		buckets: map[bucketKey]*rate.Limiter{}, keys: map[string]string{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.start = s.now()
	s.enabled = make(map[string]map[string]bool, len(cfg.AccountRegions))
	for acct, regions := range cfg.AccountRegions {
		s.enabled[acct] = make(map[string]bool, len(regions))
		for _, r := range regions {
			s.enabled[acct][r] = true
		}
	}
	if cfg.Upstream != "" {
		u, _ := url.Parse(cfg.Upstream) // validated
		s.proxy = httputil.NewSingleHostReverseProxy(u)
		s.proxy.ModifyResponse = s.learnKeys
		s.proxy.ErrorHandler = s.upstreamDown
		s.proxy.ErrorLog = log.New(io.Discard, "", 0)
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
// credentials of Config.Account, in region. Its HTTPClient is left nil:
// set your own, or use a ClientPool's.
func (s *Server) AWSConfig(region string) aws.Config {
	return aws.Config{
		Region:       region,
		BaseEndpoint: aws.String(s.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDFANOUTTEST", "fanouttest-secret", ""),
	}
}

// AWSConfigFor is AWSConfig with credentials that act in account, as those
// sts AssumeRole gives into it do, for the built-in responder and the
// rules (an upstream knows nothing of them). It fails for an account that
// is not 12 digits.
func (s *Server) AWSConfigFor(account, region string) (aws.Config, error) {
	if !accountRE.MatchString(account) {
		return aws.Config{}, fmt.Errorf("fanouttest: AWSConfigFor: %q is not an AWS account ID (12 digits)", account)
	}
	cfg := s.AWSConfig(region)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(assumedKeyPrefix+account, "fanouttest-secret", "fanouttest-token")
	return cfg, nil
}

// upstreamDown answers, in the request's protocol, a request the upstream
// could not be reached for: a test whose emulator is not running should
// say so, not fail on an empty answer.
func (s *Server) upstreamDown(w http.ResponseWriter, r *http.Request, err error) {
	q, _ := r.Context().Value(requestKey{}).(*request)
	if q == nil {
		q = &request{proto: awsQuery}
	}
	writeError(w, q, apiError{http.StatusBadGateway, "UpstreamUnreachable",
		"fanouttest: Config.Upstream " + s.cfg.Upstream + " did not answer: " + err.Error()})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	q := parse(r)
	q.account = s.callerAccount(q)
	subject := s.subject(q)
	// A quota is enforced at the front door: the bucket decides on
	// arrival, and the answer, served or throttled, takes the latency.
	delay, fault := s.match(q, subject)
	if fault == NoFault && !s.regionEnabled(subject, q.region) && !globalServices[q.service] {
		fault = Disabled
	}
	allowed := fault != NoFault || s.allow(q)
	scopes := [...]*counters{&s.total, s.counters(s.regions, q.region), s.counters(s.accounts, subject)}
	for _, c := range scopes {
		c.enter()
		defer c.inflight.Add(-1)
	}
	add := func(f func(*counters) *atomic.Int64) {
		for _, c := range scopes {
			f(c).Add(1)
		}
	}

	if !s.sleep(r.Context(), s.cfg.Latency.draw()+delay) {
		abort()
	}
	switch fault {
	case NoFault:
	case Reset:
		add(faulted)
		reset(w)
		return
	case Hang:
		add(faulted)
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		abort()
	case Throttled:
		add(throttled)
		writeError(w, q, q.errorFor(Throttled))
		return
	default:
		add(faulted)
		writeError(w, q, q.errorFor(fault))
		return
	}
	if !allowed {
		add(throttled)
		writeError(w, q, q.errorFor(Throttled))
		return
	}
	if s.proxy != nil {
		r.Body = io.NopCloser(bytes.NewReader(q.body))
		s.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestKey{}, q)))
		return
	}
	s.respond(w, q)
}

func faulted(c *counters) *atomic.Int64   { return &c.faulted }
func throttled(c *counters) *atomic.Int64 { return &c.throttled }

func (s *Server) counters(m map[string]*counters, name string) *counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := m[name]
	if !ok {
		c = new(counters)
		m[name] = c
	}
	return c
}

func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
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

// allow takes a token from the bucket that meters q's kind of action in
// its account and region.
func (s *Server) allow(q *request) bool {
	b, ok := s.cfg.RegionThrottle[q.region]
	if !ok {
		b = s.cfg.Throttle
	}
	kind, bucket := "mutating", b.Mutating
	switch {
	case q.proto == ec2Query && q.action == "DescribeInstances" && q.form.Get("MaxResults") == "" && !hasFilter(q.form):
		kind, bucket = "unfiltered", b.UnfilteredDescribe
	case q.reads():
		kind, bucket = "non-mutating", b.NonMutating
	}
	if bucket == (Bucket{}) {
		return true
	}
	key := bucketKey{q.account, q.region, q.service, "", kind}
	if !q.rest() {
		key.action = q.action
	}
	s.mu.Lock()
	lim, ok := s.buckets[key]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(bucket.PerSecond), bucket.Burst)
		s.buckets[key] = lim
	}
	s.mu.Unlock()
	return lim.Allow()
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

type requestKey struct{}

var accessKeyRE = regexp.MustCompile(`<AccessKeyId>([^<]+)</AccessKeyId>`)

// learnKeys remembers the account of the credentials an upstream's sts
// AssumeRole gives, so that rules for that account match their requests.
func (s *Server) learnKeys(resp *http.Response) error {
	q, _ := resp.Request.Context().Value(requestKey{}).(*request)
	if q == nil || q.service != "sts" || q.action != "AssumeRole" || resp.StatusCode != http.StatusOK {
		return nil
	}
	acct, ok := roleAccount(q.form.Get("RoleArn"))
	if !ok {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if m := accessKeyRE.FindSubmatch(body); m != nil {
		s.mu.Lock()
		s.keys[string(m[1])] = acct
		s.mu.Unlock()
	}
	return err
}

// Stats counts what a Server saw.
type Stats struct {
	Requests     int64 // requests received
	Throttled    int64 // of which answered as throttled, by a bucket or a rule
	Faulted      int64 // of which answered with another fault of a rule
	PeakInFlight int64 // most requests in flight at once
	Conns        int64 // TCP connections opened (in Total only)
}

// Snapshot holds the counts in total, per region, per account (as
// Rule.Account reads it), and how many times each rule of Config.Faults
// fired.
type Snapshot struct {
	Total   Stats
	Region  map[string]Stats
	Account map[string]Stats
	Rules   []int64
}

// Stats returns the counts so far.
func (s *Server) Stats() Snapshot {
	snap := Snapshot{Total: s.total.stats(), Region: map[string]Stats{}, Account: map[string]Stats{}, Rules: make([]int64, len(s.rules))}
	snap.Total.Conns = s.conns.Load()
	for i, r := range s.rules {
		snap.Rules[i] = r.count()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, c := range s.regions {
		snap.Region[name] = c.stats()
	}
	for name, c := range s.accounts {
		snap.Account[name] = c.stats()
	}
	return snap
}

func (c *counters) stats() Stats {
	return Stats{Requests: c.requests.Load(), Throttled: c.throttled.Load(), Faulted: c.faulted.Load(), PeakInFlight: c.peak.Load()}
}

// regionEnabled reports whether region is enabled in account
// (Config.AccountRegions).
func (s *Server) regionEnabled(account, region string) bool {
	enabled, ok := s.enabled[account]
	return !ok || enabled[region]
}

// globalServices answer in every region of their partition, enabled or
// not: their endpoints are global.
var globalServices = map[string]bool{"iam": true, "organizations": true, "account": true, "route53": true, "cloudfront": true}
