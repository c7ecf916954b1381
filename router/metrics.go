package router

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the router's Prometheus metrics. Label values come from
// closed sets (source and sink names from the config, outcomes from
// constants): never URLs or error text.
type Metrics struct {
	events   *prometheus.CounterVec
	attempts *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	mu      sync.Mutex
	store   Store
	now     func() time.Time
	sinks   func() []string // configured sinks: shown at 0 when idle
	pending *prometheus.Desc
	oldest  *prometheus.Desc
}

// NewMetrics registers the metrics on reg (nil: a private registry, for
// tests and tools).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hookroute_events_total",
			Help: "Webhook requests received, by source and outcome (accepted, duplicate, unauthorized, too_large, quarantined, store_error, bad_request).",
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
		pending: prometheus.NewDesc("hookroute_deliveries_pending", "Deliveries waiting for their first or next attempt, by sink.", []string{"sink"}, nil),
		oldest:  prometheus.NewDesc("hookroute_oldest_pending_seconds", "Age of the oldest due pending delivery, by sink.", []string{"sink"}, nil),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.attempts, m.latency, m)
	}
	return m
}

func (m *Metrics) event(source, outcome string) { m.events.WithLabelValues(source, outcome).Inc() }

func (m *Metrics) attempt(sink, outcome string, d time.Duration) {
	m.attempts.WithLabelValues(sink, outcome).Inc()
	m.latency.WithLabelValues(sink).Observe(d.Seconds())
}

func (m *Metrics) watchStore(s Store, now func() time.Time, sinks func() []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.store, m.now, m.sinks = s, now, sinks
}

// Describe implements prometheus.Collector for the store-backed gauges.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.pending
	ch <- m.oldest
}

// Collect reads the queue depth from the store at scrape time, so the
// gauges are right after a restart and across replicas.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	s, now, sinks := m.store, m.now, m.sinks
	m.mu.Unlock()
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stats, err := s.PendingCounts(ctx, now())
	if err != nil {
		return
	}
	if stats == nil {
		stats = map[string]PendingStat{}
	}
	for _, sink := range sinks() {
		if _, ok := stats[sink]; !ok {
			stats[sink] = PendingStat{}
		}
	}
	for sink, st := range stats {
		ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(st.Pending), sink)
		ch <- prometheus.MustNewConstMetric(m.oldest, prometheus.GaugeValue, st.OldestDueAge.Seconds(), sink)
	}
}
