// Command bench runs the benchmark scenarios against fanouttest's
// simulated AWS, with each implementation side by side, and prints a
// table, or with -json one JSON object per line.
//
//	go run ./bench                      # every scenario, about two minutes on 2 cores
//	go run ./bench -scenario throttle   # one
//	go run ./bench -json
//	go run ./bench -chart docs/concurrency.svg
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/awsfanout/fanout/internal/scenario"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("scenario", "", "run one scenario: "+strings.Join(scenario.Names, ", ")+" (default: all)")
	impls := fs.String("impl", "", "run only these implementations, comma-separated: "+strings.Join(scenario.Impls, ", "))
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	items := fs.Int("items", scenario.Default.Items, "calls in the items scenario")
	chart := fs.String("chart", "", "write an SVG chart of wall time against concurrency to this file, and run nothing else")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	names := scenario.Names
	if *name != "" {
		if !slices.Contains(scenario.Names, *name) {
			fmt.Fprintf(stderr, "bench: unknown scenario %q; want one of %s\n", *name, strings.Join(scenario.Names, ", "))
			return 2
		}
		names = []string{*name}
	}
	which := scenario.Impls
	if *impls != "" {
		which = strings.Split(*impls, ",")
		for _, impl := range which {
			if !slices.Contains(scenario.Impls, impl) {
				fmt.Fprintf(stderr, "bench: unknown implementation %q; want some of %s\n", impl, strings.Join(scenario.Impls, ", "))
				return 2
			}
		}
	}
	ctx := context.Background()
	if *chart != "" {
		if err := writeChart(ctx, *chart, which); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		return 0
	}
	p := scenario.Default
	p.Items = *items
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if !*asJSON {
		fmt.Fprintf(stdout, "# %d CPUs, %s, %s/%s\n", runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		fmt.Fprintln(tw, "scenario\timpl\titems\tfailed\twall_s\tideal_s\tx ideal\tcpu_s\tconns\tthrottled/requests\tpeak_heap_mb\t")
	}
	var notes []string
	for _, n := range names {
		for _, impl := range which {
			o, err := scenario.Run(ctx, n, impl, p)
			if errors.Is(err, scenario.ErrSkipped) {
				continue
			}
			if err != nil {
				fmt.Fprintf(stderr, "bench: %s/%s: %v\n", n, impl, err)
				return 1
			}
			if *asJSON {
				b, _ := json.Marshal(o)
				fmt.Fprintln(stdout, string(b))
				continue
			}
			fmt.Fprintf(stderr, "bench: %s/%s done in %.1fs\n", o.Scenario, o.Impl, o.WallS)
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.3f\t%.3f\t%s\t%.2f\t%d\t%s\t%.1f\t\n", o.Scenario, o.Impl, o.Items, o.Failed,
				o.WallS, o.IdealS, ratio(o.WallS, o.IdealS), o.CPUS, o.Conns, throttled(o), o.PeakHeapMB)
			if note := afterKill(o); note != "" {
				notes = append(notes, note)
			}
		}
	}
	tw.Flush()
	for _, note := range notes {
		fmt.Fprintln(stdout, note)
	}
	return 0
}

// afterKill says how long the calls left took to end once the endpoint
// went away, for the scenarios that kill it.
func afterKill(o scenario.Outcome) string {
	if o.KilledAtS == 0 {
		return ""
	}
	return fmt.Sprintf("%s %s: endpoint killed %.3fs in; the %d calls that ended after it took %.3fs to end", o.Scenario, o.Impl, o.KilledAtS, o.AfterKill, o.AfterKillS)
}

func throttled(o scenario.Outcome) string {
	if o.Requests == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d (%.1f%%)", o.Throttled, o.Requests, 100*float64(o.Throttled)/float64(o.Requests))
}

func ratio(wall, ideal float64) string {
	if ideal <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", wall/ideal)
}
