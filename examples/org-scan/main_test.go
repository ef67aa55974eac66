package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/awsfanout/fanout/internal/mototest"
)

func TestMain(m *testing.M) { mototest.Main(m) }

func TestScanMoto(t *testing.T) {
	srv := mototest.Require(t)
	if err := srv.Reset(); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"-endpoint", srv.URL, "-setup", "3", "-regions", "eu-west-1,us-east-2,ap-south-1", "-accounts-in-flight", "2"}, &out, &errb)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	// 4 accounts (the management account and 3 new ones) x 3 regions; the
	// i-th new account has i+1 instances in each of the first two regions
	// in sorted order (ap-south-1, eu-west-1): 2 x (1+2+3).
	if code != 0 || !regexp.MustCompile(`^accounts=4 regions=3 instances=12 failed=0 elapsed=\d+\.\d{3}s$`).MatchString(last) {
		t.Fatalf("exit %d, last line %q\n%s\nstderr: %s", code, last, out.String(), errb.String())
	}
	if lines[0] != "emulator: "+srv.URL || len(lines) != 1+1+12+1 {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestNeedsATarget(t *testing.T) {
	for _, args := range [][]string{{}, {"-aws", "-setup", "2"}, {"-endpoint", "http://x", "-concurrency", "0"}, {"-endpoint", "http://x", "-role", ""}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, errb.String())
		}
	}
}
