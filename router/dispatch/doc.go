// Package dispatch is hookroute's engine: it turns a config (router/config)
// into a Runtime, takes webhooks in, and delivers them.
//
//   - Sources: compiled from their kinds (router/source), with what the
//     engine adds: headers dropped before storing, and send's signing.
//   - Rules: compiling when: and the route templates (compile.go,
//     template.go), and explaining why a rule did not match (explain.go).
//   - Ingest: verify, decode, match, commit, answer (ingest.go).
//   - Delivery: one worker pool per sink (worker.go), the retry decision
//     (nextStep), backpressure (backpressure.go), the view cache, pausing,
//     retention and reload (ops.go), outbound signing keys (keys.go).
//   - Operators: what the admin API (router/admin) asks of the engine
//     (engine.go, replay.go), trial runs and rule tests (trial.go,
//     ruletest.go, samples.go, redact.go), metrics (metrics.go).
//
// It depends on the domain (package router) and on router/config; main
// wires it to a store and to the sinks package's SinkFactory.
package dispatch
