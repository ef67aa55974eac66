// Command bench runs the benchmark scenarios against fanouttest's
// simulated AWS, with each implementation side by side, and prints a
// table, or with -json one JSON object per line.
//
//	go run ./bench                      # every scenario, about five minutes on 2 cores
//	go run ./bench -scenario throttle   # one
//	go run ./bench -json
//	go run ./bench -chart docs/concurrency.svg
//	go run ./bench -scenario regimes    # the sweep of bucket rate, burst and round trip, about eight minutes
//	go run ./bench -regimes-chart docs/regimes.svg
//	go run ./bench -scenario regimes -regimes-span 5s   # longer cells: the cost of learning a quota, amortised
//	go run ./bench -scenario regimes -regimes-runs 5    # each cell five times, the implementations interleaved: medians
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
	"time"

	"github.com/awsfanout/fanout/internal/scenario"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("scenario", "", "run one scenario: "+strings.Join(scenario.Names, ", ")+
		", or "+regimes+", the sweep of bucket rate, burst and round trip (default: all but "+regimes+")")
	impls := fs.String("impl", "", "run only these implementations, comma-separated: "+strings.Join(scenario.Impls, ", ")+
		"; or the reference "+strings.Join(scenario.References, ", ")+", in the scenarios one bucket throttles")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	items := fs.Int("items", 0, fmt.Sprintf("calls in the items scenario (default %d), objects in the pipeline scenario (default %d)",
		scenario.Default.Items, scenario.Default.PipelineItems))
	accounts := fs.Int("accounts", 0, fmt.Sprintf("member accounts in the org scenario (default %d)", scenario.Default.OrgAccounts))
	chart := fs.String("chart", "", "write an SVG chart of wall time against concurrency to this file, and run nothing else")
	regimesChart := fs.String("regimes-chart", "", "run the "+regimes+" sweep and also write it as an SVG chart to this file")
	span := fs.Duration("regimes-span", 0, fmt.Sprintf("the %s sweep's cells make burst + rate x this many calls (default %v)", regimes, scenario.DefaultGrid.Span))
	runs := fs.Int("regimes-runs", 1, fmt.Sprintf("run each cell of the %s sweep this many times, the implementations one after another in each, "+
		"and show each implementation's median run's wall / ideal (of an even number, the slower of the middle two), its failed calls summed "+
		"and %% throttled over all its runs; -json prints every run", regimes))
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *name != "" && *name != regimes && !slices.Contains(scenario.Names, *name) {
		fmt.Fprintf(stderr, "bench: unknown scenario %q; want one of %s, %s\n", *name, strings.Join(scenario.Names, ", "), regimes)
		return 2
	}
	sweeping := *name == regimes || *regimesChart != ""
	var set []string // the sweep's own flags, as given
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "regimes-span" || f.Name == "regimes-runs" {
			set = append(set, "-"+f.Name)
		}
	})
	switch {
	case len(set) > 0 && !sweeping:
		fmt.Fprintf(stderr, "bench: %s is for the %s sweep; add -scenario %s\n", strings.Join(set, " and "), regimes, regimes)
		return 2
	case sweeping && *chart != "":
		fmt.Fprintf(stderr, "bench: -chart draws wall time against concurrency and runs nothing else; run the %s sweep without it\n", regimes)
		return 2
	case *span != 0 && (*span < 100*time.Millisecond || *span > 10*time.Minute):
		fmt.Fprintf(stderr, "bench: -regimes-span is %v; want 100ms to 10m\n", *span)
		return 2
	case *runs < 1 || *runs > 99:
		fmt.Fprintf(stderr, "bench: -regimes-runs is %d; want 1 to 99\n", *runs)
		return 2
	}
	if *accounts < 0 {
		fmt.Fprintf(stderr, "bench: -accounts is %d; want 1 or more (0: the org scenario's default)\n", *accounts)
		return 2
	}
	if *items < 0 {
		fmt.Fprintf(stderr, "bench: -items is %d; want 1 or more (0: each scenario's default)\n", *items)
		return 2
	}
	names := scenario.Names
	if *name != "" {
		names = []string{*name}
	}
	which := scenario.Impls
	if sweeping {
		which = scenario.RegimeImpls
	}
	if *impls != "" {
		which = strings.Split(*impls, ",")
		known := scenario.KnownImpls()
		for _, impl := range which {
			if !slices.Contains(known, impl) {
				fmt.Fprintf(stderr, "bench: unknown implementation %q; want some of %s\n", impl, strings.Join(known, ", "))
				return 2
			}
		}
	}
	ctx := context.Background()
	var err error
	switch {
	case *chart != "":
		err = writeChart(ctx, *chart, which)
	case sweeping:
		s := sweep{grid: regimesGrid, which: which, runs: *runs, json: *asJSON, chart: *regimesChart}
		if *span != 0 {
			s.grid.Span = *span
		}
		err = runRegimes(ctx, stdout, stderr, s)
	default:
		p := scenario.Default
		if *items > 0 {
			p.Items, p.PipelineItems = *items, *items
		}
		if *accounts > 0 {
			p.OrgAccounts = *accounts
		}
		err = runScenarios(ctx, stdout, stderr, names, which, p, *asJSON)
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	return 0
}

// runScenarios runs each scenario with each implementation and prints
// one table, or one JSON object per run.
func runScenarios(ctx context.Context, stdout, stderr io.Writer, names, which []string, p scenario.Params, asJSON bool) error {
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if !asJSON {
		header(stdout)
		fmt.Fprintln(tw, "scenario\timpl\titems\tfailed\twall_s\tideal_s\tx ideal\tx best peer\tcpu_s\tconns\tthrottled/requests\tpeak_heap_mb\t")
	}
	var notes []string
	ran, told := 0, false
	for _, n := range names {
		outs, err := runScenario(ctx, stderr, n, which, p)
		if err != nil {
			return err
		}
		ran += len(outs)
		scenario.ComparePeers(outs)
		for _, o := range outs {
			told = told || o.Impl == scenario.Told
			if asJSON {
				b, _ := json.Marshal(o)
				fmt.Fprintln(stdout, string(b))
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.3f\t%.3f\t%s\t%s\t%.2f\t%d\t%s\t%.1f\t\n", o.Scenario, o.Impl, o.Items, o.Failed,
				o.WallS, o.IdealS, ratio(o.WallS, o.IdealS), times(o.XBestPeer), o.CPUS, o.Conns, throttled(o), o.PeakHeapMB)
			if note := afterKill(o); note != "" {
				notes = append(notes, note)
			}
		}
		if note := scenarioNote(outs); note != "" && !asJSON {
			notes = append(notes, note)
		}
	}
	tw.Flush()
	if told && !asJSON {
		notes = append(notes, scenario.ToldNote())
	}
	for _, note := range notes {
		fmt.Fprintln(stdout, note)
	}
	if ran == 0 {
		return fmt.Errorf("nothing ran: no scenario of %s runs %s", strings.Join(names, ", "), strings.Join(which, ", "))
	}
	return nil
}

// runScenario runs one scenario with each implementation that it does
// not skip.
func runScenario(ctx context.Context, stderr io.Writer, name string, which []string, p scenario.Params) ([]scenario.Outcome, error) {
	var outs []scenario.Outcome
	for _, impl := range which {
		o, err := scenario.Run(ctx, name, impl, p)
		if errors.Is(err, scenario.ErrSkipped) {
			fmt.Fprintf(stderr, "bench: %s/%s not run: the scenario is not for it\n", name, impl)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", name, impl, err)
		}
		fmt.Fprintf(stderr, "bench: %s/%s done in %.1fs\n", o.Scenario, o.Impl, o.WallS)
		outs = append(outs, o)
	}
	return outs, nil
}

func header(w io.Writer) {
	fmt.Fprintf(w, "# %d CPUs, %s, %s/%s\n", runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// scenarioNote names a scenario's best peer and the call time its ideal
// builds on.
func scenarioNote(outs []scenario.Outcome) string {
	if len(outs) == 0 {
		return ""
	}
	o := outs[0]
	var parts []string
	if o.BestPeer != "" {
		parts = append(parts, "best peer "+o.BestPeer)
	}
	if o.CallS > 0 {
		parts = append(parts, fmt.Sprintf("ideal from a call of %.1f ms at Limit 1", 1000*o.CallS))
	}
	if len(parts) == 0 {
		return ""
	}
	return o.Scenario + ": " + strings.Join(parts, "; ")
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

func times(x float64) string {
	if x <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", x)
}

func ratio(wall, ideal float64) string {
	if ideal <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", wall/ideal)
}
