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
// Each fault is answered as the service answers it. Every cell below is
// checked with the real client of the service named (TestProtocolFaults),
// in front of moto_server and against the built-in responder:
//
//	protocol     client        Throttled                     Disabled                         Denied                      Error500
//	ec2Query     ec2           503 RequestLimitExceeded      401 AuthFailure                  403 UnauthorizedOperation   500 InternalError
//	awsQuery     sts, iam      400 Throttling                403 InvalidClientTokenId         403 AccessDenied            500 InternalFailure
//	awsJson1_0   dynamodb      400 ThrottlingException       400 UnrecognizedClientException  400 AccessDeniedException   500 InternalFailure
//	awsJson1_1   organizations 400 ThrottlingException       400 UnrecognizedClientException  400 AccessDeniedException   500 InternalFailure
//	restJson1    lambda        429 TooManyRequestsException  403 UnrecognizedClientException  403 AccessDeniedException   500 ServiceException
//	restXml      s3            503 SlowDown                  403 InvalidAccessKeyId           403 AccessDenied            500 InternalError
//
// With a session token, S3's Disabled is 400 InvalidToken. Other services
// get their protocol's row; restJson1 services other than Lambda get 429
// ThrottlingException and 500 InternalFailure. For every row, the tests
// also check that a throttle bucket's answer is the Throttled cell, that
// Reset fails the call with no API error and Hang with the caller's
// deadline, that Latency and Attempts let the call succeed, how many
// attempts the SDK made (throttles and 500s are retried, Disabled and
// Denied are not), and that fanout.Classify finds ErrThrottled and
// ErrRegionDisabled. An S3 HEAD has no body, so the client sees only the
// status (ServiceUnavailable, Forbidden), as it does from AWS.
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
