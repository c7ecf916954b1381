// Package router is hookroute's domain and engine: configuration, the event
// view that rules and templates see, rule compilation, ingest (verify →
// decode → match → one transaction), the delivery workers and the HTTP
// servers.
//
// Data flows one way:
//
//	POST /hooks/{source} → read raw body (capped) → verify signature
//	  → decode (source adapter) → event id → evaluate every rule
//	  → Store.Ingest: event + one delivery per (rule, route) in one transaction
//	  → 202 only after the commit
//	workers (one pool per sink) → Store.Claim (lease) → render → Sink.Deliver
//	  → delivered | pending again at next_attempt_at | dead
//
// The router never imports the sinks: main hands it a SinkFactory. Storage
// lives behind Store; its implementations are in the sqlite subpackage, and
// storetest holds the conformance suite every implementation must pass.
//
// The package has no API stability promise: it exists for the hookroute
// binary.
package router
