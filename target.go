package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// RegionOptions configures one call of Regions or AccountRegions: the
// engine's Options for the call, starting from the Fanout's, and what the
// AWS layer adds to them.
type RegionOptions struct {
	Options

	// SkipDisabled reports an item whose error is ErrRegionDisabled as
	// skipped (Result.Skipped) rather than failed.
	SkipDisabled bool

	// RegionsOf, when not nil, gives each account of AccountRegions its
	// own regions, since accounts opt into regions one by one:
	// AccountRegions asks it once per account, with cfg the pool's config
	// in that account (its credentials, as ClientPool.AccountConfig gives
	// them), and runs the account's items over the regions it returns,
	// kept to those of AccountRegions' regions unless that list is nil.
	// An account whose regions it could not give has one result, with
	// the error and no region. discover.EnabledRegionsOf is one.
	RegionsOf func(ctx context.Context, account string, cfg aws.Config) ([]string, error)
}

// RegionResult is the outcome of one item of Regions or AccountRegions:
// the engine's Result, whose Key is the region (Regions) or
// "account/region" (AccountRegions), and what the AWS layer knows of it.
type RegionResult[T any] struct {
	Result[T]
	Account string // the account; "" for the pool's own (Regions)
	Region  string // the region

	// Throttles counts the item's throttled attempts, retried or not,
	// when the pool's clients are adaptive (the default).
	Throttles int
}

// RegionResults holds one RegionResult per item, in input order.
type RegionResults[T any] []RegionResult[T]

// Results returns the engine's Results of rs, in the same order.
func (rs RegionResults[T]) Results() Results[T] {
	out := make(Results[T], len(rs))
	for i, r := range rs {
		out[i] = r.Result
	}
	return out
}

// Values returns the values of the items that succeeded, in input order.
func (rs RegionResults[T]) Values() []T { return values(rs, regionResult[T]) }

// Err joins the items' errors, as Results.Err does.
func (rs RegionResults[T]) Err() error { return joinErrs(rs, regionResult[T]) }

// Failed returns the results that carry an error, in input order.
func (rs RegionResults[T]) Failed() RegionResults[T] { return filter(rs, regionResult[T], failed[T]) }

// Skipped returns the results that were skipped, in input order.
func (rs RegionResults[T]) Skipped() RegionResults[T] { return filter(rs, regionResult[T], skipped[T]) }

func regionResult[T any](r *RegionResult[T]) *Result[T] { return &r.Result }

// regionOptions applies optFns to the Fanout's options, for one call of
// Regions or AccountRegions; scope, when not nil, is the Scope of the
// items, which optFns may not replace.
func regionOptions[T any](f *Fanout[T], scope func(key string) string, optFns []func(*RegionOptions)) (RegionOptions, error) {
	ro := RegionOptions{Options: f.options()}
	if scope != nil {
		ro.Scope = nil
	}
	if err := apply("RegionOptions", &ro, optFns); err != nil {
		return ro, err
	}
	if scope != nil {
		if ro.Scope != nil {
			return ro, errors.New("fanout: AccountRegions sets Options.Scope to the account itself; leave it unset")
		}
		ro.Scope = scope
	} else if ro.RegionsOf != nil {
		return ro, errors.New("fanout: RegionOptions.RegionsOf is for AccountRegions; Regions runs over the regions it is given")
	}
	return ro, nil
}

// runTargets is the seam between the AWS layer and the engine: it runs
// call once per target through f.Run, under keys (one per target,
// unique), with the options ro, wrapping each call so that the adaptive
// retryer can count its throttled attempts, its error is classified, a
// region is called disabled only once confirm says so, and a disabled
// region is skipped when asked.
//
// The call's telemetry is its options', or else the pool's, pt; each item
// is labelled with its region and account, and the pool's Logger hears
// of an item throttled past its retries, an account denied and a call
// whose every region answered as not enabled.
func runTargets[T any](ctx context.Context, f *Fanout[T], targets []acctRegion, keys []string,
	call func(context.Context, acctRegion) (T, error), confirm func(context.Context, error, acctRegion) error,
	ro RegionOptions, pt *poolTel) (RegionResults[T], error) {
	ro.Options = pt.defaults(ro.Options)
	warnings := &warner{logger: ro.Logger}
	index := make(map[string]int, len(keys))
	for i, key := range keys {
		index[key] = i
	}
	watched := make([]watchedCtx, len(targets))
	op := func(ctx context.Context, key string) (T, error) {
		i := index[key]
		w := &watched[i]
		w.Context = ctx
		v, err := call(w, targets[i])
		if targets[i].region == "" { // an account whose regions could not be had: about the account, never a region
			return v, err
		}
		err = Classify(w.v.withLastAttempt(err)) // as watch does
		warnings.item(ctx, targets[i], err, w.v.throttleCount())
		if !errors.Is(err, ErrRegionDisabled) {
			return v, err
		}
		if err = confirm(ctx, err, targets[i]); ro.SkipDisabled && errors.Is(err, ErrRegionDisabled) {
			return v, Skip(err)
		}
		return v, err
	}
	accountMetric := pt != nil && pt.accountMetric
	lb := func(i int) labels {
		return labels{region: targets[i].region, account: targets[i].account, accountMetric: accountMetric}
	}
	results, err := f.run(ctx, keys, op, []func(*Options){func(o *Options) { *o = ro.Options }}, lb)
	if results == nil {
		return nil, err
	}
	out := make(RegionResults[T], len(results))
	disabled := 0
	for i, r := range results {
		out[i] = RegionResult[T]{Result: r, Account: targets[i].account, Region: targets[i].region, Throttles: watched[i].v.throttleCount()}
		if isSafely(r.Err, ErrRegionDisabled) || isSafely(r.Skipped, ErrRegionDisabled) {
			disabled++
		}
	}
	if disabled > 0 && disabled == len(out) {
		all := fmt.Errorf("fanout: every region answered as not enabled for the account (%d of %d): check the region list", disabled, len(out))
		warn(ro.Logger, ctx, all.Error())
		err = errors.Join(all, err)
	}
	return out, err
}

// warner tells a call's Logger, at Warn, what its user must hear of its
// items: an account denied (once per account), an item throttled past
// its retries, every region not enabled. A panic in the Logger is
// dropped: the items' results say it all.
type warner struct {
	logger *slog.Logger // nil: silent
	denied sync.Map     // accounts already told of
}

func (w *warner) item(ctx context.Context, t acctRegion, err error, throttles int) {
	if w.logger == nil || err == nil {
		return
	}
	var ae *AccountError
	switch {
	case isSafely(err, ErrThrottled):
		attrs := []slog.Attr{slog.String("region", t.region), slog.Int("throttles", throttles)}
		if t.account != "" {
			attrs = append(attrs, slog.String("account", t.account))
		}
		warn(w.logger, ctx, "fanout: throttled past the retries: lower the Limit, or allow more attempts (PoolOptions.Retryer)", attrs...)
	case asSafely(err, &ae):
		if _, told := w.denied.LoadOrStore(ae.Account, true); !told {
			warn(w.logger, ctx, "fanout: account denied: its items fail", slog.String("account", ae.Account),
				slog.String("role", ae.RoleARN), slog.String("error", ae.Err.Error()))
		}
	}
}

// asSafely is errors.As, as isSafely is errors.Is.
func asSafely(err error, target any) (as bool) {
	defer func() { _ = recover() }()
	return errors.As(err, target)
}

// watchedCtx is an item's context with its itemStats, where the adaptive
// retryer looks for them (statsKey), made for every target at once with
// the call, not one (and a closure to call through) per item. Each target
// is one item, so its Context is set once.
type watchedCtx = valueCtx[statsKey, itemStats]

// isSafely is errors.Is for an error that may hold a value of the
// caller's whose methods panic (a panic(err) of a typed nil, say): such an
// error is not target.
func isSafely(err, target error) (is bool) {
	defer func() { _ = recover() }()
	return errors.Is(err, target)
}
