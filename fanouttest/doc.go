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
//		Throttle:  fanouttest.EC2Buckets,
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
//	rpcv2Cbor    cloudwatch    400 Throttling                403 InvalidClientTokenId         403 AccessDenied            500 InternalFailure
//
// With a session token, S3's Disabled is 400 InvalidToken. CloudWatch
// keeps its query protocol's codes (in the X-Amzn-Query-Error header).
// Other services get their protocol's row; restJson1 services other than
// Lambda get 429 ThrottlingException and 500 InternalFailure. For every
// row, the tests also check that a throttle bucket's answer is the
// Throttled cell, that Reset fails the call with no API error and Hang
// with the caller's deadline, that Latency and Attempts let the call
// succeed (but for CloudWatch in front of moto, which does not speak
// rpcv2Cbor), how many attempts the SDK made (throttles and 500s are
// retried, Disabled and Denied are not), and that fanout.Classify finds
// ErrThrottled and ErrRegionDisabled. An S3 HEAD has no body, so the
// client sees only the status (ServiceUnavailable, Forbidden), as it does
// from AWS, and Classify finds neither.
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
//  1. on arrival, the rules that fire are found; unless one fired with a
//     fault, a region not enabled in the account (Config.AccountRegions)
//     is its fault, and otherwise it takes a token from its account and
//     region's throttle bucket (Config.Throttle, Config.RegionThrottle),
//     or is to be answered as throttled: a quota is a front door's, and
//     a request its client gives up on during the latency still spent
//     its token;
//  2. it waits out Config.Latency and the latencies of the rules that fire;
//  3. it is answered with the fault, or as throttled, if it is to be;
//  4. the upstream or the built-in responder answers it.
//
// Server.Stats counts requests, throttles and faults in total, per region
// and per account, and how many times each rule fired, so that a test can
// assert what reached the endpoint, and that each rule fired: New refuses
// what it can tell will never match (a region it does not know, an action
// name for a REST service, a rule after one that answers everything), but
// not a service name that no client signs with.
//
// # Caveats
//
// The REST protocols (restJson1, restXml) name no operation on the wire:
// a rule matches them by method and path prefix (S3 calls also by the
// name the SDK sends in x-id), and their reads (GET, HEAD) are the
// non-mutating ones. The SDK's S3 client uses path-style addresses with
// an IP endpoint such as the Server's; with a host name, set
// UsePathStyle. A request signed with no credentials (anonymous S3,
// AssumeRoleWithWebIdentity) has no region or service to match. The
// built-in DescribeInstances ignores filters and instance IDs.
package fanouttest
