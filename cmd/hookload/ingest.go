package main

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what ingest reports; --json prints it as one line.
type Result struct {
	Label       string  `json:"label,omitempty"`
	Round       int     `json:"round,omitempty"` // of a bench that repeats each case (report pairs by it)
	URL         string  `json:"url"`
	Concurrency int     `json:"concurrency"`
	WarmupS     float64 `json:"warmup_s"`
	DurationS   float64 `json:"duration_s"` // the measured window
	Unique      bool    `json:"unique"`
	PoolSize    int     `json:"pool_size"`
	BodyBytes   int     `json:"body_bytes"`

	// Counts over the measured window (answers received inside it).
	Requests int64            `json:"requests"`
	OK       int64            `json:"ok"` // 2xx
	Non2xx   map[string]int64 `json:"non2xx"`
	Errors   map[string]int64 `json:"errors"` // transport errors, by kind
	ReqPerS  float64          `json:"req_per_s"`
	EventsPS float64          `json:"events_per_s"` // 2xx per second

	Latency LatencyMS `json:"latency_ms"` // answers received in the window

	// Server CPU over the window (--pid).
	ServerCPUUsPerReq float64 `json:"server_cpu_us_per_req,omitempty"`
	ServerCores       float64 `json:"server_cores,omitempty"`
	ClientCores       float64 `json:"client_cores"` // this process, same window
	// OthersCores is the machine's busy time in the window that was
	// neither the server's nor this process's (a sink, neighbours).
	OthersCores float64 `json:"others_cores"`
	// ServerCPU names the CPU the server is pinned to, if it is pinned to
	// one; OthersOnServerCPU is that CPU's busy time not spent by the
	// server: anything above a few hundredths disturbed the measurement.
	ServerCPU         string  `json:"server_cpu,omitempty"`
	OthersOnServerCPU float64 `json:"others_on_server_cpu,omitempty"`
	ClockTicks        int64   `json:"clk_tck"`
	ClockTicksSource  string  `json:"clk_tck_source"`

	E2E *E2E `json:"e2e,omitempty"`

	// Open is set for an open-loop run (--rate). Then Requests, OK,
	// Non2xx, Errors and Latency are over the requests due in the window
	// (however late their answers), Latency runs from each request's
	// scheduled time, EventsPS is Open.AchievedPerS and Concurrency is 0.
	Open *OpenLoop `json:"open,omitempty"`
}

// LatencyMS holds acknowledgement latencies in milliseconds.
type LatencyMS struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// E2E describes deliveries seen at a hookload sink (--sink-stats).
type E2E struct {
	// Acknowledged over the whole run (warm-up included) and the
	// deliveries those answers announced.
	Accepted int64 `json:"accepted"`
	Expected int64 `json:"expected_deliveries"`
	// DuringPerS is unique deliveries/s at the sink in the measured window.
	DuringPerS float64 `json:"during_per_s"`
	// Delivered is the sink's unique count when hookload stopped waiting;
	// Drained says whether it reached Expected.
	Delivered int64 `json:"delivered"`
	Total     int64 `json:"total"` // requests at the sink, retries included
	Drained   bool  `json:"drained"`
	// RatePerS is Delivered over the time from the first acknowledgement
	// to the last delivery: the sustained end-to-end rate.
	RatePerS float64 `json:"rate_per_s"`
	SpanS    float64 `json:"span_s"`
	// LagS is the last delivery's distance behind the last
	// acknowledgement: how long the backlog took to drain.
	LagS float64 `json:"lag_s"`
	// ServerCPUUsPerEvent is the server's CPU time from the start of the
	// run (warm-up included) until hookload stopped waiting for the sink,
	// per delivered event: ingest and delivery together (--pid).
	ServerCPUUsPerEvent float64 `json:"server_cpu_us_per_event,omitempty"`
}

type sender struct {
	lat      []time.Duration
	status   map[int]int64
	errs     map[string]int64
	requests int64
	ok       int64
}

func cmdIngest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "", "ingest `URL`, e.g. http://127.0.0.1:8080/hooks/salesiq")
	keyFile := fs.String("key", "", "RSA private key `PEM` to sign the pool with (unless --pool)")
	poolFile := fs.String("pool", "", "pre-signed pool `file` from `hookload pool` (instead of --key)")
	poolSize := fs.Int("pool-size", 20000, "bodies to sign before the run (with --key)")
	conc := fs.Int("concurrency", 32, "closed-loop senders")
	duration := fs.Duration("duration", 10*time.Second, "measured window")
	warmup := fs.Duration("warmup", time.Second, "unmeasured warm-up before the window")
	unique := fs.Bool("unique", true, "a distinct body per request (false: cycle the pool)")
	pidList := fs.String("pid", "", "server `PID` whose CPU time to measure (/proc/PID/stat); open loop: PID,PID,… summed")
	sinkURL := fs.String("sink-stats", "", "`URL` of a hookload sink's /stats: report deliveries and the end-to-end rate")
	drainTimeout := fs.Duration("drain-timeout", 120*time.Second, "longest wait for the sink to receive every delivery")
	drainStall := fs.Duration("drain-stall", 15*time.Second, "stop waiting when the sink count has not moved for this long")
	timeout := fs.Duration("timeout", 30*time.Second, "per-request timeout")
	asJSON := fs.Bool("json", false, "also print the result as one JSON line")
	label := fs.String("label", "", "label for the result (report)")
	round := fs.Int("round", 0, "round of a repeated bench, for the report to pair results of one round")
	rate := fs.Float64("rate", 0, "open loop: send this many `requests/s` on a fixed schedule (0: closed loop)")
	maxInflight := fs.Int("max-inflight", 2048, "open loop: most requests in flight; beyond it, requests wait and count as late")
	stamp := fs.Bool("stamp", true, "open loop: send the scheduled time in "+stampHeader+" for the sink's delivery lag")
	maxP99 := fs.Duration("max-p99", 50*time.Millisecond, "open loop: the step holds only if the p99 from scheduled time is under this")
	maxBacklog := fs.Duration("max-backlog", time.Second, "open loop: the step holds only if the backlog at the window's end is at most this much of the offered rate")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	urls := splitList(*target)
	if len(urls) == 0 || (*keyFile == "" && *poolFile == "") || *conc < 1 || *duration <= 0 || *rate < 0 || (len(urls) > 1 && *rate == 0) {
		fmt.Fprintln(stderr, "usage: hookload ingest --url URL (--key PRIVATE.pem | --pool FILE) --concurrency N --duration D [--unique] [--pid PID] [--json]")
		fmt.Fprintln(stderr, "       hookload ingest --url URL[,URL...] (--key PRIVATE.pem | --pool FILE) --rate R --duration D [--max-inflight N] [--sink-stats URL] [--json]")
		return 2
	}
	var pid int // closed loop's
	if pids := splitList(*pidList); len(pids) > 0 && *rate == 0 {
		var err error
		if pid, err = strconv.Atoi(*pidList); err != nil || len(pids) > 1 {
			fmt.Fprintln(stderr, "hookload ingest: --pid: one process id in closed loop")
			return 2
		}
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "hookload ingest:", err)
		return 1
	}

	// Sign before the clock starts.
	var pool []signed
	var err error
	if *poolFile != "" {
		pool, err = readPool(*poolFile)
	} else {
		var k *rsa.PrivateKey
		if k, err = readPrivateKey(*keyFile); err == nil {
			pool, err = buildPool(k, *poolSize, time.Now().UnixMilli()%1_000_000_000, stderr)
		}
	}
	if err != nil {
		return fail(err)
	}
	if len(pool) == 0 {
		return fail(errors.New("empty pool"))
	}

	res := &Result{
		Label: *label, Round: *round, URL: *target, Concurrency: *conc, WarmupS: warmup.Seconds(), DurationS: duration.Seconds(),
		Unique: *unique, PoolSize: len(pool), BodyBytes: len(pool[0].Body),
		Non2xx: map[string]int64{}, Errors: map[string]int64{},
	}
	res.ClockTicks, res.ClockTicksSource = clockTicks()
	if *rate > 0 {
		return ingestOpen(ctx, res, openConfig{
			URLs: urls, Pool: pool, Unique: *unique, Rate: *rate, Warmup: *warmup, Duration: *duration,
			MaxInflight: *maxInflight, Timeout: *timeout, Stamp: *stamp, SinkStats: *sinkURL,
			DrainTimeout: *drainTimeout, DrainStall: *drainStall, MaxP99: *maxP99, MaxBacklog: *maxBacklog,
			PIDs: splitList(*pidList), ClockTicks: res.ClockTicks,
		}, *asJSON, stdout, stderr)
	}

	client := &http.Client{
		Timeout: *timeout,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        *conc,
			MaxIdleConnsPerHost: *conc,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()

	var sinkBefore sinkStats
	if *sinkURL != "" {
		if sinkBefore, err = getSinkStats(ctx, *sinkURL); err != nil {
			return fail(fmt.Errorf("sink stats: %w", err))
		}
	}

	var (
		next      atomic.Int64
		exhausted atomic.Int64 // unix ns when the pool ran out
		firstAck  atomic.Int64 // unix ns of the first 2xx of the run
		lastAck   atomic.Int64
		accepted  atomic.Int64 // 2xx over the whole run
		expected  atomic.Int64 // deliveries announced by 202 answers
		wg        sync.WaitGroup
	)
	// runCtx ends early when the pool runs out; requests in flight still
	// finish on ctx.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var runCPU *cpuMeter // the server over the whole run, for E2E
	if pid > 0 {
		runCPU = newCPUMeter(strconv.Itoa(pid), res.ClockTicks)
	}
	start := time.Now()
	winStart := start.Add(*warmup)
	winEnd := winStart.Add(*duration)
	senders := make([]*sender, *conc)
	for n := range senders {
		s := &sender{status: map[int]int64{}, errs: map[string]int64{}, lat: make([]time.Duration, 0, 4096)}
		senders[n] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for ctx.Err() == nil && time.Now().Before(winEnd) {
				i := next.Add(1) - 1
				if *unique && i >= int64(len(pool)) {
					if exhausted.CompareAndSwap(0, time.Now().UnixNano()) {
						stopRun()
					}
					return
				}
				b := pool[i%int64(len(pool))]
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, *target, bytes.NewReader(b.Body))
				if err != nil {
					s.errs[err.Error()]++
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("x-siqsignature", b.Sig)
				t0 := time.Now()
				resp, err := client.Do(req)
				code := 0
				if err == nil {
					buf.Reset()
					_, err = buf.ReadFrom(io.LimitReader(resp.Body, 64<<10))
					resp.Body.Close()
					code = resp.StatusCode
				}
				t1 := time.Now()
				if code/100 == 2 && err == nil {
					ns := t1.UnixNano()
					firstAck.CompareAndSwap(0, ns)
					for {
						old := lastAck.Load()
						if ns <= old || lastAck.CompareAndSwap(old, ns) {
							break
						}
					}
					accepted.Add(1)
					if *sinkURL != "" && code == http.StatusAccepted {
						expected.Add(announcedDeliveries(buf.Bytes()))
					}
				}
				if t1.Before(winStart) || t1.After(winEnd) {
					continue
				}
				s.requests++
				switch {
				case err != nil:
					s.errs[errKind(err)]++
				case code/100 == 2:
					s.ok++
					s.lat = append(s.lat, t1.Sub(t0))
				default:
					s.status[code]++
					s.lat = append(s.lat, t1.Sub(t0))
				}
			}
		}()
	}

	// Meters at the window's edges.
	var srvCPU, selfCPU *cpuMeter
	var machine, srvCore *busyMeter
	var sinkAtStart, sinkAtEnd sinkStats
	sleepUntil(runCtx, winStart)
	if pid > 0 {
		srvCPU = newCPUMeter(strconv.Itoa(pid), res.ClockTicks)
		if res.ServerCPU = pinnedCPU(strconv.Itoa(pid)); res.ServerCPU != "" {
			srvCore = newBusyMeter(res.ServerCPU, res.ClockTicks)
		}
	}
	selfCPU = newCPUMeter("self", res.ClockTicks)
	machine = newBusyMeter("cpu", res.ClockTicks)
	if *sinkURL != "" {
		sinkAtStart, _ = getSinkStats(ctx, *sinkURL)
	}
	sleepUntil(runCtx, winEnd)
	window := time.Since(winStart)
	var srvUsed, selfUsed time.Duration
	if srvCPU != nil {
		d, err := srvCPU.since()
		if err != nil {
			fmt.Fprintln(stderr, "hookload ingest: server CPU:", err)
		} else {
			srvUsed = d
			res.ServerCores = d.Seconds() / window.Seconds()
			res.ServerCPUUsPerReq = float64(d.Microseconds()) // per request below
		}
		if srvCore != nil {
			if d, err := srvCore.since(); err == nil {
				res.OthersOnServerCPU = max(0, (d-srvUsed).Seconds()/window.Seconds())
			}
		}
	}
	if d, err := selfCPU.since(); err == nil {
		selfUsed = d
		res.ClientCores = d.Seconds() / window.Seconds()
	}
	if d, err := machine.since(); err == nil {
		res.OthersCores = max(0, (d-srvUsed-selfUsed).Seconds()/window.Seconds())
	}
	if *sinkURL != "" {
		sinkAtEnd, _ = getSinkStats(ctx, *sinkURL)
	}
	wg.Wait()
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	if at := exhausted.Load(); at != 0 {
		used := next.Load()
		rate := float64(len(pool)) / time.Unix(0, at).Sub(start).Seconds()
		need := int(math.Ceil(rate * (*warmup + *duration).Seconds() * 1.25))
		fmt.Fprintf(stderr, "hookload ingest: pool exhausted: --unique needs a fresh body per request and the %d-body pool ran out "+
			"(%d requests started, about %.0f/s); rerun with --pool-size (or hookload pool --n) of at least %d\n",
			len(pool), used, rate, need)
		return 3
	}

	var all []time.Duration
	for _, s := range senders {
		res.Requests += s.requests
		res.OK += s.ok
		for c, n := range s.status {
			res.Non2xx[strconv.Itoa(c)] += n
		}
		for k, n := range s.errs {
			res.Errors[k] += n
		}
		all = append(all, s.lat...)
	}
	res.ReqPerS = float64(res.Requests) / window.Seconds()
	res.EventsPS = float64(res.OK) / window.Seconds()
	res.Latency = latencies(all)
	if res.ServerCPUUsPerReq > 0 && res.Requests > 0 {
		res.ServerCPUUsPerReq /= float64(res.Requests)
	}

	if *sinkURL != "" {
		e := &E2E{Accepted: accepted.Load(), Expected: expected.Load()}
		e.DuringPerS = float64(sinkAtEnd.Unique-sinkAtStart.Unique) / window.Seconds()
		final := waitDrain(ctx, *sinkURL, sinkBefore.Unique+e.Expected, *drainTimeout, *drainStall, stderr)
		e.Delivered = final.Unique - sinkBefore.Unique
		e.Total = final.Total - sinkBefore.Total
		e.Drained = e.Delivered >= e.Expected
		if fa := firstAck.Load(); fa != 0 && !final.LastAt.IsZero() {
			e.SpanS = final.LastAt.Sub(time.Unix(0, fa)).Seconds()
			if e.SpanS > 0 {
				e.RatePerS = float64(e.Delivered) / e.SpanS
			}
			e.LagS = final.LastAt.Sub(time.Unix(0, lastAck.Load())).Seconds()
		}
		if runCPU != nil && e.Delivered > 0 {
			if d, err := runCPU.since(); err == nil {
				e.ServerCPUUsPerEvent = float64(d.Microseconds()) / float64(e.Delivered)
			}
		}
		res.E2E = e
	}

	fmt.Fprintln(stdout, humanLine(res))
	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Fprintln(stdout, string(b))
	}
	if res.OK == 0 {
		return 1
	}
	return 0
}

// announcedDeliveries reads "deliveries":N from a router's 202 answer
// without a full JSON decode; 1 if it is absent (a baseline).
func announcedDeliveries(b []byte) int64 {
	const k = `"deliveries":`
	i := bytes.Index(b, []byte(k))
	if i < 0 {
		return 1
	}
	b = b[i+len(k):]
	j := 0
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(string(b[:j]), 10, 64)
	if err != nil {
		return 1
	}
	return n
}

// errKind shortens a transport error to a countable kind.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	case strings.Contains(err.Error(), "connection reset"):
		return "connection reset"
	case strings.Contains(err.Error(), "EOF"):
		return "EOF"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// latencies summarises ds (nearest-rank percentiles).
func latencies(ds []time.Duration) LatencyMS {
	if len(ds) == 0 {
		return LatencyMS{}
	}
	slices.Sort(ds)
	pct := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(ds)))) - 1
		return ms(ds[max(i, 0)])
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return LatencyMS{P50: pct(50), P90: pct(90), P99: pct(99), Max: ms(ds[len(ds)-1]), Mean: ms(sum / time.Duration(len(ds)))}
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())/10) / 100 }

func getSinkStats(ctx context.Context, url string) (sinkStats, error) {
	var st sinkStats
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// waitDrain polls the sink until it has want unique deliveries, its count
// stalls for stall, or timeout passes.
func waitDrain(ctx context.Context, url string, want int64, timeout, stall time.Duration, stderr io.Writer) sinkStats {
	deadline := time.Now().Add(timeout)
	var last sinkStats
	lastMove := time.Now()
	for {
		st, err := getSinkStats(ctx, url)
		if err == nil {
			if st.Unique != last.Unique || st.Total != last.Total {
				lastMove = time.Now()
			}
			last = st
			if st.Unique >= want {
				return st
			}
		}
		if ctx.Err() != nil || time.Now().After(deadline) || time.Since(lastMove) > stall {
			fmt.Fprintf(stderr, "hookload ingest: stopped waiting for the sink at %d of %d unique deliveries\n", last.Unique, want)
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func humanLine(r *Result) string {
	var b strings.Builder
	if r.Label != "" {
		fmt.Fprintf(&b, "%s: ", r.Label)
	}
	fmt.Fprintf(&b, "%d senders, %.1fs: %d requests, %d 2xx", r.Concurrency, r.DurationS, r.Requests, r.OK)
	if len(r.Non2xx) > 0 {
		fmt.Fprintf(&b, ", non-2xx %s", fmtCounts(r.Non2xx))
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, ", errors %s", fmtCounts(r.Errors))
	}
	fmt.Fprintf(&b, "; %.0f events/s; ack p50 %.2fms p90 %.2fms p99 %.2fms max %.2fms",
		r.EventsPS, r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max)
	if r.ServerCores > 0 {
		fmt.Fprintf(&b, "; server CPU %.0fµs/req (%.2f cores)", r.ServerCPUUsPerReq, r.ServerCores)
	}
	fmt.Fprintf(&b, "; client %.2f cores; others %.2f cores", r.ClientCores, r.OthersCores)
	if r.ServerCPU != "" {
		fmt.Fprintf(&b, " (%.2f on the server's %s)", r.OthersOnServerCPU, r.ServerCPU)
	}
	if e := r.E2E; e != nil {
		fmt.Fprintf(&b, "; sink %.0f/s during, %d/%d delivered, end-to-end %.0f/s over %.1fs (lag %.1fs, server CPU %.0fµs/event)",
			e.DuringPerS, e.Delivered, e.Expected, e.RatePerS, e.SpanS, e.LagS, e.ServerCPUUsPerEvent)
		if !e.Drained {
			b.WriteString(" NOT DRAINED")
		}
	}
	return b.String()
}

func fmtCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
