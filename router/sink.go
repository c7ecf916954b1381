package router

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// A Sink delivers routed events to one external system.
//
// Deliver must honour ctx and be safe for concurrent use. A nil error means
// the far side accepted the delivery. Any other error is retried with
// backoff unless it is marked with Permanent; a *RetryAfterError sets a
// floor under the next attempt. Sinks return errors and never log them: the
// worker logs each failure once.
type Sink interface {
	Deliver(ctx context.Context, d *Delivery) (Result, error)
}

// Delivery is one (event, rule, route) to be sent to one sink. ID is stable
// across retries and replays, so sinks pass it on as an idempotency key.
type Delivery struct {
	ID      string
	Rule    string
	Sink    string
	Attempt int // 1 for the first attempt
	// Event is the event view (the same data templates see), ready to be
	// marshalled as JSON. It is nil when EventJSON is set.
	Event map[string]any
	// EventJSON, when set, is the event view as JSON: the bytes Event
	// marshals to (sorted keys, no HTML escaping), built straight from
	// the stored body. The worker sets it, and leaves Event nil, only for
	// a sink that is an EventJSONSink, on a route with no fields and no
	// dedup key, for events of a source that can write it (salesiq).
	EventJSON []byte
	// Fields holds the route's message fields (text, subject, body, …),
	// already rendered for this event.
	Fields map[string]string
	// DedupKey is the route's rendered dedup_key ("" when it has none): it
	// names the remote object this delivery is about.
	DedupKey string
	// RemoteID is the object created earlier for DedupKey (a ticket id, an
	// issue key, a Slack message ts), "" if none: a sink that finds it set
	// follows up on that object (a comment) instead of creating another.
	// Deliveries with one key never run at once.
	RemoteID string
	// RemoteLink is what was recorded with RemoteID (nil if nothing
	// was): a Slack root's channel, for instance.
	RemoteLink Link
	// SigningKey is the sink's current outbound signing key (the oldest
	// of its keys), set by the worker for a sink whose Secured() is true
	// and nil otherwise; such a delivery is never handed over without
	// one. A sink signs with it and must never log, return or send it.
	SigningKey *rsa.PrivateKey `json:"-"`
}

// EventJSONSink is implemented by sinks that, on a route that sets no
// fields and no dedup key, read a delivery's event only as JSON (the http
// sink's default body). EventJSONOnly reports whether this one does; if
// so, the worker hands such deliveries Delivery.EventJSON instead of
// Event, which spares it decoding the view and encoding it again, the
// largest step of such a delivery.
type EventJSONSink interface {
	EventJSONOnly() bool
}

// Secured is implemented by sinks that may sign what they send with a key
// from the key API (an http sink with secured: true). Secured reports
// whether this one does; if so, the worker holds its deliveries back,
// without spending attempts, until the sink has a key, and hands each
// attempt the key in Delivery.SigningKey.
type Secured interface {
	Secured() bool
}

// Result describes what the far side answered. StatusCode is 0 when no HTTP
// response was received. RemoteID names the object created, where the sink
// knows it (a Slack message ts, a ticket id).
type Result struct {
	StatusCode int
	RemoteID   string
	// Link describes the object RemoteID names, for the templates of
	// other routes with the same dedup key value (.links). nil keeps what
	// was recorded before.
	Link Link
}

// Link describes a remote object created for a dedup key, as templates
// read it under .links.SINK: "id" (always; the RemoteID), "url" where the
// object has a web page a person can open, and what its kind adds
// ("channel", "ts" for a Slack message, "key" for a Jira issue, "number"
// for a ticket or issue with one). It is a map so that templates name
// its entries in lower case, as they name the event's.
type Link map[string]string

// FieldSpec describes one message field of a route (text, subject, body…).
// Every field is a text/template over the event view.
type FieldSpec struct {
	Name     string
	Required bool
	// Escape is applied to every value the template interpolates, so that
	// visitor-typed text cannot inject markup into the target format
	// (Slack mrkdwn, JSON strings, HTML). nil means no escaping. A value
	// passed through the template function raw is not escaped.
	Escape func(string) string
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: the delivery goes dead at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked
// Permanent, or says of itself that it is not retryable (slack-go's
// errors and the egress guard's refusals implement Retryable).
func IsPermanent(err error) bool {
	var p *permanentError
	if errors.As(err, &p) {
		return true
	}
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return !r.Retryable()
	}
	return false
}

// RetryAfterError is a retryable error whose sender asked us to wait at
// least After before the next attempt (HTTP Retry-After, Slack rate limits).
type RetryAfterError struct {
	Err   error
	After time.Duration
	// Local marks a wait that hookroute's own pacing asks for (a Slack
	// channel's budget), not the far side: the delivery waits without
	// spending an attempt, but the sink's other deliveries are not held.
	Local bool
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfterOf returns the wait an error asks for, or 0.
func RetryAfterOf(err error) time.Duration {
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return ra.After
	}
	return 0
}

// maxRetryAfter caps a server's Retry-After so that a hostile or broken
// answer cannot park a delivery for days.
const maxRetryAfter = time.Hour

// ParseRetryAfter reads an HTTP Retry-After value, in seconds or as an HTTP
// date, relative to now. It returns 0 when the header is absent or invalid.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// Paced is implemented by sinks whose far side limits how fast messages
// may arrive (Slack: about one per second per channel). The worker calls
// Pace before it claims, so pacing never eats into a lease or an
// attempt's timeout.
type Paced interface {
	// Pace waits until the far side may take another message, or until
	// ctx is done (then it returns ctx's error).
	Pace(ctx context.Context) error
}

// IsSecured reports whether s signs with a key from the key API.
func IsSecured(s Sink) bool {
	sec, ok := s.(Secured)
	return ok && sec.Secured()
}

// Encode returns the link as stored: a JSON object, "" for nil.
func (l Link) Encode() string {
	if l == nil {
		return ""
	}
	b, err := json.Marshal(map[string]string(l))
	if err != nil {
		return "" // a map of strings always marshals
	}
	return string(b)
}

// ParseLink reads a stored link; "" and anything unreadable are nil, so
// that a damaged row costs its link, not the delivery.
func ParseLink(s string) Link {
	if s == "" {
		return nil
	}
	var l Link
	if json.Unmarshal([]byte(s), &l) != nil {
		return nil
	}
	return l
}

// RouteChecker is implemented by sinks that refuse some routes a field
// list cannot describe: keys that only make sense together, or not with
// how the sink is set up (a Slack webhook cannot update a message).
type RouteChecker interface {
	// CheckRoute is given the route's keys with their values as written
	// (lists and maps as ""), and returns a problem per key it refuses.
	CheckRoute(keys map[string]string) []RouteProblem
}

// RouteProblem is a route key a sink refuses and why. Key "" means the
// route as a whole.
type RouteProblem struct {
	Key, Msg string
}

// Planner is implemented by sinks that can say, for a trial, what a
// delivery with fields would do on a route with a dedup key: exists says
// whether an object was recorded for the key ("post the root, then reply
// in its thread"; "update the root, reply in the thread").
type Planner interface {
	Plan(fields map[string]string, exists bool) string
}
