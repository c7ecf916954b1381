package dispatch

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookroute/hookroute/router"
)

// Metrics are the router's Prometheus metrics. Label values come from
// closed sets (source and sink names from the config, outcomes from
// constants): never URLs or error text.
type Metrics struct {
	events   *prometheus.CounterVec
	attempts *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	reloads  *prometheus.CounterVec
	replays  prometheus.Counter
	unsigned *prometheus.CounterVec
	deferred *prometheus.CounterVec
	outcomes *prometheus.CounterVec
	timersC  *prometheus.CounterVec
	pushback *prometheus.CounterVec

	mu        sync.Mutex
	store     router.Store
	now       func() time.Time
	sinks     func() []string // configured sinks: shown at 0 when idle
	paused    func(string) bool
	flying    func() int // webhook requests in flight
	pending   *prometheus.Desc
	dead      *prometheus.Desc
	oldest    *prometheus.Desc
	pausedD   *prometheus.Desc
	commits   *prometheus.Desc
	writes    *prometheus.Desc
	flyingD   *prometheus.Desc
	silencesD *prometheus.Desc
	groupsD   *prometheus.Desc
	timersD   *prometheus.Desc
}

// NewMetrics registers the metrics on reg (nil: a private registry, for
// tests and tools).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookroute_events_total",
			Help: "Webhook requests received, by source and outcome (accepted, duplicate, unauthorized, too_large, quarantined, store_error, bad_request, handshake).",
		}, []string{"source", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookroute_delivery_attempts_total",
			Help: "Delivery attempts, by sink and outcome (delivered, retry, dead).",
		}, []string{"sink", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hookroute_delivery_attempt_duration_seconds",
			Help:    "Duration of delivery attempts, by sink.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"sink"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookroute_config_reloads_total",
			Help: "Config reloads, by result (success, failure).",
		}, []string{"result"}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hookroute_deliveries_replayed_total",
			Help: "Deliveries put back to pending by an operator.",
		}),
		unsigned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookroute_unsigned_waiting_total",
			Help: "Times a delivery to a secured sink was put back to wait, unattempted, because the sink had no usable signing key, by sink.",
		}, []string{"sink"}),
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookroute_delivery_claims_deferred_total",
			Help: "Claims a sink's workers held back because the ingest was saturated (acknowledgements first), by sink.",
		}, []string{"sink"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookroute_delivery_outcomes_total",
			Help: "Deliveries held back or set aside without an attempt, by sink and outcome (deferred: outside their route's schedule; suppressed: by a cooldown or when_closed: drop; silenced; grouped: joined a digest).",
		}, []string{"sink", "outcome"}),
		timersC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookroute_timer_deliveries_total",
			Help: "Deliveries of rules with unless: that this replica fired (their timer ran out) or cancelled (a later event came in time), by outcome.",
		}, []string{"outcome"}),
		pushback: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookroute_delivery_backpressure_total",
			Help: "Attempts the receiver refused for load with a time to come back (429 or 503 with Retry-After, Slack ratelimited), which spent no attempt, by sink.",
		}, []string{"sink"}),
		pending:   prometheus.NewDesc("hookroute_deliveries_pending", "Deliveries waiting for their first or next attempt, by sink.", []string{"sink"}, nil),
		dead:      prometheus.NewDesc("hookroute_deliveries_dead", "Dead deliveries (dead letters) kept, by sink.", []string{"sink"}, nil),
		pausedD:   prometheus.NewDesc("hookroute_sink_paused", "1 while a sink is paused after failing continuously, by sink.", []string{"sink"}, nil),
		oldest:    prometheus.NewDesc("hookroute_oldest_pending_seconds", "Age of the oldest due pending delivery, by sink.", []string{"sink"}, nil),
		commits:   prometheus.NewDesc("hookroute_store_commits_total", "Transactions the store's group committer committed (one fsync each).", nil, nil),
		writes:    prometheus.NewDesc("hookroute_store_commit_writes_total", "Writes (ingests, claims, finishes) carried by those transactions.", nil, nil),
		flyingD:   prometheus.NewDesc("hookroute_ingest_in_flight", "Verified webhook requests waiting for their commit.", nil, nil),
		silencesD: prometheus.NewDesc("hookroute_silences_active", "Silences in force now, on every replica.", nil, nil),
		groupsD:   prometheus.NewDesc("hookroute_groups_open", "Groups (of grouped rules) waiting to flush, on every replica.", nil, nil),
		timersD:   prometheus.NewDesc("hookroute_timers_waiting", "Deliveries of rules with unless: waiting for their timer, on every replica.", nil, nil),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.attempts, m.latency, m.reloads, m.replays, m.unsigned, m.deferred, m.outcomes, m.timersC, m.pushback, m)
	}
	return m
}

func (m *Metrics) event(source, outcome string) { m.events.WithLabelValues(source, outcome).Inc() }

func (m *Metrics) attempt(sink, outcome string, d time.Duration) {
	m.attempts.WithLabelValues(sink, outcome).Inc()
	m.latency.WithLabelValues(sink).Observe(d.Seconds())
}

func (m *Metrics) reloaded(result string) { m.reloads.WithLabelValues(result).Inc() }

func (m *Metrics) replayed(n int) { m.replays.Add(float64(n)) }

func (m *Metrics) unsignedWaiting(sink string) { m.unsigned.WithLabelValues(sink).Inc() }

func (m *Metrics) pushedBack(sink string) { m.pushback.WithLabelValues(sink).Inc() }

func (m *Metrics) claimDeferred(sink string) { m.deferred.WithLabelValues(sink).Inc() }

// timers counts n timer deliveries fired or cancelled.
func (m *Metrics) timers(outcome string, n int) {
	if n > 0 {
		m.timersC.WithLabelValues(outcome).Add(float64(n))
	}
}

// outcome counts a delivery held back without an attempt.
func (m *Metrics) outcome(sink, outcome string) { m.outcomes.WithLabelValues(sink, outcome).Inc() }

func (m *Metrics) watchStore(s router.Store, now func() time.Time, sinks func() []string, paused func(string) bool, flying func() int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.store, m.now, m.sinks, m.paused, m.flying = s, now, sinks, paused, flying
}

// Describe implements prometheus.Collector for the gauges read at scrape
// time.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.pending
	ch <- m.dead
	ch <- m.oldest
	ch <- m.pausedD
	ch <- m.commits
	ch <- m.writes
	ch <- m.flyingD
	ch <- m.silencesD
	ch <- m.groupsD
	ch <- m.timersD
}

// Collect reads the queue depth from the store at scrape time, so the
// gauges are right after a restart and across replicas.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	s, now, sinks, paused, flying := m.store, m.now, m.sinks, m.paused, m.flying
	m.mu.Unlock()
	if s == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(m.flyingD, prometheus.GaugeValue, float64(flying()))
	if gc, ok := s.(router.GroupCommitter); ok {
		c, w := gc.GroupCommitStats()
		ch <- prometheus.MustNewConstMetric(m.commits, prometheus.CounterValue, float64(c))
		ch <- prometheus.MustNewConstMetric(m.writes, prometheus.CounterValue, float64(w))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if sls, err := s.Silences(ctx); err == nil {
		active := 0
		for _, sl := range sls {
			if sl.State(now()) == router.SilenceActive {
				active++
			}
		}
		ch <- prometheus.MustNewConstMetric(m.silencesD, prometheus.GaugeValue, float64(active))
	}
	if n, err := s.OpenGroups(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(m.groupsD, prometheus.GaugeValue, float64(n))
	}
	if n, err := s.WaitingTimers(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(m.timersD, prometheus.GaugeValue, float64(n))
	}
	stats, err := s.PendingCounts(ctx, now())
	if err != nil {
		return
	}
	if stats == nil {
		stats = map[string]router.PendingStat{}
	}
	for _, sink := range sinks() {
		if _, ok := stats[sink]; !ok {
			stats[sink] = router.PendingStat{}
		}
	}
	for sink, st := range stats {
		ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(st.Pending), sink)
		ch <- prometheus.MustNewConstMetric(m.dead, prometheus.GaugeValue, float64(st.Dead), sink)
		ch <- prometheus.MustNewConstMetric(m.oldest, prometheus.GaugeValue, st.OldestDueAge.Seconds(), sink)
		p := 0.0
		if paused(sink) {
			p = 1
		}
		ch <- prometheus.MustNewConstMetric(m.pausedD, prometheus.GaugeValue, p, sink)
	}
}
