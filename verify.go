package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/awsfanout/fanout/internal/partition"
)

// ErrCredentialsRefused classifies an error that AWS answered with the
// codes of a region that is not enabled (AuthFailure, InvalidClientTokenId,
// UnrecognizedClientException) when the same credentials are refused in
// the config's own region too (for a region of another partition, in that
// partition's global region): the keys, not the region, are at fault.
// errors.As still reaches the API error.
var ErrCredentialsRefused = errors.New("fanout: credentials refused")

// verifier remembers, per account and check region (see checkRegion),
// that the account's credentials were accepted there by sts
// GetCallerIdentity. Only a success is remembered: after a failure the
// next item asks again.
type verifier struct {
	mu sync.Mutex
	ok map[string]bool
}

// confirmDisabled decides what an error classified ErrRegionDisabled from
// the item t is: a region that is not enabled when the account's
// credentials work in a region of the same partition (the config's own,
// or the partition's global region when t's region is in another), refused
// credentials when they are refused there too, and unknown otherwise. Only
// the first keeps ErrRegionDisabled.
func (p *ClientPool[C]) confirmDisabled(ctx context.Context, err error, t acctRegion) error {
	region := p.checkRegion(t.region)
	cerr := p.checkCredentials(ctx, t.account, region)
	if cerr == nil {
		return err
	}
	raw := err
	if ce, ok := err.(*classifiedError); ok {
		raw = ce.err
	}
	if kindOf(cerr) == ErrRegionDisabled {
		return &refusedError{err: raw, check: cerr, region: region}
	}
	return fmt.Errorf("%w (a region that is not enabled answers so, and so do refused credentials; checking the credentials in %s failed: %v)", raw, region, cerr)
}

// checkRegion is where credentials used in region are checked: the
// config's own region when it is of region's partition, else that
// partition's global region. Keys of one partition are refused in every
// other.
func (p *ClientPool[C]) checkRegion(region string) string {
	want, _ := partition.Of(region)
	if have, ok := partition.Of(p.base.Region); ok && have.ID == want.ID {
		return p.base.Region
	}
	return want.GlobalRegion
}

func (p *ClientPool[C]) checkCredentials(ctx context.Context, account, region string) error {
	key := account + "/" + region
	p.verified.mu.Lock()
	ok := p.verified.ok[key]
	p.verified.mu.Unlock()
	if ok {
		return nil
	}
	cfg := p.base.Copy()
	cfg.Region = region
	if account != "" {
		creds, err := p.accounts.Credentials(account)
		if err != nil {
			return err
		}
		cfg.Credentials = creds
	}
	_, tp, mp := p.tel.forClient(acctRegion{account, region})
	client := sts.NewFromConfig(cfg, func(o *sts.Options) {
		if tp != nil {
			o.TracerProvider = tp
		}
		if mp != nil {
			o.MeterProvider = mp
		}
	})
	if _, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		return err
	}
	p.verified.mu.Lock()
	defer p.verified.mu.Unlock()
	if p.verified.ok == nil {
		p.verified.ok = make(map[string]bool)
	}
	p.verified.ok[key] = true
	return nil
}

// refusedError is the error of an item whose credentials were refused.
type refusedError struct {
	err, check error
	region     string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("credentials refused (sts GetCallerIdentity in %s refused them too: %v): %v", e.region, e.check, e.err)
}
func (e *refusedError) Is(target error) bool { return target == ErrCredentialsRefused }
func (e *refusedError) Unwrap() error        { return e.err }
