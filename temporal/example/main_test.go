package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestExample runs the example offline: an in-process server, the
// simulated organization (5 members and its management account), 2
// regions.
func TestExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, []string{"-fake", "-accounts", "5", "-regions", "us-east-1,eu-west-1", "-scan", "t"}, &out); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(out.String(), `"Instances":7`); lines != 12 {
		t.Errorf("%d account-regions with 7 instances; want 12:\n%s", lines, out.String())
	}
	if !strings.Contains(out.String(), "scan t: 6 accounts, 12 account-regions delivered, 0 failed, 1 runs") {
		t.Errorf("no summary line:\n%s", out.String())
	}
}

func TestExampleRefuses(t *testing.T) {
	for _, args := range [][]string{{"-role", "worker"}, {"-fake", "-temporal", "x:1", "-role", "start"}, {"-role", "nope"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("run %q: no error", args)
		}
	}
}
