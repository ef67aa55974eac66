package fanouttest

import (
	"encoding/xml"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// respond answers the calls the built-in responder knows.
func (s *Server) respond(w http.ResponseWriter, q request) {
	switch q.service + ":" + q.action {
	case "ec2:DescribeRegions":
		s.describeRegions(w)
	case "ec2:DescribeInstances":
		s.describeInstances(w, q)
	case "sts:GetCallerIdentity":
		writeXML(w, http.StatusOK, fmt.Sprintf(`<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::%[1]s:user/fanouttest</Arn><UserId>AIDAFANOUTTEST</UserId><Account>%[1]s</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>fanouttest</RequestId></ResponseMetadata></GetCallerIdentityResponse>`, s.account(q)))
	case "sts:AssumeRole":
		s.assumeRole(w, q)
	default:
		writeError(w, q, unknownAction)
	}
}

// assumedKeyPrefix starts the access key of credentials that AssumeRole
// gives; the role's account follows it, so later calls act in that
// account.
const assumedKeyPrefix = "ASIAFANOUTTEST"

// account is the account a request acts in: the role's, for credentials
// from AssumeRole, else the config's.
func (s *Server) account(q request) string {
	if acct, ok := strings.CutPrefix(q.accessKey, assumedKeyPrefix); ok && accountRE.MatchString(acct) {
		return acct
	}
	return s.cfg.Account
}

// assumeRole answers sts AssumeRole for any role ARN, with credentials
// that act in the role's account for an hour.
func (s *Server) assumeRole(w http.ResponseWriter, q request) {
	roleARN := q.form.Get("RoleArn")
	parts := strings.SplitN(roleARN, ":", 6) // arn:PARTITION:iam::ACCOUNT:role/NAME
	if len(parts) != 6 || parts[2] != "iam" || !accountRE.MatchString(parts[4]) || !strings.HasPrefix(parts[5], "role/") {
		writeError(w, q, apiError{http.StatusBadRequest, "ValidationError", "RoleArn " + roleARN + " is not the ARN of an IAM role"})
		return
	}
	acct, role, session := parts[4], strings.TrimPrefix(parts[5], "role/"), q.form.Get("RoleSessionName")
	writeXML(w, http.StatusOK, fmt.Sprintf(`<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>`+
		`<AssumedRoleUser><Arn>arn:%s:sts::%s:assumed-role/%s/%s</Arn><AssumedRoleId>AROAFANOUTTEST:%s</AssumedRoleId></AssumedRoleUser>`+
		`<Credentials><AccessKeyId>%s%s</AccessKeyId><SecretAccessKey>fanouttest-secret</SecretAccessKey><SessionToken>fanouttest-token</SessionToken><Expiration>%s</Expiration></Credentials>`+
		`</AssumeRoleResult><ResponseMetadata><RequestId>fanouttest</RequestId></ResponseMetadata></AssumeRoleResponse>`,
		xmlEscape(parts[1]), acct, xmlEscape(role), xmlEscape(session), xmlEscape(session),
		assumedKeyPrefix, acct, time.Now().Add(time.Hour).UTC().Format(time.RFC3339)))
}

func (s *Server) describeRegions(w http.ResponseWriter) {
	type region struct {
		Name     string `xml:"regionName"`
		Endpoint string `xml:"regionEndpoint"`
		OptIn    string `xml:"optInStatus"`
	}
	var out struct {
		XMLName   xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeRegionsResponse"`
		RequestID string   `xml:"requestId"`
		Regions   []region `xml:"regionInfo>item"`
	}
	out.RequestID = "fanouttest"
	for _, name := range s.cfg.Regions {
		optIn := "opt-in-not-required"
		if optInRegions[name] {
			optIn = "opted-in"
		}
		out.Regions = append(out.Regions, region{Name: name, Endpoint: "ec2." + name + ".amazonaws.com", OptIn: optIn})
	}
	writeXMLValue(w, out)
}

// describeInstances pages through the region's instances, one reservation
// each; NextToken is the offset of the next page.
func (s *Server) describeInstances(w http.ResponseWriter, q request) {
	n := s.cfg.Instances
	if rc, ok := s.cfg.Region[q.region]; ok && rc.Instances != nil {
		n = *rc.Instances
	}
	size := 1000
	if m, err := strconv.Atoi(q.form.Get("MaxResults")); err == nil {
		if m < 5 || m > 1000 {
			writeError(w, q, apiError{http.StatusBadRequest, "InvalidParameterValue", "Value ( " + strconv.Itoa(m) + " ) for parameter maxResults is invalid. Expecting a value between 5 and 1000."})
			return
		}
		size = m
	}
	from, _ := strconv.Atoi(q.form.Get("NextToken"))
	to := min(n, from+size)
	type state struct {
		Code int    `xml:"code"`
		Name string `xml:"name"`
	}
	type instance struct {
		ID    string `xml:"instanceId"`
		Image string `xml:"imageId"`
		State state  `xml:"instanceState"`
		Type  string `xml:"instanceType"`
		AZ    string `xml:"placement>availabilityZone"`
	}
	type reservation struct {
		ID        string     `xml:"reservationId"`
		Owner     string     `xml:"ownerId"`
		Instances []instance `xml:"instancesSet>item"`
	}
	var out struct {
		XMLName      xml.Name      `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstancesResponse"`
		RequestID    string        `xml:"requestId"`
		Reservations []reservation `xml:"reservationSet>item"`
		NextToken    string        `xml:"nextToken,omitempty"`
	}
	out.RequestID = "fanouttest"
	h := fnv.New32a()
	h.Write([]byte(q.region))
	for i := from; i < to; i++ {
		id := fmt.Sprintf("%08x%09x", h.Sum32(), i)
		out.Reservations = append(out.Reservations, reservation{
			ID: "r-" + id, Owner: s.account(q),
			Instances: []instance{{ID: "i-" + id, Image: "ami-0fanouttest", State: state{16, "running"}, Type: "t3.micro", AZ: q.region + "a"}},
		})
	}
	if to < n {
		out.NextToken = strconv.Itoa(to)
	}
	writeXMLValue(w, out)
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

// apiError is an error answer, before it is put in a protocol's format.
type apiError struct {
	status  int
	code    string
	message string
}

// The errors the Server injects, by protocol: EC2's own XML, the query
// protocol's ErrorResponse (STS and others), and the JSON protocols.
var (
	throttleError = map[string]apiError{
		"ec2":   {http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded."},
		"query": {http.StatusBadRequest, "Throttling", "Rate exceeded"},
		"json":  {http.StatusBadRequest, "ThrottlingException", "Rate exceeded"},
	}
	disabledError = map[string]apiError{
		"ec2":   {http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials"},
		"query": {http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid."},
		"json":  {http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid."},
	}
	internalError = map[string]apiError{
		"ec2":   {http.StatusInternalServerError, "InternalError", "An internal error has occurred."},
		"query": {http.StatusInternalServerError, "InternalFailure", "An internal error has occurred."},
		"json":  {http.StatusInternalServerError, "InternalFailure", "An internal error has occurred."},
	}
	unknownAction = map[string]apiError{
		"ec2":   {http.StatusBadRequest, "InvalidAction", "fanouttest answers ec2 DescribeRegions and DescribeInstances; set Config.Upstream for others"},
		"query": {http.StatusBadRequest, "InvalidAction", "fanouttest answers sts GetCallerIdentity and AssumeRole; set Config.Upstream for others"},
		"json":  {http.StatusBadRequest, "UnknownOperationException", "fanouttest answers no JSON protocol call; set Config.Upstream"},
	}
)

func writeError(w http.ResponseWriter, q request, byProtocol any) {
	var e apiError
	switch v := byProtocol.(type) {
	case apiError:
		e = v
	case map[string]apiError:
		switch {
		case q.json:
			e = v["json"]
		case q.service == "ec2":
			e = v["ec2"]
		default:
			e = v["query"]
		}
	}
	switch {
	case q.json:
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(e.status)
		fmt.Fprintf(w, `{"__type":%q,"message":%q}`, e.code, e.message)
	case q.service == "ec2":
		writeXML(w, e.status, fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>fanouttest</RequestID></Response>`, e.code, xmlEscape(e.message)))
	default:
		typ := "Sender"
		if e.status >= 500 {
			typ = "Receiver"
		}
		writeXML(w, e.status, fmt.Sprintf(`<ErrorResponse><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>fanouttest</RequestId></ErrorResponse>`, typ, e.code, xmlEscape(e.message)))
	}
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
