package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// loadCPUFull is how busy the load generator's CPU may get before a step
// is flagged: beyond it, requests wait for the generator, not the server.
const loadCPUFull = 0.9

// ladderStep is one open-loop result of a ladder, in the order run.
type ladderStep = *Result

// sustained is a system's highest held step before its first failed one,
// and whether the ladder stopped on a failure (otherwise it ran out of
// steps, so the system may sustain more).
type sustained struct {
	rate    float64
	achieve float64
	failed  bool
	steps   int
}

// sustainedRate reads a system's steps in the order they ran: the ladder
// stops at the first step that fails, and a step held after a failure (a
// rerun, a noisy machine) does not count.
func sustainedRate(steps []ladderStep) sustained {
	var s sustained
	for _, r := range steps {
		s.steps++
		if !r.Open.Hold.Held {
			s.failed = true
			break
		}
		if r.Open.OfferedPerS > s.rate {
			s.rate, s.achieve = r.Open.OfferedPerS, r.Open.AchievedPerS
		}
	}
	return s
}

// cmdLadder prints bench/run.sh's ladder tables from a results file: JSON
// lines of open-loop ingest --json runs, labelled by system, in the order
// they ran, and {"meta": {...}} lines.
func cmdLadder(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ladder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ratios []string
	fs.Func("ratio", "print the sustained rates' ratio `A/B` of two labels (repeatable)", func(v string) error {
		if a, b, ok := strings.Cut(v, "/"); !ok || a == "" || b == "" {
			return fmt.Errorf("want LABEL/LABEL, got %q", v)
		}
		ratios = append(ratios, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: hookload ladder [--ratio A/B]... RESULTS.jsonl")
		return 2
	}
	meta, results, err := readResults(fs.Arg(0), func(r *Result) bool { return r.Open != nil }, "an open-loop result", stderr)
	if err != nil {
		fmt.Fprintln(stderr, "hookload ladder:", err)
		return 1
	}
	printLadder(stdout, meta, results, ratios)
	return 0
}

func printLadder(w io.Writer, meta [][2]string, results []*Result, ratios []string) {
	var labels []string
	by := map[string][]ladderStep{}
	for _, r := range results {
		if _, ok := by[r.Label]; !ok {
			labels = append(labels, r.Label)
		}
		by[r.Label] = append(by[r.Label], r)
	}
	for _, kv := range meta {
		fmt.Fprintf(w, "- %s: %s\n", kv[0], kv[1])
	}
	sus := map[string]sustained{}
	starved := false
	for _, l := range labels {
		steps := by[l]
		fmt.Fprintln(w)
		fmt.Fprintf(w, "### Ladder: %s\n\n", l)
		fmt.Fprintln(w, "| offered /s | achieved /s | p50 ms | p99 ms | max ms | late | backlog at end | delivery lag p99 ms | delivered after | non-2xx / errors | server cores | sender behind ms | load CPU busy | held? |")
		fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|")
		for _, r := range steps {
			o := r.Open
			backlog, lag, after := "–", "–", "–"
			if bl := o.Backlog; bl != nil {
				backlog = fmt.Sprintf("%d (%.2f s)", bl.Events, bl.Seconds)
				if bl.Lag != nil {
					lag = fmt.Sprintf("%.1f", bl.Lag.P99)
				}
				after = fmt.Sprintf("%d/%d", bl.FinalDelivered, bl.FinalExpected)
			}
			bad := "0"
			if len(r.Non2xx)+len(r.Errors) > 0 {
				bad = strings.TrimSpace(fmtCounts(r.Non2xx) + " " + fmtCounts(r.Errors))
			}
			held := "yes"
			if !o.Hold.Held {
				held = "**no**: " + strings.Join(o.Hold.Why, "; ")
			}
			behind := fmt.Sprintf("%.1f", o.SchedulerLagMS)
			if o.SchedulerLagMS >= o.Hold.MaxP99MS/2 && o.Hold.MaxP99MS > 0 {
				behind += " ⚠"
				starved = true
			}
			loadBusy := "–"
			if o.LoadCPU != "" {
				loadBusy = fmt.Sprintf("%.2f", o.LoadCPUBusy)
				if o.LoadCPUBusy >= loadCPUFull {
					loadBusy += " ⚠"
					starved = true
				}
			}
			fmt.Fprintf(w, "| %.0f | %.0f | %.2f | %.2f | %.2f | %d | %s | %s | %s | %s | %.2f | %s | %s | %s |\n",
				o.OfferedPerS, o.AchievedPerS, r.Latency.P50, r.Latency.P99, r.Latency.Max, o.Late, backlog, lag, after, bad,
				r.ServerCores, behind, loadBusy, held)
		}
		sus[l] = sustainedRate(steps)
	}
	if len(labels) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Latencies run from each request's scheduled time. Backlog at end: deliveries announced by 2xx answers minus distinct deliveries at the sink, "+
		"at the window's end (in seconds of the offered rate). Delivery lag: arrival at the sink minus scheduled time, for deliveries that arrived in the window. "+
		"Delivered after: once the sink stopped receiving or the drain wait ran out. Server cores: the system's processes' CPU over the window. "+
		"Sender behind: how far the load generator's schedule slipped at worst. Load CPU busy: the load generator's CPU, whoever used it (it, the sink, neighbours), when it is pinned to one.")
	if starved {
		fmt.Fprintf(w, "⚠ the load generator fell behind its schedule by half the p99 bound or more, or its CPU was %.0f %% busy or more: "+
			"it was short of CPU, and the step's latencies say as much about it as about the server.\n", loadCPUFull*100)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "### Sustained rates")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The highest offered rate that held: the true figure lies between it and the next step up.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| system | sustained /s | achieved at it /s | steps run | ended on |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|")
	for _, l := range labels {
		s := sus[l]
		end := "a failed step"
		if !s.failed {
			end = "the top of the ladder (it may sustain more)"
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %d | %s |\n", l, sustainedText(s), s.achieve, s.steps, end)
	}
	if len(ratios) > 0 {
		fmt.Fprintln(w)
		if f := stepFactor(by, labels); f > 1 {
			fmt.Fprintf(w, "Ratios of sustained rates are ratios of steps ×%.2f apart: each is good to one step, a factor of %.2f either way.\n\n", f, f)
		}
		for _, q := range ratios {
			a, b, _ := strings.Cut(q, "/")
			sa, oka := sus[a]
			sb, okb := sus[b]
			switch {
			case !oka || !okb:
				fmt.Fprintf(w, "- %s / %s: – (not both measured)\n", a, b)
			case sb.rate == 0 || sa.rate == 0:
				fmt.Fprintf(w, "- %s / %s: – (a system held no step)\n", a, b)
			default:
				note := ""
				if !sa.failed || !sb.failed {
					note = " (a ladder ran out of steps: a bound, not a ratio)"
				}
				fmt.Fprintf(w, "- %s / %s: %.2f%s\n", a, b, sa.rate/sb.rate, note)
			}
		}
	}
}

func sustainedText(s sustained) string {
	switch {
	case s.rate == 0:
		return "none held"
	case !s.failed:
		return fmt.Sprintf("≥ %.0f", s.rate)
	}
	return fmt.Sprintf("%.0f", s.rate)
}

// stepFactor is the ladder's ratio between consecutive steps, read off the
// first system that ran two; 0 if none did.
func stepFactor(by map[string][]ladderStep, labels []string) float64 {
	for _, l := range labels {
		if st := by[l]; len(st) >= 2 && st[0].Open.OfferedPerS > 0 {
			return st[1].Open.OfferedPerS / st[0].Open.OfferedPerS
		}
	}
	return 0
}
