package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// Targets, as ratios measured in one run.
const (
	targetIngestVsVerify = 0.40 // verified + rules + durable ingest vs verify-only
	targetP99Ms          = 50.0 // ack p99 at 32 senders
	targetE2EVsBare      = 0.10 // end-to-end deliveries/s vs bare ingest

	// disturbed flags a run whose server CPU was this busy with others.
	// Undisturbed runs show a few hundredths: network softirq time that
	// the kernel does not charge to the server process.
	disturbed = 0.15
)

// cmdReport prints the markdown tables for a results file: JSON lines from
// ingest --json (labelled bare, verify, hookroute) and {"meta": {...}}
// lines whose pairs are printed first.
func cmdReport(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: hookload report RESULTS.jsonl")
		return 2
	}
	meta, results, err := readResults(args[0], func(r *Result) bool { return r.URL != "" && r.Open == nil },
		"a closed-loop result (open-loop ones have no senders to pair by: hookload ladder)", stderr)
	if err != nil {
		fmt.Fprintln(stderr, "hookload report:", err)
		return 1
	}
	printReport(stdout, meta, results)
	return 0
}

// readResults reads a results file: JSON lines from ingest --json, of
// which it keeps those keep accepts (skipping the others with a word on
// stderr naming what it wanted), and {"meta": {...}} lines, whose pairs
// it returns sorted by key, line by line.
func readResults(path string, keep func(*Result) bool, want string, stderr io.Writer) (meta [][2]string, results []*Result, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var m struct {
			Meta map[string]string `json:"meta"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Meta != nil {
			for _, k := range slices.Sorted(maps.Keys(m.Meta)) {
				meta = append(meta, [2]string{k, m.Meta[k]})
			}
			continue
		}
		r := &Result{}
		if err := json.Unmarshal([]byte(line), r); err != nil || !keep(r) {
			fmt.Fprintf(stderr, "hookload: skipping a line that is not %s: %.60s\n", want, line)
			continue
		}
		results = append(results, r)
	}
	return meta, results, sc.Err()
}

func printReport(w io.Writer, meta [][2]string, results []*Result) {
	rank := map[string]int{"bare": 0, "verify": 1, "hookroute": 2}
	slices.SortStableFunc(results, func(a, b *Result) int {
		ra, oka := rank[a.Label]
		rb, okb := rank[b.Label]
		if !oka {
			ra = len(rank)
		}
		if !okb {
			rb = len(rank)
		}
		if ra != rb {
			return ra - rb
		}
		if a.Concurrency != b.Concurrency {
			return a.Concurrency - b.Concurrency
		}
		return a.Round - b.Round
	})
	// A result is compared with the baselines of its own round: the
	// machine's conditions drift between rounds.
	find := func(label string, conc, round int) *Result {
		for _, r := range results {
			if r.Label == label && r.Concurrency == conc && r.Round == round {
				return r
			}
		}
		return nil
	}
	senders := func(r *Result) string {
		if r.Round > 0 {
			return fmt.Sprintf("%d (round %d)", r.Concurrency, r.Round)
		}
		return fmt.Sprint(r.Concurrency)
	}
	ratio := func(a, b float64) string {
		if b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	for _, kv := range meta {
		fmt.Fprintf(w, "- %s: %s\n", kv[0], kv[1])
	}
	fmt.Fprintln(w)
	noisy := false
	fmt.Fprintln(w, "### Ingest (closed loop, measured window only)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| case | senders | events/s | × bare | × verify | p50 ms | p99 ms | max ms | server CPU µs/event | × bare (CPU) | × verify (CPU) | server cores | client cores | others on server CPU | non-2xx / errors |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range results {
		bare, ver := find("bare", r.Concurrency, r.Round), find("verify", r.Concurrency, r.Round)
		var bareEPS, verEPS, bareCPU, verCPU float64
		if bare != nil {
			bareEPS, bareCPU = bare.EventsPS, bare.ServerCPUUsPerReq
		}
		if ver != nil {
			verEPS, verCPU = ver.EventsPS, ver.ServerCPUUsPerReq
		}
		// Inverse ratio of CPU per event: the throughput ratio if both
		// were CPU-bound on their core.
		cpuRatio := func(base float64) string {
			if r.ServerCPUUsPerReq > 0 && base > 0 {
				return fmt.Sprintf("%.2f", base/r.ServerCPUUsPerReq)
			}
			return "–"
		}
		others := "–"
		if r.ServerCPU != "" {
			others = fmt.Sprintf("%.2f", r.OthersOnServerCPU)
			if r.OthersOnServerCPU > disturbed {
				others += " ⚠"
				noisy = true
			}
		}
		bad := "0"
		if len(r.Non2xx)+len(r.Errors) > 0 {
			bad = strings.TrimSpace(fmtCounts(r.Non2xx) + " " + fmtCounts(r.Errors))
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %.2f | %.2f | %.2f | %.0f | %s | %s | %.2f | %.2f | %s | %s |\n",
			r.Label, senders(r), r.EventsPS, ratio(r.EventsPS, bareEPS), ratio(r.EventsPS, verEPS),
			r.Latency.P50, r.Latency.P99, r.Latency.Max, r.ServerCPUUsPerReq, cpuRatio(bareCPU), cpuRatio(verCPU),
			r.ServerCores, r.ClientCores, others, bad)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "× bare/verify (CPU): the baseline's server CPU per event over this row's, i.e. the throughput ratio if both were CPU-bound on their core. "+
		"Others on server CPU: busy time of the server's CPU not charged to the server (network softirq, neighbours), in cores.")
	if noisy {
		fmt.Fprintf(w, "⚠ other processes used more than %.2f of the server's CPU during this window: its throughput and latency are disturbed; the CPU-per-event columns hold up better.\n", disturbed)
	}

	var e2e []*Result
	for _, r := range results {
		if r.E2E != nil {
			e2e = append(e2e, r)
		}
	}
	if len(e2e) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "### End to end (ingest → SQLite → worker → HTTP sink)")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| case | senders | acked | delivered | drained | at sink during window /s | end-to-end /s | × bare | × verify | server CPU µs/event | × bare (CPU) | first ack → last delivery s | lag after last ack s | sink requests |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, r := range e2e {
			e := r.E2E
			var bareEPS, verEPS, bareCPU float64
			if b := find("bare", r.Concurrency, r.Round); b != nil {
				bareEPS, bareCPU = b.EventsPS, b.ServerCPUUsPerReq
			}
			if v := find("verify", r.Concurrency, r.Round); v != nil {
				verEPS = v.EventsPS
			}
			fmt.Fprintf(w, "| %s | %s | %d | %d | %v | %.0f | %.0f | %s | %s | %.0f | %s | %.1f | %.1f | %d |\n",
				r.Label, senders(r), e.Accepted, e.Delivered, e.Drained, e.DuringPerS, e.RatePerS,
				ratio(e.RatePerS, bareEPS), ratio(e.RatePerS, verEPS), e.ServerCPUUsPerEvent, ratio(bareCPU, e.ServerCPUUsPerEvent),
				e.SpanS, e.LagS, e.Total)
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "### Targets")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Measured as throughput ratios; the CPU-normalised column divides CPU per event instead, which neighbours on the machine disturb much less.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | senders | measured | met | CPU-normalised | met | a run disturbed |")
	fmt.Fprintln(w, "|---|---:|---:|---|---:|---|---|")
	met := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	dist := func(rs ...*Result) string {
		for _, r := range rs {
			if r != nil && r.ServerCPU != "" && r.OthersOnServerCPU > disturbed {
				return "⚠ yes"
			}
		}
		return "no"
	}
	// Each target's value per round, by concurrency, for the medians.
	type vals struct{ x, c []float64 }
	perConc := map[string]map[int]*vals{}
	note := func(target string, conc int, x, c float64) {
		if perConc[target] == nil {
			perConc[target] = map[int]*vals{}
		}
		v := perConc[target][conc]
		if v == nil {
			v = &vals{}
			perConc[target][conc] = v
		}
		v.x = append(v.x, x)
		if c > 0 {
			v.c = append(v.c, c)
		}
	}
	ingestName := fmt.Sprintf("ingest ≥ %.2f × verify baseline", targetIngestVsVerify)
	p99Name := fmt.Sprintf("p99 ack < %.0f ms", targetP99Ms)
	e2eName := fmt.Sprintf("end-to-end ≥ %.2f × bare baseline", targetE2EVsBare)
	var concs []int
	for _, r := range results {
		if r.Label != "hookroute" {
			continue
		}
		if !slices.Contains(concs, r.Concurrency) {
			concs = append(concs, r.Concurrency)
		}
		v, b := find("verify", r.Concurrency, r.Round), find("bare", r.Concurrency, r.Round)
		if v != nil && v.EventsPS > 0 {
			x := r.EventsPS / v.EventsPS
			cx, cm, c := "–", "–", 0.0
			if r.ServerCPUUsPerReq > 0 && v.ServerCPUUsPerReq > 0 {
				c = v.ServerCPUUsPerReq / r.ServerCPUUsPerReq
				cx, cm = fmt.Sprintf("%.2f", c), met(c >= targetIngestVsVerify)
			}
			note(ingestName, r.Concurrency, x, c)
			fmt.Fprintf(w, "| %s | %s | %.2f | %s | %s | %s | %s |\n",
				ingestName, senders(r), x, met(x >= targetIngestVsVerify), cx, cm, dist(r, v))
		}
		if r.Concurrency == 32 {
			note(p99Name, r.Concurrency, r.Latency.P99, 0)
			fmt.Fprintf(w, "| %s | %s | %.2f ms | %s | | | %s |\n",
				p99Name, senders(r), r.Latency.P99, met(r.Latency.P99 < targetP99Ms), dist(r))
		}
		if b != nil && b.EventsPS > 0 && r.E2E != nil {
			e := r.E2E
			x := e.RatePerS / b.EventsPS
			cx, cm, c := "–", "–", 0.0
			if e.ServerCPUUsPerEvent > 0 && b.ServerCPUUsPerReq > 0 {
				c = b.ServerCPUUsPerReq / e.ServerCPUUsPerEvent
				cx, cm = fmt.Sprintf("%.3f", c), met(c >= targetE2EVsBare && e.Drained)
			}
			if !e.Drained {
				x, c = 0, 0 // an undrained run meets nothing, in its median too
			}
			note(e2eName, r.Concurrency, x, c)
			fmt.Fprintf(w, "| %s | %s | %.3f | %s | %s | %s | %s |\n",
				e2eName, senders(r), e.RatePerS/b.EventsPS, met(x >= targetE2EVsBare && e.Drained), cx, cm, dist(r, b))
		}
	}
	// With rounds, the median of each target over them: one round's
	// baselines can move a ratio by a tenth on a shared machine.
	for _, conc := range concs {
		for _, t := range []struct {
			name      string
			goal      float64
			below, ms bool
		}{{ingestName, targetIngestVsVerify, false, false}, {p99Name, targetP99Ms, true, true}, {e2eName, targetE2EVsBare, false, false}} {
			v := perConc[t.name][conc]
			if v == nil || len(v.x) < 2 {
				continue
			}
			ok := func(x float64) bool {
				if t.below {
					return x < t.goal
				}
				return x >= t.goal
			}
			x := median(v.x)
			xs := fmt.Sprintf("%.3f", x)
			if t.ms {
				xs = fmt.Sprintf("%.2f ms", x)
			}
			cx, cm := "", ""
			if len(v.c) == len(v.x) {
				c := median(v.c)
				cx, cm = fmt.Sprintf("%.3f", c), met(ok(c))
			}
			fmt.Fprintf(w, "| %s | %d, median of %d rounds | %s | %s | %s | %s | |\n", t.name, conc, len(v.x), xs, met(ok(x)), cx, cm)
		}
	}
}

// median returns the median of xs (the mean of the middle two for an even
// count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
