// Package router is hookroute's domain: the records the store keeps
// (events, deliveries, attempts, sink states, signing keys), the Store and
// its parts (Queue, History, SinkControl, KeyStore), the Sink interface
// with its capabilities and error markers (Permanent, RetryAfterError),
// Secret, and the event view rules and templates see (View, Incoming, the
// typed SalesIQ view). It imports nothing outside the standard library, so
// every other package can depend on it and it on none of them.
//
// Data flows one way (docs/ARCHITECTURE.md draws it):
//
//	POST /hooks/{source} → read raw body (capped) → verify signature
//	  → decode (source kind) → event id → evaluate every rule
//	  → Store.Ingest: event + one delivery per (rule, route) in one transaction
//	  → 202 only after the commit
//	workers (one pool per sink) → Store.Claim (lease) → render → Sink.Deliver
//	  → delivered | pending again at next_attempt_at | dead
//
// The engine is router/dispatch, the config file router/config, the stores
// router/sqlite and router/postgres (router/storetest is the conformance
// suite every store passes), the integrations package sinks.
//
// The package has no API stability promise: it exists for the hookroute
// binary.
package router
