package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSimulatedS3(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"-objects", "1500", "-limit", "32"}, &out, &errb)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	m := regexp.MustCompile(`^objects=1500 bytes=(\d+) copied=1500 deleted=1500 failed=0 elapsed=\d+\.\d{3}s$`).FindStringSubmatch(last)
	if code != 0 || m == nil {
		t.Fatalf("exit %d, last line %q\n%s\nstderr: %s", code, last, out.String(), errb.String())
	}
	if !strings.HasPrefix(lines[0], "simulated S3") {
		t.Errorf("first line %q", lines[0])
	}
	for _, want := range []string{"put     1500 objects", "head    1500 objects", "copy    1500 objects", "delete     2 batches"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
	// The same seed gives the same sizes: the bytes HeadObject saw are
	// the bytes put.
	var again bytes.Buffer
	run(context.Background(), []string{"-objects", "1500"}, &again, &errb)
	if !strings.Contains(again.String(), "bytes="+m[1]+" ") {
		t.Errorf("a second run with the same seed saw other sizes: %s", again.String())
	}
}

func TestBadRegion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-region", "moon-1"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), `s3-bulk: fanout: "moon-1" is not an AWS region name`) {
		t.Errorf("exit %d, stderr %q; want 1 and the region named", code, errb.String())
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-objects", "0"}, {"-limit", "8"}, {"-aws", "-endpoint", "http://x"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, errb.String())
		}
	}
}
