package fanout

import (
	"context"
	"errors"
	"fmt"

	"github.com/awsfanout/fanout/internal/partition"
)

// Regions runs op once per region, each with the pool's client for that
// region, through f, and returns one RegionResult per region in input
// order. Errors from a region that is not enabled classify as
// ErrRegionDisabled, once the same credentials worked in the config's own
// region (one sts GetCallerIdentity, remembered by the pool), and as
// ErrCredentialsRefused when they did not; throttling classifies as
// ErrThrottled (see Classify). RegionOptions.SkipDisabled reports disabled
// regions as skipped; when every region answers as disabled, the returned
// error says so all the same. optFns start from f's Options.
//
// The region list must be non-empty, without duplicates, and hold only
// region names of the partitions the SDK knows; otherwise Regions runs
// nothing and returns an error that names the problem.
func Regions[C, T any](ctx context.Context, f *Fanout[T], pool *ClientPool[C], regions []string,
	op func(ctx context.Context, client C, region string) (T, error), optFns ...func(*RegionOptions)) (RegionResults[T], error) {
	if err := checkTargets(f, pool, op == nil); err != nil {
		return nil, err
	}
	if err := checkList("region", regions, checkRegion); err != nil {
		return nil, err
	}
	targets := make([]acctRegion, len(regions))
	for i, region := range regions {
		targets[i] = acctRegion{region: region}
	}
	call := func(ctx context.Context, t acctRegion) (T, error) {
		client, err := pool.Client("", t.region)
		if err != nil {
			var zero T
			return zero, err
		}
		return op(ctx, client, t.region)
	}
	ro, err := regionOptions(f, nil, optFns)
	if err != nil {
		return nil, err
	}
	return runTargets(ctx, f, targets, regions, call, pool.confirmDisabled, ro, pool.tel)
}

func checkRegion(region string) error {
	if _, ok := partition.Of(region); !ok {
		return fmt.Errorf("fanout: %q is not an AWS region name (like \"eu-west-1\")", region)
	}
	return nil
}

func checkTargets[C, T any](f *Fanout[T], pool *ClientPool[C], nilOp bool) error {
	switch {
	case nilOp:
		return errors.New("fanout: nil op")
	case f == nil:
		return errors.New("fanout: nil *Fanout")
	case pool == nil:
		return errNilPool
	case pool.base.Credentials == nil:
		return errors.New("fanout: the pool's aws.Config has no Credentials (load it with config.LoadDefaultConfig)")
	}
	return nil
}

// checkList rejects an empty list, a duplicate, or a malformed entry.
func checkList(what string, list []string, check func(string) error) error {
	if len(list) == 0 {
		return fmt.Errorf("fanout: the %s list is empty", what)
	}
	seen := make(map[string]bool, len(list))
	for _, s := range list {
		if err := check(s); err != nil {
			return err
		}
		if seen[s] {
			return fmt.Errorf("fanout: %s %q is listed twice", what, s)
		}
		seen[s] = true
	}
	return nil
}
