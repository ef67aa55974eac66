package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/awsfanout/fanout"
)

// progress reports finished regions on stderr: a live bar on a terminal,
// a line per region otherwise. OnDone calls done one at a time, so it
// needs no lock.
type progress struct {
	w     io.Writer
	total int
	tty   bool
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) done(pr fanout.Progress) {
	if !p.tty {
		status := "ok"
		if pr.Err != nil {
			status = "failed"
		}
		fmt.Fprintf(p.w, "[%d/%d] %s %s in %.3fs\n", pr.Done, pr.Total, pr.Key, status, pr.Elapsed.Seconds())
		return
	}
	const width = 30
	filled := width * pr.Done / max(pr.Total, 1)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d regions, %d failed", strings.Repeat("#", filled), strings.Repeat(".", width-filled), pr.Done, pr.Total, pr.Failed)
}

func (p *progress) finish() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
