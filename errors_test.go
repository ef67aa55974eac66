package fanout_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/awsfanout/fanout"
)

func TestErrorTypes(t *testing.T) {
	t.Parallel()
	ie := &fanout.ItemError{Index: 3, Key: "eu-west-1", Err: io.EOF}
	if ie.Error() != `fanout: item 3 "eu-west-1": EOF` || !errors.Is(ie, io.EOF) {
		t.Errorf("ItemError: %q", ie.Error())
	}
	pe := &fanout.PanicError{Value: io.ErrUnexpectedEOF}
	if pe.Error() != "panic: unexpected EOF" || !errors.Is(pe, io.ErrUnexpectedEOF) {
		t.Errorf("PanicError of an error: %q", pe.Error())
	}
	if (&fanout.PanicError{Value: 42}).Unwrap() != nil {
		t.Error("PanicError of a non-error unwraps to something")
	}
	// Skip(nil) still skips, with a reason that says so.
	res, err := fanout.New[int]().Run(context.Background(), []string{"a"}, func(context.Context, string) (int, error) {
		return 7, fanout.Skip(nil)
	})
	if err != nil || res[0].Skipped == nil || res[0].Value != 0 || res[0].Err != nil {
		t.Errorf("Skip(nil): %+v, %v; want skipped, no value, no error", res[0], err)
	}
	// A wrapped Skip is a Skip.
	res, _ = fanout.New[int]().Run(context.Background(), []string{"a"}, func(context.Context, string) (int, error) {
		return 0, errors.Join(io.EOF, fanout.Skip(io.ErrClosedPipe))
	})
	if !errors.Is(res[0].Skipped, io.ErrClosedPipe) {
		t.Errorf("a wrapped Skip: %+v", res[0])
	}
	// Not started names itself and its cause.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, _ = fanout.New[int]().Run(ctx, []string{"a"}, func(context.Context, string) (int, error) { return 1, nil })
	if !errors.Is(res[0].Err, fanout.ErrNotStarted) || !errors.Is(res[0].Err, context.Canceled) ||
		res[0].Err.Error() != `fanout: item 0 "a": not started: context canceled` {
		t.Errorf("not started: %v", res[0].Err)
	}
}
