package temporal

import (
	"errors"
	"slices"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ScanWorkflow scans the accounts x regions of in: it lists the accounts
// when in has none (an activity on the control queue), then runs an
// account workflow (AccountWorkflow) per account, at most
// AccountsInFlight at once, and continues as new after every
// AccountsPerRun accounts, so that its history stays bounded however
// many accounts the organization has. It returns what the scan did.
func ScanWorkflow(ctx workflow.Context, in Scan) (ScanSummary, error) {
	if in.ID == "" {
		in.ID = workflow.GetInfo(ctx).WorkflowExecution.ID // the same in every run
	}
	in.Options = in.Options.withDefaults()
	if err := in.validate(); err != nil {
		return in.Summary, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidScan", nil)
	}
	if in.Accounts == nil {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:           in.Options.ControlQueue,
			StartToCloseTimeout: in.Options.AttemptTimeout,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: in.Options.RetryInterval, MaximumAttempts: in.Options.MaxAttempts},
		})
		if err := workflow.ExecuteActivity(actx, ListAccountsActivity).Get(ctx, &in.Accounts); err != nil {
			return in.Summary, err
		}
		if in.Accounts == nil {
			in.Accounts = []string{}
		}
		if err := checkList("account", in.Accounts, accountRE); err != nil {
			return in.Summary, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidAccounts", nil)
		}
	}
	in.Summary.Runs++
	next := runAccounts(ctx, &in)
	if next < len(in.Accounts) {
		in.Next = next
		return in.Summary, workflow.NewContinueAsNewError(ctx, ScanWorkflowName, in)
	}
	return in.Summary, nil
}

// runAccounts scans in's accounts from in.Next, at most AccountsInFlight
// at once and AccountsPerRun in all, into in.Summary, and returns the
// index of the first account it left; every account it started has
// ended when it returns, since a run that continues as new must not
// leave its children behind.
func runAccounts(ctx workflow.Context, in *Scan) int {
	o := in.Options
	sel := workflow.NewSelector(ctx)
	next, started, inFlight := in.Next, 0, 0
	for {
		for inFlight < o.AccountsInFlight && next < len(in.Accounts) && started < o.AccountsPerRun {
			acct := in.Accounts[next]
			next, started, inFlight = next+1, started+1, inFlight+1
			cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
				WorkflowID:        in.ID + "/" + acct,
				TaskQueue:         o.ScanQueue,
				ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_TERMINATE,
			})
			f := workflow.ExecuteChildWorkflow(cctx, AccountWorkflowName, AccountScan{ScanID: in.ID, Account: acct, Regions: in.Regions, Options: o})
			sel.AddFuture(f, func(f workflow.Future) {
				inFlight--
				var a AccountSummary
				if err := f.Get(ctx, &a); err != nil { // the child itself failed: terminated, or timed out
					a = AccountSummary{Account: acct, Lost: slices.Clone(in.Regions), Err: err.Error()}
				}
				in.Summary.add(o, a)
			})
		}
		if inFlight == 0 {
			return next
		}
		sel.Select(ctx)
	}
}

// AccountWorkflow scans one account's regions: one activity, on the scan
// queue, with the account as its fairness key, retried up to
// MaxAttempts times; each attempt takes up where the last heartbeat of
// the one before left it. It returns what was delivered, and, when the
// last attempt failed, the regions failed and lost as that attempt's
// progress tells: the details of its error, or its last heartbeat when
// it timed out.
func AccountWorkflow(ctx workflow.Context, in AccountScan) (AccountSummary, error) {
	o := in.Options
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           o.ScanQueue,
		StartToCloseTimeout: o.AttemptTimeout,
		HeartbeatTimeout:    o.HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: o.RetryInterval,
			MaximumAttempts: o.MaxAttempts,
		},
		Priority: temporal.Priority{FairnessKey: in.Account},
	})
	var a AccountSummary
	err := workflow.ExecuteActivity(actx, ScanAccountActivity, in).Get(ctx, &a)
	if err == nil {
		return a, nil
	}
	// The last attempt failed. Its progress says which regions it, or
	// one before it, delivered: the error's details when the activity
	// returned the error, the last heartbeat when it timed out. An
	// error the server made (a heartbeat above its blob size limit) has
	// neither: every region is lost.
	return accountFailed(in, err, lastProgress(err)), nil
}

// lastProgress returns the progress that err, a failed attempt, carries.
func lastProgress(err error) progressHead {
	var p progressHead
	var te *temporal.TimeoutError
	var app *temporal.ApplicationError
	switch {
	case errors.As(err, &te) && te.HasLastHeartbeatDetails():
		_ = te.LastHeartbeatDetails(&p)
	case errors.As(err, &app) && app.HasDetails():
		_ = app.Details(&p)
	}
	return p
}

// accountFailed is the summary of the account of in, whose last attempt
// failed with err and progress p.
func accountFailed(in AccountScan, err error, p progressHead) AccountSummary {
	a := AccountSummary{Account: in.Account, Failed: map[string]string{}, Refused: map[string]string{}}
	for _, region := range in.Regions {
		switch r := p.Regions[region]; {
		case r.Done && r.Err != "":
			a.Failed[region] = r.Err
		case r.Done:
			a.Delivered = append(a.Delivered, region)
		case r.Refused != "":
			a.Refused[region] = r.Refused
		default:
			a.Lost = append(a.Lost, region)
		}
	}
	if len(a.Lost) > 0 {
		a.Err = err.Error()
	}
	return a
}

// progressHead is Progress without the items, which the workflow need
// not know the type of.
type progressHead struct {
	Regions map[string]regionHead
}

// regionHead is RegionProgress without the items.
type regionHead struct {
	Done         bool
	Err, Refused string
}
