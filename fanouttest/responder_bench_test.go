package fanouttest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkRespond measures the Server's own cost per request, without
// the network: the answers of the calls a benchmark makes most, a page of
// DescribeInstances and a throttle, against a handler that writes a fixed
// body.
func BenchmarkRespond(b *testing.B) {
	srv, err := New(Config{Instances: 5})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	const auth = "AWS4-HMAC-SHA256 Credential=AKIDFANOUTTEST/20260101/eu-west-1/ec2/aws4_request, SignedHeaders=host, Signature=0"
	request := func(body string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		r.Header.Set("Authorization", auth)
		return r
	}
	for _, bc := range []struct {
		name    string
		handler http.HandlerFunc
		body    string
	}{
		{"DescribeInstances", srv.serve, "Action=DescribeInstances&MaxResults=5&Version=2016-11-15"},
		{"throttled", func(w http.ResponseWriter, r *http.Request) {
			q := parse(r)
			writeError(w, q, q.errorFor(Throttled))
		}, "Action=DescribeInstances&MaxResults=5&Version=2016-11-15"},
		{"fixed body", func(w http.ResponseWriter, r *http.Request) {
			_ = parse(r)
			w.Header().Set("Content-Type", "text/xml")
			w.Write([]byte(`<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>`))
		}, "Action=DescribeInstances&MaxResults=5&Version=2016-11-15"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.handler(httptest.NewRecorder(), request(bc.body))
			}
		})
	}
}
