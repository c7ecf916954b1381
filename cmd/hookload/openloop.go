package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// stampHeader carries a request's scheduled send time (Unix microseconds)
// so that a hookload sink can tell how long after it a delivery arrived.
// It is not covered by the signature, which is over the body only, and
// hookroute keeps request headers in the event it delivers, so the stamp
// reaches the sink in the delivered body.
const stampHeader = "X-Hookload-Sched"

// OpenLoop is what an open-loop run (ingest --rate) adds to a Result.
type OpenLoop struct {
	OfferedPerS float64  `json:"offered_per_s"`
	MaxInflight int      `json:"max_inflight"`
	URLs        []string `json:"urls,omitempty"` // round-robin, when more than one
	// Late counts the window's requests that found all MaxInflight slots
	// taken and waited for one: the offered rate held only because their
	// latency, which includes the wait, grew.
	Late int64 `json:"late"`
	// AchievedPerS is 2xx answers received inside the window per second:
	// what the server kept up with, whereas Result.OK counts the answers to
	// the requests due in the window, however late they came.
	AchievedPerS float64 `json:"achieved_per_s"`
	// SchedulerLagMS is how far behind its schedule the sending loop fell
	// at worst, apart from waiting for a free slot (Late); more than a few
	// milliseconds means the load generator, not the server, was short of
	// CPU.
	SchedulerLagMS float64 `json:"scheduler_lag_ms"`
	// LoadCPU names the CPU this process is pinned to, if one, and
	// LoadCPUBusy is that CPU's busy time over the window, whoever used it
	// (this process, the sink, neighbours), in cores: near 1 the load
	// generator was short of CPU and the step measured it, not the server.
	LoadCPU     string   `json:"load_cpu,omitempty"`
	LoadCPUBusy float64  `json:"load_cpu_busy,omitempty"`
	Backlog     *Backlog `json:"backlog,omitempty"`
	Hold        Hold     `json:"hold"`
}

// Backlog is what the sink had not received yet (--sink-stats).
type Backlog struct {
	// At the window's end: deliveries announced by the 2xx answers received
	// so far (warm-up included), the sink's distinct deliveries by then,
	// and the difference, also in seconds of the offered rate.
	Expected  int64   `json:"expected"`
	Delivered int64   `json:"delivered"`
	Events    int64   `json:"events"`
	Seconds   float64 `json:"seconds"`
	// After waiting for the sink (--drain-timeout): every announced
	// delivery, the distinct ones that arrived, and the time from the
	// window's end to the last of them.
	FinalExpected  int64   `json:"final_expected"`
	FinalDelivered int64   `json:"final_delivered"`
	Drained        bool    `json:"drained"`
	DrainS         float64 `json:"drain_s"`
	// Lag is the delivery lag of the deliveries that reached the sink
	// inside the window and carried stampHeader: arrival at the sink minus
	// the scheduled send time.
	Lag        *LatencyMS `json:"lag_ms,omitempty"`
	LagSamples int64      `json:"lag_samples,omitempty"`
}

// Hold says whether the server sustained the offered rate over the window.
type Hold struct {
	Held bool `json:"held"`
	// Why lists the criteria that failed.
	Why         []string `json:"why,omitempty"`
	MaxP99MS    float64  `json:"max_p99_ms"`
	MaxBacklogS float64  `json:"max_backlog_s"`
}

// openConfig is an open-loop run's setup, apart from the flags parsing, so
// that tests can drive it.
type openConfig struct {
	URLs        []string
	Pool        []signed
	Unique      bool
	Rate        float64 // requests per second
	Warmup      time.Duration
	Duration    time.Duration
	MaxInflight int
	Timeout     time.Duration
	Stamp       bool
	SinkStats   string // a hookload sink's /stats URL, or ""
	// DrainTimeout and DrainStall bound the wait for the sink after the
	// window; a zero DrainTimeout skips it.
	DrainTimeout time.Duration
	DrainStall   time.Duration
	MaxP99       time.Duration
	MaxBacklog   time.Duration
	PIDs         []string // servers whose CPU to measure over the window
	ClockTicks   int64
}

// errPoolExhausted means a --unique run needed more bodies than its pool
// holds; Need is the pool size to rerun with.
type errPoolExhausted struct{ Size, Need int }

func (e *errPoolExhausted) Error() string {
	return fmt.Sprintf("pool exhausted: --unique needs a fresh body per request and the %d-body pool ran out; "+
		"rerun with --pool-size (or hookload pool --n) of at least %d", e.Size, e.Need)
}

// openRecorder gathers the answers of the requests due in the window.
type openRecorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	status   map[int]int64
	errs     map[string]int64
	requests int64
	ok       int64
	late     int64
}

// runOpen sends cfg.Rate requests per second on a fixed schedule for
// cfg.Warmup+cfg.Duration, whatever the server answers, and measures each
// request's latency from the time it was due rather than from the time it
// left: a server that stalls then shows its stall in every request that
// was due meanwhile, where a closed loop would simply have sent fewer
// (coordinated omission).
func runOpen(ctx context.Context, cfg openConfig, res *Result, stderr io.Writer) error {
	if cfg.Rate <= 0 || len(cfg.URLs) == 0 || len(cfg.Pool) == 0 {
		return fmt.Errorf("open loop needs a rate, a URL and a pool")
	}
	maxInflight := max(cfg.MaxInflight, 1)
	open := &OpenLoop{OfferedPerS: cfg.Rate, MaxInflight: maxInflight}
	if len(cfg.URLs) > 1 {
		open.URLs = cfg.URLs
	}
	res.Open = open
	if need := int(math.Ceil(cfg.Rate * (cfg.Warmup + cfg.Duration).Seconds())); cfg.Unique && need > len(cfg.Pool) {
		// Known before the first request: fail now rather than after
		// loading the server for nothing.
		return &errPoolExhausted{Size: len(cfg.Pool), Need: need + need/20 + 1}
	}

	client := &http.Client{
		Timeout: cfg.Timeout,
		Transport: &http.Transport{
			DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			// As many idle connections as requests in flight: a burst
			// must not close connections that the next one reopens.
			MaxIdleConns:        maxInflight,
			MaxIdleConnsPerHost: maxInflight,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()

	var sinkBefore sinkStats
	if cfg.SinkStats != "" {
		var err error
		if sinkBefore, err = getSinkStats(ctx, cfg.SinkStats); err != nil {
			return fmt.Errorf("sink stats: %w", err)
		}
	}

	rec := &openRecorder{status: map[int]int64{}, errs: map[string]int64{}}
	var (
		wg       sync.WaitGroup
		expected atomic.Int64 // deliveries announced by 2xx answers
		achieved atomic.Int64 // 2xx answers received inside the window
	)
	slots := make(chan struct{}, maxInflight)
	start := time.Now()
	winStart := start.Add(cfg.Warmup)
	winEnd := winStart.Add(cfg.Duration)
	interval := float64(time.Second) / cfg.Rate

	send := func(i int64, due time.Time, inWindow bool) {
		defer wg.Done()
		defer func() { <-slots }()
		b := cfg.Pool[i%int64(len(cfg.Pool))]
		url := cfg.URLs[i%int64(len(cfg.URLs))]
		code, body, err := post(ctx, client, url, b, due, cfg.Stamp)
		t1 := time.Now()
		if code/100 == 2 && err == nil {
			if cfg.SinkStats != "" {
				expected.Add(announcedDeliveries(body))
			}
			if !t1.Before(winStart) && !t1.After(winEnd) {
				achieved.Add(1)
			}
		}
		if !inWindow {
			return
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		switch {
		case err != nil:
			rec.errs[errKind(err)]++
		case code/100 == 2:
			rec.ok++
			rec.lat = append(rec.lat, t1.Sub(due))
		default:
			rec.status[code]++
			rec.lat = append(rec.lat, t1.Sub(due))
		}
	}

	// Meters at the window's start, read off the sending loop so that
	// their reads do not delay the schedule.
	var (
		cpu               []*cpuMeter
		selfCPU           *cpuMeter
		machine, loadCore *busyMeter
		srvCore           *busyMeter
		sinkAtStart       sinkStats
		meters            = make(chan struct{})
	)
	open.LoadCPU = pinnedCPU("self")
	if len(cfg.PIDs) > 0 {
		res.ServerCPU = pinnedCPU(cfg.PIDs[0])
		for _, pid := range cfg.PIDs[1:] {
			if pinnedCPU(pid) != res.ServerCPU {
				res.ServerCPU = "" // not one CPU of their own
			}
		}
	}
	go func() {
		defer close(meters)
		sleepUntil(ctx, winStart)
		for _, pid := range cfg.PIDs {
			cpu = append(cpu, newCPUMeter(pid, cfg.ClockTicks))
		}
		selfCPU = newCPUMeter("self", cfg.ClockTicks)
		machine = newBusyMeter("cpu", cfg.ClockTicks)
		if open.LoadCPU != "" {
			loadCore = newBusyMeter(open.LoadCPU, cfg.ClockTicks)
		}
		if res.ServerCPU != "" {
			srvCore = newBusyMeter(res.ServerCPU, cfg.ClockTicks)
		}
		if cfg.SinkStats != "" {
			sinkAtStart, _ = getSinkStats(ctx, cfg.SinkStats)
		}
	}()
	var schedLag time.Duration
	// capped: the loop fell behind because it waited for a free slot (the
	// server's doing, counted as late), not for want of CPU; its lag is not
	// the scheduler's until it has caught up.
	capped := false
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var i int64
	for ; ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(float64(i) * interval))
		if !due.Before(winEnd) {
			break
		}
		if d := time.Until(due); d > 0 {
			capped = false
			// Timers overshoot by tens of microseconds or more; the
			// requests that fell due meanwhile leave back to back on the
			// next turns, their latency still counted from their due time.
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		} else if !capped {
			schedLag = max(schedLag, -d)
		}
		inWindow := !due.Before(winStart)
		select {
		case slots <- struct{}{}:
		default:
			capped = true
			if inWindow {
				rec.mu.Lock()
				rec.late++
				rec.mu.Unlock()
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				continue
			}
		}
		if inWindow {
			rec.mu.Lock()
			rec.requests++
			rec.mu.Unlock()
		}
		wg.Add(1)
		go send(i, due, inWindow)
	}
	sleepUntil(ctx, winEnd)
	<-meters
	window := time.Since(winStart)

	// The backlog at the window's end: the sink's count first, then the
	// announced deliveries, so that an answer arriving in between makes
	// the backlog larger, never smaller, than it was.
	var sinkAtEnd sinkStats
	var expectedAtEnd int64
	if cfg.SinkStats != "" {
		sinkAtEnd, _ = getSinkStats(ctx, cfg.SinkStats)
		expectedAtEnd = expected.Load()
	}
	var srvUsed time.Duration
	for _, m := range cpu {
		if d, err := m.since(); err == nil {
			srvUsed += d
		} else {
			fmt.Fprintln(stderr, "hookload ingest: server CPU:", err)
		}
	}
	if srvUsed > 0 {
		res.ServerCores = srvUsed.Seconds() / window.Seconds()
	}
	var selfUsed time.Duration
	if d, err := selfCPU.since(); err == nil {
		selfUsed = d
		res.ClientCores = d.Seconds() / window.Seconds()
	}
	if d, err := machine.since(); err == nil {
		res.OthersCores = max(0, (d-srvUsed-selfUsed).Seconds()/window.Seconds())
	}
	if loadCore != nil {
		if d, err := loadCore.since(); err == nil {
			open.LoadCPUBusy = d.Seconds() / window.Seconds()
		}
	}
	if srvCore != nil {
		if d, err := srvCore.since(); err == nil {
			res.OthersOnServerCPU = max(0, (d-srvUsed).Seconds()/window.Seconds())
		}
	}

	// The requests due in the window get their answers, however late: a
	// late answer is the measurement. client.Timeout bounds the wait.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}

	rec.mu.Lock()
	res.Requests = rec.requests
	res.OK = rec.ok
	for c, n := range rec.status {
		res.Non2xx[strconv.Itoa(c)] += n
	}
	for k, n := range rec.errs {
		res.Errors[k] += n
	}
	open.Late = rec.late
	lat := rec.lat
	rec.mu.Unlock()
	res.Latency = latencies(lat)
	res.ReqPerS = float64(res.Requests) / window.Seconds()
	open.AchievedPerS = float64(achieved.Load()) / window.Seconds()
	res.EventsPS = open.AchievedPerS
	if res.OK > 0 && srvUsed > 0 {
		res.ServerCPUUsPerReq = float64(srvUsed.Microseconds()) / float64(res.OK)
	}
	open.SchedulerLagMS = ms(schedLag)

	if cfg.SinkStats != "" {
		bl := &Backlog{Expected: expectedAtEnd, Delivered: sinkAtEnd.Unique - sinkBefore.Unique}
		bl.Events = max(bl.Expected-bl.Delivered, 0)
		bl.Seconds = float64(bl.Events) / cfg.Rate
		if sinkAtEnd.Lagged > sinkAtStart.Lagged {
			if l, n, err := getSinkLag(ctx, cfg.SinkStats, sinkAtStart.Lagged, sinkAtEnd.Lagged); err == nil && n > 0 {
				bl.Lag, bl.LagSamples = &l, n
			} else if err != nil {
				fmt.Fprintln(stderr, "hookload ingest: sink lag:", err)
			}
		}
		bl.FinalExpected = expected.Load()
		final := sinkAtEnd
		if cfg.DrainTimeout > 0 {
			final = waitDrain(ctx, cfg.SinkStats, sinkBefore.Unique+bl.FinalExpected, cfg.DrainTimeout, cfg.DrainStall, stderr)
		}
		bl.FinalDelivered = final.Unique - sinkBefore.Unique
		bl.Drained = bl.FinalDelivered >= bl.FinalExpected
		if bl.Drained && final.LastAt.After(winEnd) {
			bl.DrainS = final.LastAt.Sub(winEnd).Seconds()
		}
		open.Backlog = bl
	}
	open.Hold = judge(res, cfg.MaxP99, cfg.MaxBacklog)
	return nil
}

// post sends one pooled body; with stamp, due goes along in stampHeader.
func post(ctx context.Context, client *http.Client, url string, b signed, due time.Time, stamp bool) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b.Body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-siqsignature", b.Sig)
	if stamp {
		req.Header.Set(stampHeader, strconv.FormatInt(due.UnixMicro(), 10))
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, body, err
}

// judge applies the ladder's criteria to an open-loop result: every answer
// a 2xx, the p99 acknowledgement from the scheduled time under maxP99, and
// (with a sink) a backlog at the window's end of at most maxBacklog worth
// of the offered rate.
func judge(r *Result, maxP99, maxBacklog time.Duration) Hold {
	h := Hold{MaxP99MS: ms(maxP99), MaxBacklogS: maxBacklog.Seconds()}
	if len(r.Non2xx) > 0 {
		h.Why = append(h.Why, "non-2xx "+fmtCounts(r.Non2xx))
	}
	if len(r.Errors) > 0 {
		h.Why = append(h.Why, "errors "+fmtCounts(r.Errors))
	}
	if r.OK == 0 {
		h.Why = append(h.Why, "no 2xx")
	}
	if maxP99 > 0 && r.Latency.P99 >= h.MaxP99MS {
		h.Why = append(h.Why, fmt.Sprintf("p99 %.1f ms ≥ %.0f ms", r.Latency.P99, h.MaxP99MS))
	}
	if o := r.Open; o != nil && o.Backlog != nil && maxBacklog > 0 && o.Backlog.Seconds > h.MaxBacklogS {
		h.Why = append(h.Why, fmt.Sprintf("backlog %d events (%.2f s) > %.2f s", o.Backlog.Events, o.Backlog.Seconds, h.MaxBacklogS))
	}
	h.Held = len(h.Why) == 0
	return h
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func openHumanLine(r *Result) string {
	o := r.Open
	var b strings.Builder
	if r.Label != "" {
		fmt.Fprintf(&b, "%s: ", r.Label)
	}
	fmt.Fprintf(&b, "open loop %.0f/s offered, %.1fs: %d due, %d 2xx", o.OfferedPerS, r.DurationS, r.Requests, r.OK)
	if len(r.Non2xx) > 0 {
		fmt.Fprintf(&b, ", non-2xx %s", fmtCounts(r.Non2xx))
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, ", errors %s", fmtCounts(r.Errors))
	}
	fmt.Fprintf(&b, "; achieved %.0f/s; ack from scheduled time p50 %.2fms p90 %.2fms p99 %.2fms max %.2fms",
		o.AchievedPerS, r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max)
	fmt.Fprintf(&b, "; late %d (cap %d in flight); scheduler lag %.2fms", o.Late, o.MaxInflight, o.SchedulerLagMS)
	if r.ServerCores > 0 {
		fmt.Fprintf(&b, "; server %.2f cores", r.ServerCores)
		if r.ServerCPU != "" {
			fmt.Fprintf(&b, " (others %.2f on its %s)", r.OthersOnServerCPU, r.ServerCPU)
		}
	}
	fmt.Fprintf(&b, "; client %.2f cores", r.ClientCores)
	if o.LoadCPU != "" {
		fmt.Fprintf(&b, " (its %s %.2f busy)", o.LoadCPU, o.LoadCPUBusy)
	}
	fmt.Fprintf(&b, "; others %.2f cores", r.OthersCores)
	if bl := o.Backlog; bl != nil {
		fmt.Fprintf(&b, "; backlog at window end %d events (%.2f s), %d/%d delivered then", bl.Events, bl.Seconds, bl.Delivered, bl.Expected)
		if bl.Lag != nil {
			fmt.Fprintf(&b, "; delivery lag p50 %.1fms p99 %.1fms max %.1fms (%d)", bl.Lag.P50, bl.Lag.P99, bl.Lag.Max, bl.LagSamples)
		}
		fmt.Fprintf(&b, "; after: %d/%d delivered", bl.FinalDelivered, bl.FinalExpected)
		if bl.Drained {
			fmt.Fprintf(&b, " (%.1fs after the window)", bl.DrainS)
		} else {
			b.WriteString(" NOT DRAINED")
		}
	}
	if o.Hold.Held {
		b.WriteString("; HELD")
	} else {
		fmt.Fprintf(&b, "; NOT HELD: %s", strings.Join(o.Hold.Why, "; "))
	}
	return b.String()
}

// getSinkLag asks the sink whose /stats is at statsURL for the delivery
// lags recorded between its from-th and to-th stamped delivery.
func getSinkLag(ctx context.Context, statsURL string, from, to int64) (LatencyMS, int64, error) {
	base, ok := strings.CutSuffix(statsURL, "/stats")
	if !ok {
		return LatencyMS{}, 0, fmt.Errorf("%s does not end in /stats", statsURL)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/lag?from=%d&to=%d", base, from, to), nil)
	if err != nil {
		return LatencyMS{}, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return LatencyMS{}, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return LatencyMS{}, 0, fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	var a lagAnswer
	err = json.NewDecoder(resp.Body).Decode(&a)
	return a.Lag, a.N, err
}

// ingestOpen runs an open-loop ingest and prints its result as cmdIngest
// does.
func ingestOpen(ctx context.Context, res *Result, cfg openConfig, asJSON bool, stdout, stderr io.Writer) int {
	res.URL = strings.Join(cfg.URLs, ",")
	res.Concurrency = 0
	if err := runOpen(ctx, cfg, res, stderr); err != nil {
		fmt.Fprintln(stderr, "hookload ingest:", err)
		var pe *errPoolExhausted
		if errors.As(err, &pe) {
			return 3
		}
		return 1
	}
	fmt.Fprintln(stdout, openHumanLine(res))
	if asJSON {
		b, _ := json.Marshal(res)
		fmt.Fprintln(stdout, string(b))
	}
	if res.OK == 0 {
		return 1
	}
	return 0
}
