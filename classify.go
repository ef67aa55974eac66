package fanout

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

// ErrRegionDisabled classifies an error from a region that is not enabled
// for the account: AWS answers such calls as if the credentials were bad
// (EC2 AuthFailure, STS InvalidClientTokenId, UnrecognizedClientException
// from JSON services, S3 InvalidAccessKeyId or, with a session token,
// InvalidToken, OptInRequired). errors.Is finds it through an item's
// error; errors.As still reaches the smithy.APIError.
//
// The same codes also answer credentials AWS does not accept. Classify
// cannot tell them apart; Regions and AccountRegions can, and call a region
// disabled only once the same credentials worked in the config's own
// region (sts GetCallerIdentity): otherwise the item fails with
// ErrCredentialsRefused.
var ErrRegionDisabled = errors.New("fanout: region not enabled for this account")

// ErrThrottled classifies a throttling error that outlasted the SDK's
// retries, as the SDK's retry.DefaultThrottles recognise one (a code in
// retry.DefaultThrottleErrorCodes, or an unmodeled HTTP 429), and the SDK's
// client-side "retry quota exceeded" error.
var ErrThrottled = errors.New("fanout: throttled")

// DisabledRegionErrorCodes are the API error codes that classify as
// ErrRegionDisabled.
var DisabledRegionErrorCodes = map[string]struct{}{
	"AuthFailure":                 {},
	"InvalidClientTokenId":        {},
	"UnrecognizedClientException": {},
	"OptInRequired":               {},
	"InvalidAccessKeyId":          {}, // S3
	"InvalidToken":                {}, // S3, with a session token
}

// Classify returns err wrapped so that errors.Is finds ErrRegionDisabled or
// ErrThrottled when it is one of those, and err unchanged otherwise.
// Regions and AccountRegions classify every operation's error with it; a
// plain Fanout.Run leaves errors as the operation returned them.
func Classify(err error) error {
	if kind := kindOf(err); kind != nil {
		return &classifiedError{kind: kind, err: err}
	}
	return err
}

// isThrottle reports whether err is a throttling error, classified or not.
func isThrottle(err error) bool {
	return errors.Is(err, ErrThrottled) || kindOf(err) == ErrThrottled
}

func kindOf(err error) error {
	if err == nil || errors.Is(err, ErrRegionDisabled) || errors.Is(err, ErrThrottled) || errors.Is(err, ErrCredentialsRefused) {
		return nil // already classified
	}
	var acct *AccountError
	if errors.As(err, &acct) {
		return nil // a role that cannot be assumed is about the account, never a region
	}
	var quota ratelimit.QuotaExceededError
	if errors.As(err, &quota) {
		return ErrThrottled
	}
	if throttles.IsErrorThrottle(err) == aws.TrueTernary {
		return ErrThrottled
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return nil
	}
	if _, ok := DisabledRegionErrorCodes[apiErr.ErrorCode()]; ok {
		return ErrRegionDisabled
	}
	return nil
}

// Classified wraps op, an operation of a plain Fanout.Run over AWS calls,
// so that its error is classified as Regions classifies one: errors.Is
// finds ErrRegionDisabled or ErrThrottled, and an item that ends on its
// context while the SDK is backing off before a retry (an ItemTimeout)
// also carries the last attempt's error. The last attempt is seen through
// the retryers of a ClientPool's clients, or of AdaptiveRetryer. Use it
// where Regions and AccountRegions do not fit, such as many calls to one
// region. Unlike them, it cannot tell refused credentials from a region
// that is not enabled, which AWS answers with the same codes: both are
// ErrRegionDisabled here, as only Regions and AccountRegions check the
// credentials.
func Classified[T any](op func(ctx context.Context, key string) (T, error)) func(ctx context.Context, key string) (T, error) {
	if op == nil {
		return nil // so that Run says "nil op"
	}
	return func(ctx context.Context, key string) (T, error) {
		return watch(ctx, new(itemStats), func(ctx context.Context) (T, error) { return op(ctx, key) })
	}
}

// watch runs call with st watching its attempts, and classifies its error.
func watch[T any](ctx context.Context, st *itemStats, call func(context.Context) (T, error)) (T, error) {
	v, err := call(context.WithValue(ctx, statsKey{}, st))
	return v, Classify(st.withLastAttempt(err))
}

// throttles is the SDK's own test for a throttling error, which its
// retryers use too.
var throttles = retry.IsErrorThrottles(retry.DefaultThrottles)

type classifiedError struct{ kind, err error }

func (e *classifiedError) Error() string        { return e.kindName() + ": " + e.err.Error() }
func (e *classifiedError) Is(target error) bool { return target == e.kind }
func (e *classifiedError) Unwrap() error        { return e.err }

func (e *classifiedError) kindName() string {
	if e.kind == ErrThrottled {
		return "throttled"
	}
	return "region not enabled"
}
