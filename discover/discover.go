// Package discover finds what a fan-out runs over: the regions an account
// has enabled (ec2 DescribeRegions) and the accounts of an organization,
// all of them or those of some OUs (Organizations).
//
// Both calls end: when their ctx has no deadline, they give up after
// [DefaultTimeout], so that an endpoint that stalls cannot hang a program
// that set none.
//
// It is the only package of the library that imports the EC2 and
// Organizations clients, which are large to compile: a program that fans
// out over a fixed list, or over another service, imports the root
// package alone and never builds them.
package discover

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultTimeout bounds EnabledRegions and OrganizationAccounts when their
// ctx has no deadline; a ctx with a deadline of its own is used as it is.
// Five minutes is far above what either takes when AWS answers (one
// DescribeRegions; ListAccounts at 20 accounts a page, throttled retries
// included, for an organization of thousands of accounts), and short
// enough that a stalled endpoint fails the program rather than hang it.
const DefaultTimeout = 5 * time.Minute

// timeout is DefaultTimeout, shortened by tests.
var timeout = DefaultTimeout

// bounded returns ctx with a deadline DefaultTimeout away when it has
// none, whose cause names the timeout.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, timeout, &timeoutError{timeout})
}

// timeoutError is the cause of a call that bounded's deadline ended; the
// call's error names the call before it.
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string {
	return fmt.Sprintf("no answer within %v (DefaultTimeout, as ctx has no deadline; give ctx one to choose another)", e.after)
}

// timedOut puts bounded's timeout in front of err when that is what ended
// ctx, so that the error says which bound ended the call.
func timedOut(ctx context.Context, err error) error {
	var te *timeoutError
	if errors.As(context.Cause(ctx), &te) {
		return fmt.Errorf("%w: %w", te, err)
	}
	return err
}
