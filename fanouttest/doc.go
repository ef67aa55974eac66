// Package fanouttest is an in-process AWS endpoint for testing fan-outs
// offline: latency, throttling and faults on demand, per region, account,
// service and operation, and over time, answered in each service's own
// wire protocol so that the real aws-sdk-go-v2 clients parse, retry and
// classify them as they would AWS's answers.
//
// A Server either forwards to another endpoint (Config.Upstream:
// moto_server, LocalStack) or answers a few calls itself: ec2
// DescribeRegions and DescribeInstances (paginated), sts GetCallerIdentity
// and AssumeRole (credentials that act in the role's account), and
// organizations ListAccounts (paginated). That is enough for accounts x
// regions with no emulator. Clients reach it through BaseEndpoint:
//
//	srv, err := fanouttest.New(fanouttest.Config{
//		Instances: 12,
//		Latency:   fanouttest.Latency{Fixed: 20 * time.Millisecond},
//		Throttle:  &fanouttest.EC2Buckets,
//		Faults: []fanouttest.Rule{
//			{Region: "me-south-1", Fault: fanouttest.Disabled},
//			{Region: "eu-west-1", Attempts: 2, Fault: fanouttest.Error500},
//		},
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer srv.Close()
//	cfg := srv.AWSConfig("us-east-1")
//
// The region and service of a request are read from its SigV4 credential
// scope, as AWS does, so one Server stands for every region and service;
// its account, from its access key (see Rule.Account).
//
// # Protocols and faults
//
// Each fault is answered as the service answers it. Every cell is checked
// with the real client of the service named, against the built-in
// responder where it answers the call and in front of moto_server:
//
// PROTOCOL_TABLE
//
// Reset closes the connection with an RST; Hang holds the request until
// the client gives up or the Server closes; Latency delays the answer.
// Those are the same in every protocol.
//
// # Rules
//
// Config.Faults holds Rules, tried in order for every request. A rule
// fires for the requests it matches (Region, Account, Service, Operation),
// within its window (From, Until), for each call's first Attempts
// attempts, for a seeded Fraction of them, at most Times times. Every rule
// that fires adds its Latency; the first that fires with a Fault ends the
// list. A request is served in this order:
//
//  1. it waits out Config.Latency and the latencies of the rules that fire;
//  2. it is answered with the first fault, if a rule fired with one;
//  3. it takes a token from its account and region's throttle bucket
//     (Config.Throttle, Config.RegionThrottle), or is answered as
//     throttled;
//  4. the upstream or the built-in responder answers it.
//
// Server.Stats counts requests, throttles and faults in total, per region
// and per account, and how many times each rule fired, so that a test can
// assert what reached the endpoint.
//
// # Caveats
//
// S3 clients need UsePathStyle, since BaseEndpoint is an address with no
// room for a bucket's host name. The REST protocols (restJson1, restXml)
// name no operation on the wire: a rule matches them by method and path
// prefix, and their reads (GET, HEAD) are the non-mutating ones.
package fanouttest
