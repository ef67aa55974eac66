package fanout

import (
	"context"
	"errors"
	"fmt"

	"github.com/awsfanout/fanout/internal/partition"
)

var errNilPool = errors.New("fanout: nil *ClientPool")

// GlobalRegion returns the region in which the pool's partition serves
// its global services (IAM, Organizations, Route 53, CloudFront, ...):
// us-east-1 in aws, cn-northwest-1 in aws-cn, us-gov-west-1 in aws-us-gov,
// and so on for every partition the SDK knows. The partition is that of
// the pool's config's region. A client in that region reaches the
// service's global endpoint, which the SDK resolves with the signing
// region the partition requires (cn-north-1 for IAM in aws-cn).
func (p *ClientPool[C]) GlobalRegion() (string, error) {
	if p == nil {
		return "", errNilPool
	}
	part, ok := partition.Of(p.base.Region)
	if !ok {
		return "", fmt.Errorf("fanout: the pool's config region %q is not an AWS region name; it names the partition of the global services", p.base.Region)
	}
	return part.GlobalRegion, nil
}

// Global runs op once per account against a global service, each with the
// pool's client for that account in the partition's GlobalRegion, through
// f, as AccountRegions does over that one region: results in the order of
// accounts, their Key "account/region", their Account set. With no
// accounts (nil), it runs op once, for the pool's own account.
func Global[C, T any](ctx context.Context, f *Fanout[T], pool *ClientPool[C], accounts []string,
	op func(ctx context.Context, client C, account string) (T, error), optFns ...func(*RegionOptions)) (RegionResults[T], error) {
	region, err := pool.GlobalRegion()
	if err != nil {
		return nil, err
	}
	if op == nil {
		return nil, errors.New("fanout: Global: nil op")
	}
	if accounts == nil {
		return Regions(ctx, f, pool, []string{region}, func(ctx context.Context, c C, _ string) (T, error) {
			return op(ctx, c, "")
		}, optFns...)
	}
	return AccountRegions(ctx, f, pool, accounts, []string{region}, func(ctx context.Context, c C, account, _ string) (T, error) {
		return op(ctx, c, account)
	}, optFns...)
}
