package fanout_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyendpoints "github.com/aws/smithy-go/endpoints"

	"github.com/awsfanout/fanout"
)

// regionalEndpoints serves GetCallerIdentity on one loopback address per
// region, as AWS has one endpoint per region, and counts the TCP
// connections opened.
type regionalEndpoints struct {
	servers []*httptest.Server
	urls    map[string]string
	conns   atomic.Int64
}

func newRegionalEndpoints(tb testing.TB, regions []string) *regionalEndpoints {
	e := &regionalEndpoints{urls: map[string]string{}}
	for i, region := range regions {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", i+2))
		if err != nil {
			tb.Fatal(err)
		}
		// Hand-rolled, not fanouttest: each region has a loopback IP of its own, as AWS a host, and fanouttest listens on 127.0.0.1 only.
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/xml")
			io.WriteString(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/x</Arn><UserId>X</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)
		}))
		srv.Listener.Close()
		srv.Listener = l
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				e.conns.Add(1)
			}
		}
		srv.Start()
		e.servers = append(e.servers, srv)
		e.urls[region] = srv.URL
	}
	tb.Cleanup(func() {
		for _, s := range e.servers {
			s.Close()
		}
	})
	return e
}

// ResolveEndpoint sends each region's calls to its own address.
func (e *regionalEndpoints) ResolveEndpoint(_ context.Context, p sts.EndpointParameters) (smithyendpoints.Endpoint, error) {
	u, err := url.Parse(e.urls[aws.ToString(p.Region)])
	return smithyendpoints.Endpoint{URI: *u}, err
}

var benchRegions = []string{
	"us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1", "eu-west-1",
	"eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1", "eu-south-1", "ap-south-1", "ap-northeast-1",
	"ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2", "af-south-1", "me-central-1",
}

// BenchmarkConnections makes 2,000 calls over 20 regions at Limit 100 and
// reports the TCP connections opened: through one ClientPool, and through
// clients built the plain way, each with the SDK's default HTTP client.
func BenchmarkConnections(b *testing.B) {
	const calls, limit = 2000, 100
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDBENCH", "bench-secret", "")}
	spread, one := make([]string, calls), make([]string, calls)
	for i := range spread {
		spread[i], one[i] = benchRegions[i%len(benchRegions)], benchRegions[0]
	}
	for name, clients := range map[string]func(e *regionalEndpoints) (func(region string) *sts.Client, func()){
		"pool": func(e *regionalEndpoints) (func(string) *sts.Client, func()) {
			pool := newPool(b, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
				o.ClientOptions = append(o.ClientOptions, func(o *sts.Options) { o.EndpointResolverV2 = e })
			})
			return pool.Get, pool.CloseIdleConnections
		},
		"plain": func(e *regionalEndpoints) (func(string) *sts.Client, func()) {
			byRegion := map[string]*sts.Client{}
			for _, region := range benchRegions {
				c := cfg.Copy()
				c.Region = region
				byRegion[region] = sts.NewFromConfig(c, func(o *sts.Options) { o.EndpointResolverV2 = e })
			}
			return func(r string) *sts.Client { return byRegion[r] }, func() {
				http.DefaultTransport.(*http.Transport).CloseIdleConnections()
			}
		},
	} {
		for shape, keys := range map[string][]string{"20-regions": spread, "1-region": one} {
			b.Run(shape+"/"+name, func(b *testing.B) {
				benchConns(b, clients, keys, limit)
			})
		}
	}
}

func benchConns(b *testing.B, clients func(e *regionalEndpoints) (func(string) *sts.Client, func()), keys []string, limit int64) {
	e := newRegionalEndpoints(b, benchRegions)
	get, closeIdle := clients(e)
	defer closeIdle()
	f := fanout.New[string](func(o *fanout.Options) { o.Limit = limit })
	b.ReportAllocs()
	for b.Loop() {
		_, err := f.Run(context.Background(), keys, func(ctx context.Context, region string) (string, error) {
			out, err := get(region).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			if err != nil {
				return "", err
			}
			return aws.ToString(out.Account), nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(e.conns.Load())/float64(b.N), "conns/run")
}

// BenchmarkClientPoolGet compares a cached Get with building a client per
// call.
func BenchmarkClientPoolGet(b *testing.B) {
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDBENCH", "bench-secret", "")}
	b.Run("pool.Get", func(b *testing.B) {
		pool := newPool(b, cfg, sts.NewFromConfig)
		b.ReportAllocs()
		for b.Loop() {
			_ = pool.Get("eu-west-1")
		}
	})
	// Many goroutines at once, as a fan-out's workers ask: the hit path
	// must not serialise them.
	b.Run("pool.Get/parallel", func(b *testing.B) {
		pool := newPool(b, cfg, sts.NewFromConfig)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = pool.Get("eu-west-1")
			}
		})
	})
	b.Run("pool.Client/parallel", func(b *testing.B) {
		pool := newPool(b, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = newAccounts(b, cfg) })
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := pool.Client("111122223333", "eu-west-1"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("NewFromConfig", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := cfg.Copy()
			c.Region = "eu-west-1"
			_ = sts.NewFromConfig(c)
		}
	})
}
