package fanouttest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// protocol is the wire protocol of a request, and so of its answer.
type protocol int

const (
	awsQuery protocol = iota // form-encoded Action, XML answers: sts, iam, sqs...
	ec2Query                 // awsQuery with EC2's own error shape
	awsJSON                  // awsJson1_0 and awsJson1_1: X-Amz-Target, JSON answers
	restJSON                 // restJson1: method and path, JSON answers: lambda...
	restXML                  // restXml: method and path, XML answers: s3, route53, cloudfront
	rpcCBOR                  // rpcv2Cbor: the operation in the path, CBOR answers: cloudwatch
)

// restXMLServices are the services, by signing name, whose REST protocol
// speaks XML.
var restXMLServices = map[string]bool{"s3": true, "route53": true, "cloudfront": true}

// request is what the Server reads off one request.
type request struct {
	accessKey, region, service string
	account                    string // the account it acts in; see Rule.Account
	action                     string // the action named on the wire; for REST, S3's x-id or none
	method, path               string
	attempt                    int
	session                    bool // signed with a session token
	proto                      protocol
	jsonVersion                string // "1.0" or "1.1", for awsJSON
	form                       url.Values
	body                       []byte
}

func parse(r *http.Request) *request {
	body, _ := io.ReadAll(r.Body)
	q := &request{method: r.Method, path: r.URL.Path, body: body, attempt: 1}
	q.session = r.Header.Get("X-Amz-Security-Token") != "" || r.URL.Query().Get("X-Amz-Security-Token") != ""
	// Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/ec2/aws4_request, ...
	// or, presigned, X-Amz-Credential=AKID/20260101/eu-west-1/s3/aws4_request.
	cred := r.URL.Query().Get("X-Amz-Credential")
	if _, c, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
		cred, _, _ = strings.Cut(c, ",")
	}
	if parts := strings.Split(cred, "/"); len(parts) >= 4 {
		q.accessKey, q.region, q.service = parts[0], parts[2], parts[3]
	}
	// amz-sdk-request: attempt=2; max=3
	if a, ok := strings.CutPrefix(r.Header.Get("Amz-Sdk-Request"), "attempt="); ok {
		a, _, _ = strings.Cut(a, ";")
		if n, err := strconv.Atoi(a); err == nil && n > 0 {
			q.attempt = n
		}
	}
	ct := r.Header.Get("Content-Type")
	switch {
	case r.Header.Get("Smithy-Protocol") == "rpc-v2-cbor":
		// POST /service/GraniteServiceVersion20100801/operation/GetMetricData
		q.proto = rpcCBOR
		if _, op, ok := strings.Cut(r.URL.Path, "/operation/"); ok {
			q.action = op
		}
		return q
	case strings.HasPrefix(ct, "application/x-amz-json-"):
		q.proto, q.jsonVersion = awsJSON, strings.TrimPrefix(ct, "application/x-amz-json-")
		if q.jsonVersion != "1.0" {
			q.jsonVersion = "1.1"
		}
		_, q.action, _ = strings.Cut(r.Header.Get("X-Amz-Target"), ".")
		return q
	case r.Method == http.MethodPost && strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		q.form, _ = url.ParseQuery(string(body))
		if q.action = q.form.Get("Action"); q.action != "" {
			if q.service == "ec2" {
				q.proto = ec2Query
			}
			return q
		}
	}
	// REST names no operation, but the SDK's S3 client sends
	// ?x-id=GetObject with most of its calls.
	q.proto, q.action = restJSON, r.URL.Query().Get("x-id")
	if restXMLServices[q.service] {
		q.proto = restXML
	}
	return q
}

// rest reports whether q is in a REST protocol, named by method and path.
func (q *request) rest() bool { return q.proto == restJSON || q.proto == restXML }

// reads reports whether q only reads, for the throttle buckets: an action
// that starts with Describe, List or Get, or in REST, a GET or a HEAD.
func (q *request) reads() bool {
	if q.rest() {
		return q.method == http.MethodGet || q.method == http.MethodHead
	}
	return strings.HasPrefix(q.action, "Describe") || strings.HasPrefix(q.action, "List") || strings.HasPrefix(q.action, "Get")
}

// apiError is an error answer, before it is put in a protocol's format.
type apiError struct {
	status  int
	code    string
	message string
}

// dialect is how a service words its errors: its protocol's shape, and
// for a few services their own codes.
type dialect int

const (
	dQuery dialect = iota
	dEC2
	dJSON
	dRestJSON
	dLambda
	dS3
	dialects
)

func (q *request) dialect() dialect {
	switch {
	case q.proto == ec2Query:
		return dEC2
	case q.proto == awsJSON:
		return dJSON
	case q.proto == restJSON && q.service == "lambda":
		return dLambda
	case q.proto == restJSON:
		return dRestJSON
	case q.proto == restXML && q.service == "s3":
		return dS3
	}
	// awsQuery; restXml's other services, which wrap errors alike; and
	// rpcv2Cbor, whose services (CloudWatch) kept their query codes.
	return dQuery
}

// answers are the errors the Server answers each fault with, by dialect.
var answers = map[Fault][dialects]apiError{
	Throttled: {
		dQuery:    {http.StatusBadRequest, "Throttling", "Rate exceeded"},
		dEC2:      {http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded."},
		dJSON:     {http.StatusBadRequest, "ThrottlingException", "Rate exceeded"},
		dRestJSON: {http.StatusTooManyRequests, "ThrottlingException", "Rate exceeded"},
		dLambda:   {http.StatusTooManyRequests, "TooManyRequestsException", "Rate exceeded"},
		dS3:       {http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate."},
	},
	Disabled: {
		dQuery:    {http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid."},
		dEC2:      {http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials"},
		dJSON:     {http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid."},
		dRestJSON: {http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid."},
		dLambda:   {http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid."},
		dS3:       {http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."},
	},
	Denied: {
		dQuery:    {http.StatusForbidden, "AccessDenied", ""},
		dEC2:      {http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation."},
		dJSON:     {http.StatusBadRequest, "AccessDeniedException", ""},
		dRestJSON: {http.StatusForbidden, "AccessDeniedException", ""},
		dLambda:   {http.StatusForbidden, "AccessDeniedException", ""},
		dS3:       {http.StatusForbidden, "AccessDenied", "Access Denied"},
	},
	Error500: {
		dQuery:    {http.StatusInternalServerError, "InternalFailure", "An internal error has occurred."},
		dEC2:      {http.StatusInternalServerError, "InternalError", "An internal error has occurred."},
		dJSON:     {http.StatusInternalServerError, "InternalFailure", "An internal error has occurred."},
		dRestJSON: {http.StatusInternalServerError, "InternalFailure", "An internal error has occurred."},
		dLambda:   {http.StatusInternalServerError, "ServiceException", "An internal error has occurred."},
		dS3:       {http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again."},
	},
}

// s3SessionDisabled is S3's answer in a region that is not enabled to a
// request signed with a session token.
var s3SessionDisabled = apiError{http.StatusBadRequest, "InvalidToken", "The provided token is malformed or otherwise invalid."}

// errorFor is the error with which the service q was sent to answers f,
// one of the faults in answers.
func (q *request) errorFor(f Fault) apiError {
	d := q.dialect()
	e := answers[f][d]
	switch {
	case f == Disabled && d == dS3 && q.session:
		return s3SessionDisabled
	case f == Denied && e.message == "":
		action := q.service + ":" + q.action
		if q.action == "" {
			action = "this action"
		}
		e.message = fmt.Sprintf("User: arn:aws:iam::%s:user/fanouttest is not authorized to perform: %s", q.account, action)
	}
	return e
}

// unknown is the error the built-in responder answers a call it does not
// know with.
func (q *request) unknown() apiError {
	const set = "; set Config.Upstream to forward others to an emulator"
	switch q.proto {
	case ec2Query:
		return apiError{http.StatusBadRequest, "InvalidAction", "fanouttest answers ec2 DescribeRegions and DescribeInstances" + set}
	case awsQuery:
		return apiError{http.StatusBadRequest, "InvalidAction", "fanouttest answers sts GetCallerIdentity and AssumeRole" + set}
	case awsJSON:
		return apiError{http.StatusBadRequest, "UnknownOperationException", "fanouttest answers organizations ListAccounts" + set}
	case restXML:
		return apiError{http.StatusNotImplemented, "NotImplemented", "fanouttest answers no REST call" + set}
	case rpcCBOR:
		return apiError{http.StatusBadRequest, "UnknownOperationException", "fanouttest answers no rpcv2Cbor call" + set}
	}
	return apiError{http.StatusNotFound, "UnknownOperationException", "fanouttest answers no REST call" + set}
}

// writeError answers q with e in q's protocol.
func writeError(w http.ResponseWriter, q *request, e apiError) {
	w.Header().Set("X-Amzn-Requestid", "fanouttest")
	switch q.proto {
	case rpcCBOR:
		typ := "Sender"
		if e.status >= 500 {
			typ = "Receiver"
		}
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
		w.Header().Set("Content-Type", "application/cbor")
		w.Header().Set("X-Amzn-Query-Error", e.code+";"+typ)
		w.WriteHeader(e.status)
		_, _ = w.Write(cborMap("__type", e.code, "message", e.message))
	case awsJSON:
		w.Header().Set("Content-Type", "application/x-amz-json-"+q.jsonVersion)
		writeJSON(w, e.status, map[string]string{"__type": e.code, "message": e.message})
	case restJSON:
		w.Header().Set("X-Amzn-Errortype", e.code)
		w.Header().Set("Content-Type", "application/json")
		writeJSON(w, e.status, map[string]string{"message": e.message})
	case ec2Query:
		writeXML(w, e.status, fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>fanouttest</RequestID></Response>`, e.code, xmlEscape(e.message)))
	case restXML:
		if q.service == "s3" { // S3's errors are not wrapped
			w.Header().Set("X-Amz-Request-Id", "fanouttest")
			writeXML(w, e.status, fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>%s</Code><Message>%s</Message><RequestId>fanouttest</RequestId><HostId>fanouttest</HostId></Error>`, e.code, xmlEscape(e.message)))
			return
		}
		fallthrough
	default:
		typ := "Sender"
		if e.status >= 500 {
			typ = "Receiver"
		}
		writeXML(w, e.status, fmt.Sprintf(`<ErrorResponse><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>fanouttest</RequestId></ErrorResponse>`, typ, e.code, xmlEscape(e.message)))
	}
}

// cborMap encodes pairs of text strings as a CBOR map (RFC 8949): the
// little of CBOR an error answer needs.
func cborMap(kv ...string) []byte {
	b := cborHead(nil, 5, len(kv)/2)
	for _, s := range kv {
		b = append(cborHead(b, 3, len(s)), s...)
	}
	return b
}

// cborHead appends the head of a CBOR item of major type major and
// length n.
func cborHead(b []byte, major byte, n int) []byte {
	switch {
	case n < 24:
		return append(b, major<<5|byte(n))
	case n < 1<<8:
		return append(b, major<<5|24, byte(n))
	case n < 1<<16:
		return append(b, major<<5|25, byte(n>>8), byte(n))
	}
	return append(b, major<<5|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeXMLValue(w http.ResponseWriter, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeXML(w, http.StatusOK, xml.Header+string(b))
}

func writeXML(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// jsonUnmarshal reads a JSON protocol's request body; an empty body is an
// empty object.
func jsonUnmarshal(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return json.Unmarshal(body, v)
}
