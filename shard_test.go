package fanout_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/awsfanout/fanout"
)

// orgKeys is an organization of n accounts, as "account/region" keys over
// 17 regions each.
func orgKeys(n int) (accounts, keys []string) {
	regions := []string{"us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-west-2", "eu-west-3",
		"eu-central-1", "eu-north-1", "ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
		"ap-southeast-1", "ap-southeast-2", "ca-central-1", "sa-east-1"}
	for i := range n {
		acct := fmt.Sprintf("%012d", 100000000000+int64(i)*7919)
		accounts = append(accounts, acct)
		for _, r := range regions {
			keys = append(keys, acct+"/"+r)
		}
	}
	return accounts, keys
}

// TestShardSplitsAccounts: 4 shards over 1,000 accounts x 17 regions are
// disjoint and complete, keep each account whole, and the largest is
// within 10% of the mean.
func TestShardSplitsAccounts(t *testing.T) {
	t.Parallel()
	_, keys := orgKeys(1000)
	pos := map[string]int{}
	for i, k := range keys {
		pos[k] = i
	}
	seen := map[string]int{}
	shardOf := map[string]int{} // by account
	largest := 0
	for i := range 4 {
		got, err := fanout.Shard(fanout.ShardSpec{Index: i, Count: 4}, keys, fanout.AccountOf)
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, len(got))
		if !slices.IsSortedFunc(got, func(a, b string) int { return pos[a] - pos[b] }) {
			t.Errorf("shard %d: not in input order", i)
		}
		for _, k := range got {
			seen[k]++
			acct := fanout.AccountOf(k)
			if s, ok := shardOf[acct]; ok && s != i {
				t.Fatalf("account %s is in shards %d and %d", acct, s, i)
			}
			shardOf[acct] = i
		}
	}
	for _, k := range keys {
		if seen[k] != 1 {
			t.Fatalf("%s is in %d shards", k, seen[k])
		}
	}
	mean := float64(len(keys)) / 4
	if float64(largest) > 1.1*mean {
		t.Errorf("the largest shard has %d keys, %.1f%% above the mean %.0f", largest, 100*(float64(largest)/mean-1), mean)
	}
	t.Logf("largest shard: %d keys, mean %.0f (%.1f%% above)", largest, mean, 100*(float64(largest)/mean-1))
}

// TestShardGrowsSmoothly: going from 4 shards to 5 moves at most 25% of
// the accounts, and only to the new shard.
func TestShardGrowsSmoothly(t *testing.T) {
	t.Parallel()
	accounts, _ := orgKeys(1000)
	moved := 0
	for _, a := range accounts {
		before, after := fanout.ShardOf(a, 4), fanout.ShardOf(a, 5)
		if before != after {
			moved++
			if after != 4 {
				t.Fatalf("account %s moved from shard %d to %d, not to the new one", a, before, after)
			}
		}
	}
	if moved > len(accounts)/4 || moved == 0 {
		t.Errorf("%d of %d accounts moved from 4 shards to 5; want some, at most 25%%", moved, len(accounts))
	}
	t.Logf("4 to 5 shards: %d of %d accounts moved (%.1f%%)", moved, len(accounts), 100*float64(moved)/float64(len(accounts)))
}

func TestShardBadInput(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		s    fanout.ShardSpec
		want string
	}{
		"no shards":      {fanout.ShardSpec{Index: 0, Count: 0}, "fanout: shard 0 of 0"},
		"index too high": {fanout.ShardSpec{Index: 4, Count: 4}, "fanout: shard 4 of 4"},
		"negative index": {fanout.ShardSpec{Index: -1, Count: 4}, "fanout: shard -1 of 4"},
	} {
		if _, err := fanout.Shard(tc.s, []string{"a"}, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err := fanout.Shard(fanout.ShardSpec{Count: 2}, []string{"a", "b"}, func(k string) string {
		if k == "b" {
			panic("no scope for b")
		}
		return k
	})
	if err == nil || !strings.Contains(err.Error(), `the scope of key "b"`) {
		t.Errorf("a panicking scope: %v", err)
	}
	if got, _ := fanout.ShardAccounts(fanout.ShardSpec{Count: 1}, []string{"1", "2"}); len(got) != 2 {
		t.Errorf("one shard holds %v", got)
	}
}

func TestShardFromEnv(t *testing.T) {
	for name, tc := range map[string]struct {
		env   map[string]string
		count int
		want  fanout.ShardSpec
		err   string
	}{
		"Kubernetes":             {env: map[string]string{"JOB_COMPLETION_INDEX": "3"}, count: 8, want: fanout.ShardSpec{Index: 3, Count: 8}},
		"Kubernetes, no count":   {env: map[string]string{"JOB_COMPLETION_INDEX": "3"}, err: `gives the index (JOB_COMPLETION_INDEX="3") but not the number of shards`},
		"AWS Batch":              {env: map[string]string{"AWS_BATCH_JOB_ARRAY_INDEX": "2", "AWS_BATCH_JOB_ARRAY_SIZE": "10"}, want: fanout.ShardSpec{Index: 2, Count: 10}},
		"AWS Batch, other count": {env: map[string]string{"AWS_BATCH_JOB_ARRAY_INDEX": "2", "AWS_BATCH_JOB_ARRAY_SIZE": "10"}, count: 5, err: "5 shards asked for, but AWS_BATCH_JOB_ARRAY_SIZE=10"},
		"GitLab counts from 1":   {env: map[string]string{"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "3"}, want: fanout.ShardSpec{Index: 0, Count: 3}},
		"GitLab index 0":         {env: map[string]string{"CI_NODE_INDEX": "0", "CI_NODE_TOTAL": "3"}, err: `CI_NODE_INDEX="0"; it counts from 1`},
		"AWS Batch, size 0":      {env: map[string]string{"AWS_BATCH_JOB_ARRAY_INDEX": "0", "AWS_BATCH_JOB_ARRAY_SIZE": "0"}, err: "AWS_BATCH_JOB_ARRAY_SIZE is unset or 0"},
		"Cloud Run":              {env: map[string]string{"CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_COUNT": "2"}, want: fanout.ShardSpec{Index: 0, Count: 2}},
		"index out of range":     {env: map[string]string{"CIRCLE_NODE_INDEX": "4", "CIRCLE_NODE_TOTAL": "4"}, err: "shard 4 of 4"},
		"not a number":           {env: map[string]string{"BUILDKITE_PARALLEL_JOB": "x", "BUILDKITE_PARALLEL_JOB_COUNT": "4"}, err: `BUILDKITE_PARALLEL_JOB="x" is not a number`},
		"no engine":              {env: map[string]string{}, count: 4, err: "no shard index in the environment (looked for JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX"},
		"two engines":            {env: map[string]string{"JOB_COMPLETION_INDEX": "1", "CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "4"}, count: 4, err: "the shard indexes of 2 engines"},
		"negative count":         {env: map[string]string{"JOB_COMPLETION_INDEX": "1"}, count: -1, err: "ShardFromEnv(-1)"},
	} {
		t.Run(name, func(t *testing.T) {
			for _, v := range []string{"JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE", "CLOUD_RUN_TASK_INDEX",
				"CLOUD_RUN_TASK_COUNT", "CI_NODE_INDEX", "CI_NODE_TOTAL", "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL",
				"BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT"} {
				t.Setenv(v, "")
				unsetenv(t, v)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got, err := fanout.ShardFromEnv(tc.count)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got.Index != tc.want.Index || got.Count != tc.want.Count || got.From == "" {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// unsetenv removes k for the rest of the test; t.Setenv before it restores
// k's value after.
func unsetenv(t *testing.T, k string) {
	t.Helper()
	if err := os.Unsetenv(k); err != nil {
		t.Fatal(err)
	}
}

// TestShardItems: typed items shard by their group as keys do, and a nil
// scope is an error, not a shard of everything.
func TestShardItems(t *testing.T) {
	t.Parallel()
	type target struct{ Account, Region string }
	_, keys := orgKeys(50)
	items := make([]target, len(keys))
	for i, k := range keys {
		a, r, _ := strings.Cut(k, "/")
		items[i] = target{a, r}
	}
	for i := range 3 {
		s := fanout.ShardSpec{Index: i, Count: 3}
		byKey, _ := fanout.Shard(s, keys, fanout.AccountOf)
		byItem, err := fanout.ShardItems(s, items, func(t target) string { return t.Account })
		if err != nil || len(byItem) != len(byKey) {
			t.Fatalf("shard %d: %d items, %d keys, %v", i, len(byItem), len(byKey), err)
		}
		for j, it := range byItem {
			if it.Account+"/"+it.Region != byKey[j] {
				t.Fatalf("shard %d: item %d is %v, key %s", i, j, it, byKey[j])
			}
		}
	}
	if _, err := fanout.ShardItems(fanout.ShardSpec{Count: 2}, items, nil); err == nil || !strings.Contains(err.Error(), "nil scope") {
		t.Errorf("nil scope: %v", err)
	}
}

// TestShardPlacementIsPinned: a group's shard is a contract between the
// processes of one run, which may run different versions of this package
// during a rollout: it must never change.
func TestShardPlacementIsPinned(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		group string
		count int
		want  int
	}{
		{"111111111111", 1, 0},
		{"111111111111", 2, 1},
		{"111111111111", 4, 2},
		{"111111111111", 5, 2},
		{"111111111111", 17, 6},
		{"111111111111", 1000, 914},
		{"123456789012", 1, 0},
		{"123456789012", 2, 0},
		{"123456789012", 4, 0},
		{"123456789012", 5, 0},
		{"123456789012", 17, 0},
		{"123456789012", 1000, 634},
		{"999999999999", 1, 0},
		{"999999999999", 2, 0},
		{"999999999999", 4, 0},
		{"999999999999", 5, 0},
		{"999999999999", 17, 9},
		{"999999999999", 1000, 989},
		{"000000000001", 1, 0},
		{"000000000001", 2, 1},
		{"000000000001", 4, 3},
		{"000000000001", 5, 3},
		{"000000000001", 17, 3},
		{"000000000001", 1000, 3},
		{"", 1, 0},
		{"", 2, 0},
		{"", 4, 0},
		{"", 5, 0},
		{"", 17, 13},
		{"", 1000, 741},
		{"eu-west-1", 1, 0},
		{"eu-west-1", 2, 0},
		{"eu-west-1", 4, 3},
		{"eu-west-1", 5, 3},
		{"eu-west-1", 17, 8},
		{"eu-west-1", 1000, 373},
	} {
		if got := fanout.ShardOf(tc.group, tc.count); got != tc.want {
			t.Errorf("ShardOf(%q, %d) = %d; it was %d", tc.group, tc.count, got, tc.want)
		}
	}
}

func TestShardEdges(t *testing.T) {
	t.Parallel()
	if got, err := fanout.ShardAccounts(fanout.ShardSpec{Index: 0, Count: 4}, []string{"111111111111"}); err != nil || got == nil || len(got) > 1 {
		t.Errorf("a shard of one account: %#v, %v; want a non-nil slice", got, err)
	}
	if _, err := fanout.Shard(fanout.ShardSpec{Index: 0, Count: fanout.MaxShards + 1}, []string{"a"}, nil); err == nil {
		t.Error("a count above MaxShards is accepted")
	}
}
