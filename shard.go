package fanout

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ShardSpec is one shard of a run split across processes: the shard Index
// of Count, counted from 0. From names where it was read (ShardFromEnv),
// for logs; empty when made by hand.
type ShardSpec struct {
	Index, Count int
	From         string
}

// MaxShards bounds ShardSpec.Count: placing a group weighs every shard.
const MaxShards = 100_000

func (s ShardSpec) validate() error {
	if s.Count < 1 || s.Count > MaxShards || s.Index < 0 || s.Index >= s.Count {
		return fmt.Errorf("fanout: shard %d of %d: want a count from 1 to %d and an index from 0 to the count less 1", s.Index, s.Count, MaxShards)
	}
	return nil
}

// Shard returns the keys of shard s, in input order. scope names the
// group of a key that must stay in one shard, such as the account of an
// "account/region" key (AccountOf), so that each account's quotas are
// spent by one process and its limits stay correct; nil makes each key
// its own group.
//
// Groups are placed by rendezvous hashing: a group belongs to the shard
// with the highest hash of the group and the shard's number. Every
// process computes the same placement without talking to the others;
// the shards are disjoint, together they hold every key, and going from n
// to n+1 shards moves only the groups the new shard wins, about 1/(n+1) of
// them. A group's shard depends on the group and the count alone, never on
// the rest of the list, so shards whose lists differ (an account created
// mid-rollout) still agree, and it is the same in every version of this
// package (a test pins it). Sizes vary as a random draw's would: 1,000
// accounts on 4 shards hold 250 each, give or take 14, so the largest is
// more than 10% above the mean for about one set of accounts in seven.
//
// A key with no "/" is its own account to AccountOf; an empty key, or one
// starting with "/", has the account "", and all such keys share a shard.
func Shard(s ShardSpec, keys []string, scope func(key string) string) ([]string, error) {
	if scope == nil {
		scope = identity
	}
	return ShardItems(s, keys, scope)
}

// ShardItems is Shard for items of any type: it returns the items of
// shard s, in input order, each placed by its group, scope(item), which
// must not be nil.
func ShardItems[K any](s ShardSpec, items []K, scope func(item K) string) ([]K, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if scope == nil {
		return nil, errors.New("fanout: ShardItems: nil scope; pass the function that names an item's group, such as its account")
	}
	out := []K{}              // an empty shard is empty, not nil: nil reads as "everything" to some callers
	owner := map[string]int{} // by group: each group is placed once
	for i, item := range items {
		var group string
		if err := guard(func() { group = scope(item) }); err != nil {
			if key, ok := any(item).(string); ok {
				return nil, fmt.Errorf("fanout: Shard: the scope of key %q: %w", key, err)
			}
			return nil, fmt.Errorf("fanout: ShardItems: the scope of item %d: %w", i, err)
		}
		shard, ok := owner[group]
		if !ok {
			shard = ShardOf(group, s.Count)
			owner[group] = shard
		}
		if shard == s.Index {
			out = append(out, item)
		}
	}
	return out, nil
}

// AccountOf is the account of an "account/region" key, as AccountRegions
// names its items: the key itself when it has no "/". Give it to Shard to
// keep each account's regions in one shard.
func AccountOf(key string) string { return accountOf(key) }

// ShardAccounts returns the accounts of shard s, in input order: Shard
// with each account its own group.
func ShardAccounts(s ShardSpec, accounts []string) ([]string, error) {
	return Shard(s, accounts, nil)
}

// ShardOf returns the shard of count that group belongs to: the one with
// the highest rendezvous hash. It returns 0 for a count below 1.
func ShardOf(group string, count int) int {
	best, bestHash := 0, uint64(0)
	for i := range count {
		if h := rendezvous(group, i); i == 0 || h > bestHash {
			best, bestHash = i, h
		}
	}
	return best
}

// rendezvous hashes group and shard together: FNV-1a, then a mixer
// (splitmix64's) so that shards' hashes of one group are independent.
func rendezvous(group string, shard int) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(group); i++ {
		h = (h ^ uint64(group[i])) * prime
	}
	h = (h ^ uint64(shard+1)) * prime
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

// shardEnv is what an array-job engine sets in the environment: the
// index, the count when the engine sets one, and whether the index counts
// from 1.
type shardEnv struct {
	engine, index, count string
	fromOne              bool
}

var shardEnvs = []shardEnv{
	{"Kubernetes Indexed Job", "JOB_COMPLETION_INDEX", "", false},
	{"AWS Batch array job", "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE", false},
	{"Cloud Run job", "CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT", false},
	{"GitLab CI parallel job", "CI_NODE_INDEX", "CI_NODE_TOTAL", true},
	{"CircleCI parallel job", "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", false},
	{"Buildkite parallel job", "BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", false},
}

// ShardFromEnv reads this process's shard from the environment of the
// engine that runs it: Kubernetes Indexed Jobs (JOB_COMPLETION_INDEX),
// AWS Batch array jobs (AWS_BATCH_JOB_ARRAY_INDEX and _SIZE), Cloud Run
// jobs (CLOUD_RUN_TASK_INDEX and _COUNT), GitLab CI (CI_NODE_INDEX, from
// 1, and CI_NODE_TOTAL), CircleCI (CIRCLE_NODE_INDEX and _TOTAL) and
// Buildkite (BUILDKITE_PARALLEL_JOB and _COUNT).
//
// count is the number of shards: 0 takes the engine's; Kubernetes sets
// none (it is the Job's completions), so there it must be given. A count
// given where the engine sets another is an error, as is an environment
// with no engine's index, or the indexes of two engines: a run that
// guessed its shard would scan the wrong accounts, or all of them, and
// say nothing.
func ShardFromEnv(count int) (ShardSpec, error) {
	return shardFrom(os.LookupEnv, count)
}

func shardFrom(lookup func(string) (string, bool), count int) (ShardSpec, error) {
	if count < 0 {
		return ShardSpec{}, fmt.Errorf("fanout: ShardFromEnv(%d): want 0 (the engine's count) or the number of shards", count)
	}
	var found []ShardSpec
	var errs []error
	for _, e := range shardEnvs {
		v, ok := lookup(e.index)
		if !ok {
			continue
		}
		s, err := e.read(lookup, v, count)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		found = append(found, s)
	}
	if len(errs) > 0 {
		return ShardSpec{}, errors.Join(errs...)
	}
	switch len(found) {
	case 0:
		names := make([]string, len(shardEnvs))
		for i, e := range shardEnvs {
			names[i] = e.index
		}
		return ShardSpec{}, fmt.Errorf("fanout: ShardFromEnv: no shard index in the environment (looked for %s)", strings.Join(names, ", "))
	case 1:
		return found[0], nil
	}
	froms := make([]string, len(found))
	for i, s := range found {
		froms[i] = s.From
	}
	return ShardSpec{}, fmt.Errorf("fanout: ShardFromEnv: the environment has the shard indexes of %d engines (%s); pass the shard explicitly", len(found), strings.Join(froms, "; "))
}

// read makes the shard of one engine from its index, v, and its count.
func (e shardEnv) read(lookup func(string) (string, bool), v string, count int) (ShardSpec, error) {
	index, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return ShardSpec{}, fmt.Errorf("fanout: ShardFromEnv: %s=%q is not a number", e.index, v)
	}
	if e.fromOne {
		if index < 1 {
			return ShardSpec{}, fmt.Errorf("fanout: ShardFromEnv: %s=%q; it counts from 1", e.index, v)
		}
		index--
	}
	s := ShardSpec{Index: index, Count: count, From: fmt.Sprintf("%s (%s=%q)", e.engine, e.index, v)}
	if e.count != "" {
		if c, ok := lookup(e.count); ok {
			n, err := strconv.Atoi(strings.TrimSpace(c))
			switch {
			case err != nil:
				return ShardSpec{}, fmt.Errorf("fanout: ShardFromEnv: %s=%q is not a number", e.count, c)
			case count != 0 && n != count:
				return ShardSpec{}, fmt.Errorf("fanout: ShardFromEnv: %d shards asked for, but %s=%d", count, e.count, n)
			}
			s.Count = n
			s.From = fmt.Sprintf("%s (%s=%q, %s=%q)", e.engine, e.index, v, e.count, c)
		}
	}
	switch {
	case s.Count == 0 && e.count == "":
		return ShardSpec{}, fmt.Errorf("fanout: ShardFromEnv: the %s gives the index (%s=%q) but not the number of shards; pass it", e.engine, e.index, v)
	case s.Count == 0:
		return ShardSpec{}, fmt.Errorf("fanout: ShardFromEnv: %s is unset or 0 beside %s=%q; pass the number of shards", e.count, e.index, v)
	}
	if err := s.validate(); err != nil {
		return ShardSpec{}, fmt.Errorf("%w (from %s)", err, s.From)
	}
	return s, nil
}
