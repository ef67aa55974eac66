package fanouttest

import (
	"encoding/xml"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// respond answers the calls the built-in responder knows.
func (s *Server) respond(w http.ResponseWriter, q *request) {
	if q.service == "account" && q.method == http.MethodPost && q.path == "/listRegions" {
		s.listRegions(w, q)
		return
	}
	switch q.service + ":" + q.action {
	case "ec2:DescribeRegions":
		s.describeRegions(w, q)
	case "ec2:DescribeInstances":
		s.describeInstances(w, q)
	case "sts:GetCallerIdentity":
		arn := "arn:aws:iam::" + q.account + ":user/fanouttest"
		if q.session { // a role's credentials
			arn = "arn:aws:sts::" + q.account + ":assumed-role/fanouttest/fanouttest"
		}
		writeXML(w, http.StatusOK, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>`+arn+
			`</Arn><UserId>AIDAFANOUTTEST</UserId><Account>`+q.account+`</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>fanouttest</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)
	case "sts:AssumeRole":
		s.assumeRole(w, q)
	case "organizations:ListAccounts":
		s.listAccounts(w, q)
	default:
		writeError(w, q, q.unknown())
	}
}

// assumedKeyPrefix starts the access key of credentials that the built-in
// AssumeRole gives; the role's account follows it, so later calls act in
// that account.
const assumedKeyPrefix = "ASIAFANOUTTEST"

// callerAccount is the account whose credentials signed q: a role's, for
// credentials that AssumeRole gave through the Server, else the config's.
func (s *Server) callerAccount(q *request) string {
	s.mu.Lock()
	acct, ok := s.keys[q.accessKey]
	s.mu.Unlock()
	if ok {
		return acct
	}
	if acct, ok := strings.CutPrefix(q.accessKey, assumedKeyPrefix); ok && accountRE.MatchString(acct) {
		return acct
	}
	return s.cfg.Account
}

// subject is the account q is about, as Rule.Account reads it: the role's
// for sts AssumeRole, else the caller's.
func (s *Server) subject(q *request) string {
	if q.service == "sts" && q.action == "AssumeRole" {
		if acct, ok := roleAccount(q.form.Get("RoleArn")); ok {
			return acct
		}
	}
	return q.account
}

// roleAccount is the account of an IAM role's ARN:
// arn:PARTITION:iam::ACCOUNT:role/NAME.
func roleAccount(arn string) (string, bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "iam" || !accountRE.MatchString(parts[4]) || !strings.HasPrefix(parts[5], "role/") {
		return "", false
	}
	return parts[4], true
}

// inOrganization reports whether acct is Config.Account or one of
// Config.Accounts; with no Accounts, every account is.
func (s *Server) inOrganization(acct string) bool {
	return s.cfg.Accounts == nil || acct == s.cfg.Account || slices.Contains(s.cfg.Accounts, acct)
}

// assumeRole answers sts AssumeRole with credentials that act in the
// role's account for an hour.
func (s *Server) assumeRole(w http.ResponseWriter, q *request) {
	roleARN := q.form.Get("RoleArn")
	acct, ok := roleAccount(roleARN)
	if !ok {
		writeError(w, q, apiError{http.StatusBadRequest, "ValidationError", "RoleArn " + roleARN + " is not the ARN of an IAM role"})
		return
	}
	if !s.inOrganization(acct) {
		writeError(w, q, apiError{http.StatusForbidden, "AccessDenied", fmt.Sprintf(
			"User: arn:aws:iam::%s:user/fanouttest is not authorized to perform: sts:AssumeRole on resource: %s", q.account, roleARN)})
		return
	}
	parts := strings.SplitN(roleARN, ":", 6)
	role, session := strings.TrimPrefix(parts[5], "role/"), q.form.Get("RoleSessionName")
	writeXML(w, http.StatusOK, fmt.Sprintf(`<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>`+
		`<AssumedRoleUser><Arn>arn:%s:sts::%s:assumed-role/%s/%s</Arn><AssumedRoleId>AROAFANOUTTEST:%s</AssumedRoleId></AssumedRoleUser>`+
		`<Credentials><AccessKeyId>%s%s</AccessKeyId><SecretAccessKey>fanouttest-secret</SecretAccessKey><SessionToken>fanouttest-token</SessionToken><Expiration>%s</Expiration></Credentials>`+
		`</AssumeRoleResult><ResponseMetadata><RequestId>fanouttest</RequestId></ResponseMetadata></AssumeRoleResponse>`,
		xmlEscape(parts[1]), acct, xmlEscape(role), xmlEscape(session), xmlEscape(session),
		assumedKeyPrefix, acct, time.Now().Add(time.Hour).UTC().Format(time.RFC3339)))
}

// listAccounts pages through the organization: Config.Account, then
// Config.Accounts. Only the management account may list it.
func (s *Server) listAccounts(w http.ResponseWriter, q *request) {
	if q.account != s.cfg.Account {
		writeError(w, q, apiError{http.StatusBadRequest, "AccessDeniedException", "You don't have permissions to access this resource."})
		return
	}
	var in struct {
		MaxResults int
		NextToken  string
	}
	if err := jsonUnmarshal(q.body, &in); err != nil {
		writeError(w, q, apiError{http.StatusBadRequest, "SerializationException", "the request body is not JSON"})
		return
	}
	all := append([]string{s.cfg.Account}, s.cfg.Accounts...)
	from, to, next, perr := page(in.MaxResults, in.NextToken, 20, len(all), "InvalidInputException", "organization")
	if perr != nil {
		writeError(w, q, *perr)
		return
	}
	type account struct {
		ID                                            string `json:"Id"`
		Arn, Email, Name, Status, State, JoinedMethod string
		JoinedTimestamp                               float64
	}
	var out struct {
		Accounts  []account
		NextToken string `json:",omitempty"`
	}
	out.NextToken = next
	for _, id := range all[from:to] {
		out.Accounts = append(out.Accounts, account{
			ID: id, Arn: fmt.Sprintf("arn:aws:organizations::%s:account/o-fanouttest/%s", s.cfg.Account, id),
			Email: id + "@example.com", Name: "account-" + id, Status: "ACTIVE", State: "ACTIVE",
			JoinedMethod: "CREATED", JoinedTimestamp: 1.7e9,
		})
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) describeRegions(w http.ResponseWriter, q *request) {
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
		switch {
		case !s.regionEnabled(q.account, name):
			optIn = "not-opted-in"
		case optInRegions[name]:
			optIn = "opted-in"
		}
		out.Regions = append(out.Regions, region{Name: name, Endpoint: "ec2." + name + ".amazonaws.com", OptIn: optIn})
	}
	writeXMLValue(w, out)
}

// describeInstances pages through the account's instances in the region,
// one reservation each; NextToken is the offset of the next page. It
// ignores filters and instance IDs: every call lists them all.
func (s *Server) describeInstances(w http.ResponseWriter, q *request) {
	n, ok := s.cfg.RegionInstances[q.region]
	if !ok {
		n = s.cfg.Instances
	}
	size := 1000
	if m, err := strconv.Atoi(q.form.Get("MaxResults")); err == nil {
		if m < 5 || m > 1000 {
			writeError(w, q, apiError{http.StatusBadRequest, "InvalidParameterValue", "Value ( " + strconv.Itoa(m) + " ) for parameter maxResults is invalid. Expecting a value between 5 and 1000."})
			return
		}
		size = m
	}
	from := 0
	if token := q.form.Get("NextToken"); token != "" {
		var err error
		if from, err = strconv.Atoi(token); err != nil || from <= 0 || from >= n {
			writeError(w, q, apiError{http.StatusBadRequest, "InvalidParameterValue", "Invalid value '" + token + "' for nextToken"})
			return
		}
	}
	to := min(n, from+size)
	h := fnv.New32a()
	h.Write([]byte(q.account + "/" + q.region))
	sum := uint64(h.Sum32())
	az := xmlEscape(q.region) + "a"
	// Built by hand, not by encoding/xml: a benchmark's every call ends
	// here, and the Server must not be what it measures.
	b := make([]byte, 0, 512+400*max(0, to-from))
	b = append(b, xml.Header+`<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>fanouttest</requestId><reservationSet>`...)
	for i := from; i < to; i++ {
		b = append(b, "<item><reservationId>r-"...)
		b = appendID(b, sum, uint64(i))
		b = append(b, "</reservationId><ownerId>"+q.account+"</ownerId><instancesSet><item><instanceId>i-"...)
		b = appendID(b, sum, uint64(i))
		b = append(b, "</instanceId><imageId>ami-0fanouttest</imageId><instanceState><code>16</code><name>running</name></instanceState>"+
			"<instanceType>t3.micro</instanceType><placement><availabilityZone>"+az+"</availabilityZone></placement></item></instancesSet></item>"...)
	}
	b = append(b, "</reservationSet>"...)
	if to < n {
		b = append(b, "<nextToken>"...)
		b = strconv.AppendInt(b, int64(to), 10)
		b = append(b, "</nextToken>"...)
	}
	b = append(b, "</DescribeInstancesResponse>"...)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write(b)
}

// appendID appends an instance's ID after its prefix: the region's hash in
// 8 hex digits and the instance's number in 9.
func appendID(b []byte, sum, i uint64) []byte {
	b = appendHex(b, sum, 8)
	return appendHex(b, i, 9)
}

func appendHex(b []byte, v uint64, width int) []byte {
	const digits = "0123456789abcdef"
	for shift := 4 * (width - 1); shift >= 0; shift -= 4 {
		b = append(b, digits[v>>uint(shift)&0xf])
	}
	return b
}

// listRegions answers account ListRegions: the Server's regions with
// their status in the account asked for (the caller's, or, from the
// management account, AccountId), filtered by RegionOptStatusContains,
// paginated.
func (s *Server) listRegions(w http.ResponseWriter, q *request) {
	var in struct {
		AccountID               string `json:"AccountId"`
		MaxResults              int
		NextToken               string
		RegionOptStatusContains []string
	}
	if err := jsonUnmarshal(q.body, &in); err != nil {
		writeError(w, q, apiError{http.StatusBadRequest, "ValidationException", "the request body is not JSON"})
		return
	}
	account := q.account
	if in.AccountID != "" && in.AccountID != q.account {
		if q.account != s.cfg.Account || !slices.Contains(s.cfg.Accounts, in.AccountID) {
			writeError(w, q, apiError{http.StatusForbidden, "AccessDeniedException", "You don't have permissions to access this resource."})
			return
		}
		account = in.AccountID
	}
	type region struct{ RegionName, RegionOptStatus string }
	var all []region
	for _, name := range s.cfg.Regions {
		status := "ENABLED_BY_DEFAULT"
		switch {
		case !s.regionEnabled(account, name):
			status = "DISABLED"
		case optInRegions[name]:
			status = "ENABLED"
		}
		if len(in.RegionOptStatusContains) == 0 || slices.Contains(in.RegionOptStatusContains, status) {
			all = append(all, region{name, status})
		}
	}
	from, to, next, perr := page(in.MaxResults, in.NextToken, 50, len(all), "ValidationException", "listing")
	if perr != nil {
		writeError(w, q, *perr)
		return
	}
	var out struct {
		Regions   []region
		NextToken string `json:",omitempty"`
	}
	out.Regions, out.NextToken = all[from:to], next
	writeJSON(w, http.StatusOK, out)
}

// page bounds one page of a JSON listing of n entries as AWS's JSON APIs
// page them: maxResults entries (0: 20; else 1 to most), from the offset
// that nextToken carries ("": the first). It returns the page's bounds and
// the next page's token ("" on the last), or the error to answer with, of
// the service's code, naming whose token a bad one is not.
func page(maxResults int, nextToken string, most, n int, code, whose string) (from, to int, next string, e *apiError) {
	size := 20
	if maxResults != 0 {
		if maxResults < 1 || maxResults > most {
			return 0, 0, "", &apiError{http.StatusBadRequest, code, fmt.Sprintf("MaxResults must be from 1 to %d", most)}
		}
		size = maxResults
	}
	if nextToken != "" {
		i, err := strconv.Atoi(nextToken)
		if err != nil || i <= 0 || i >= n {
			return 0, 0, "", &apiError{http.StatusBadRequest, code, "NextToken is not one this " + whose + " gave"}
		}
		from = i
	}
	to = min(n, from+size)
	if to < n {
		next = strconv.Itoa(to)
	}
	return from, to, next, nil
}
