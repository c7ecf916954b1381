// Package dispatch is hookroute's engine: it takes webhooks in and delivers
// them, under a Runtime compiled by router/rules.
//
//   - Ingest: verify, decode, match, commit, answer (ingest.go).
//   - Delivery: one worker pool per sink (worker.go), the retry decision
//     (nextStep), backpressure (backpressure.go), the view cache, pausing,
//     retention and reload (ops.go), outbound signing keys (keys.go).
//   - Operators: what the admin API (router/admin) asks of the engine
//     (engine.go, replay.go), the trial's samples (samples.go), metrics
//     (metrics.go).
//
// It depends on the domain (package router), router/config, router/source
// and router/rules; main wires it to a store and to the sinks package's
// SinkFactory.
package dispatch
