package fanout_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/awsfanout/fanout"
)

func TestResults(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	gone := errors.New("gone")
	rs := fanout.Results[int]{
		{Index: 0, Key: "a", Value: 1},
		{Index: 1, Key: "b", Err: &fanout.ItemError{Index: 1, Key: "b", Err: boom}},
		{Index: 2, Key: "c", Skipped: gone},
		{Index: 3, Key: "d", Value: 4},
	}
	if got := rs.Values(); !slices.Equal(got, []int{1, 4}) {
		t.Errorf("Values %v; want [1 4]: the skipped and failed items have none", got)
	}
	if f := rs.Failed(); len(f) != 1 || f[0].Key != "b" {
		t.Errorf("Failed %+v", f)
	}
	if s := rs.Skipped(); len(s) != 1 || s[0].Key != "c" {
		t.Errorf("Skipped %+v", s)
	}
	if err := rs.Err(); !errors.Is(err, boom) || errors.Is(err, gone) {
		t.Errorf("Err %v; want the failure joined, and not the skip", err)
	}
	if !rs[0].OK() || rs[1].OK() || rs[2].OK() {
		t.Error("OK: want true only for an item with neither an error nor a skip")
	}
	if rs[:1].Err() != nil || fanout.Results[int](nil).Err() != nil || len(fanout.Results[int](nil).Values()) != 0 {
		t.Error("no failure, no error")
	}
}
