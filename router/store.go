package router

import (
	"context"
	"errors"
	"time"
)

// Delivery status values, as stored and as shown to operators.
const (
	StatusPending   = "pending"   // waiting for its first or next attempt
	StatusDelivered = "delivered" // the sink accepted it
	StatusDead      = "dead"      // permanent error, or attempts used up
	// StatusSuppressed and StatusSilenced are deliveries set aside
	// without an attempt (SetAside): by a route's cooldown or schedule,
	// or by a silence. A replay sends them after all.
	StatusSuppressed = "suppressed"
	StatusSilenced   = "silenced"
	// StatusGrouped is a delivery that joined its route's group: the
	// group's carrier delivery sends the notification for all of them.
	StatusGrouped = "grouped"
	// StatusWaiting is a delivery of a rule with unless: that waits for
	// its timer: at its NextAttemptAt it becomes pending (fired), unless
	// a later event cancels it first (StatusCancelled).
	StatusWaiting   = "waiting"
	StatusCancelled = "cancelled"
)

// Attempt outcomes, recorded per attempt. The set is closed so that it can
// be used as a metric label.
const (
	OutcomeDelivered = "delivered" // accepted by the sink
	OutcomeRetry     = "retry"     // failed, another attempt is scheduled
	OutcomeDead      = "dead"      // failed, and no attempt will follow
)

// ErrLeaseLost is returned by Store.Finish when the caller no longer holds
// the delivery's lease (it expired and another worker claimed it). The
// attempt's result is then not recorded; the new holder will deliver again.
var ErrLeaseLost = errors.New("store: lease lost")

// ErrNotFound is returned when a looked-up record does not exist.
var ErrNotFound = errors.New("store: not found")

// EventRecord is an ingested event as stored. Body holds the raw bytes as
// received (they were verified), so the event view can be rebuilt at any
// time by the source's adapter.
type EventRecord struct {
	Source      string
	ID          string // dedup id, unique per source
	Name        string // event name, e.g. conversation.rated
	ReceivedAt  time.Time
	Headers     map[string]string // lower-cased names
	Body        []byte
	Quarantined bool     // verified, but the body could not be decoded
	Matched     []string // names of the rules that matched
	// BodyHash, when set, is a second dedup key, unique per source: the
	// SHA-256 of a body whose signature covers neither an id nor a time,
	// so that the body cannot be stored again under a new, unsigned id.
	// It is kept as long as the event. Written by Ingest only; reads
	// leave it nil.
	BodyHash []byte
}

// RemoteObject is what a sink created for a dedup key.
type RemoteObject struct {
	ID   string // the Result's RemoteID; "" while none was created
	Link Link   // nil when none was recorded
}

// NewDelivery is a delivery created at ingest.
type NewDelivery struct {
	ID            string
	Rule          string
	Route         int // index in the rule's to: list
	Sink          string
	NextAttemptAt time.Time
	// LeaseOwner, when not empty, leases the delivery to that owner until
	// LeaseUntil from the moment it is stored, as a claim would: the
	// process that ingests it hands it to its own worker in memory, with
	// no claim to write, and every other worker leaves it alone until the
	// lease ends (then it is due again, as after a crash mid-attempt).
	LeaseOwner string
	LeaseUntil time.Time
	// TimerKey, when set, stores the delivery waiting (StatusWaiting)
	// until NextAttemptAt, under the timer key that CancelTimers finds
	// it by.
	TimerKey string
}

// Claimed is a delivery leased to a worker, with its event.
type Claimed struct {
	ID       string
	Rule     string
	Route    int
	Sink     string
	Attempts int // attempts made before this one
	// Throttled counts the backpressure answers (Finish.Backpressure)
	// this delivery has had since it was created or last replayed; they
	// are not in Attempts.
	Throttled int
	// Due is the delivery's next_attempt_at when it was claimed: its place
	// in the queue, which a delivery handed back unattempted keeps.
	Due   time.Time
	Event *EventRecord
}

// AttemptRecord is one attempt, for the delivery log.
type AttemptRecord struct {
	At         time.Time
	Duration   time.Duration
	Outcome    string // OutcomeDelivered, OutcomeRetry or OutcomeDead
	StatusCode int    // 0 when no HTTP answer was received
	Error      string // empty on success; secrets already redacted
	RemoteID   string
}

// Finish describes what follows an attempt.
type Finish struct {
	Attempt AttemptRecord
	// Status is the delivery's new status: StatusDelivered, StatusPending
	// (NextAttemptAt says when) or StatusDead.
	Status        string
	NextAttemptAt time.Time
	// NotBefore is the far side's Retry-After floor for a pending
	// delivery (zero: none). NextAttemptAt already respects it; it is
	// kept so that a resumed sink, whose waiting retries fall due at once,
	// still sends none of them before its floor.
	NotBefore time.Time
	// Backpressure marks an attempt the far side refused for load, with a
	// time to come back (429 or 503 with Retry-After). It is logged like
	// any attempt, but counts toward the delivery's Throttled instead of
	// its Attempts, so that a receiver's rate limit never uses up a
	// delivery's attempts.
	Backpressure bool
}

// DeliveryRecord is a delivery as shown in the delivery log.
type DeliveryRecord struct {
	ID            string
	Source        string
	EventID       string
	Rule          string
	Route         int
	Sink          string
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
	LastError     string
	RemoteID      string
	Leased        bool            // in flight now
	Replays       int             // times an operator replayed it
	ReplayedBy    string          // the admin token name of the last replay
	ReplayedAt    time.Time       // when
	AttemptLog    []AttemptRecord // filled by GetDelivery only
}

// Store keeps events, deliveries and their attempts. The deliveries table
// is the queue: workers claim due rows with a lease, and the same rows are
// the delivery log. Implementations must be safe for concurrent use.
type Store interface {
	Queue
	History
	SinkControl
	KeyStore
	SilenceStore

	// Ping reports whether the store can be reached.
	Ping(ctx context.Context) error

	// ProbeWrite writes and commits one tiny row, as durably as Ingest,
	// and reports whether it could: a store can answer pings and still
	// refuse commits (a full disk), and /readyz must tell (see
	// Router.Ready).
	ProbeWrite(ctx context.Context) error

	// Close releases the store's resources.
	Close() error
}

// Queue is the store as the engine sees it: events and their deliveries
// committed together, leased to workers, finished, and the dedup-key locks
// that keep one remote object per key. The deliveries table is the queue.
type Queue interface {
	// Ingest commits ev and all of ds in one transaction, durably, before
	// it returns. If an event with the same (Source, ID) exists, or with
	// the same (Source, BodyHash) when BodyHash is set, it writes nothing,
	// reports duplicate and sets ev.ID to the stored event's id (which
	// differs from the one given for a duplicate found by BodyHash).
	Ingest(ctx context.Context, ev *EventRecord, ds []NewDelivery) (duplicate bool, err error)

	// Claim leases up to max pending deliveries of sink that are due at now
	// and not leased by anyone (or whose lease ran out), to owner until
	// now+lease, oldest due first. While the sink is held (HoldSink) it
	// leases nothing.
	Claim(ctx context.Context, sink, owner string, now time.Time, lease time.Duration, max int) ([]*Claimed, error)

	// Finish records an attempt and moves the delivery to its next state,
	// releasing the lease, in one transaction. It returns ErrLeaseLost, and
	// changes nothing, if owner no longer holds the lease.
	Finish(ctx context.Context, id, owner string, f Finish) error

	// Release drops leases without recording an attempt, so the deliveries
	// can be claimed again at once: those of owner, or all when owner is ""
	// (SQLite at start, where one process owns the file).
	Release(ctx context.Context, owner string) error

	// NextDue returns the earliest time at which a pending delivery of sink
	// can be claimed — the later of its next_attempt_at and its lease's
	// end, so that an idle worker does not spin on a delivery in flight —
	// and false if there are none.
	NextDue(ctx context.Context, sink string) (time.Time, bool, error)

	// Postpone puts a claimed delivery back to wait until until, releasing
	// the lease without recording an attempt (its dedup key was busy, its
	// route's schedule is closed). why, unless "", becomes its LastError,
	// so that the log says why it waits. It returns ErrLeaseLost if owner
	// no longer holds the lease.
	Postpone(ctx context.Context, id, owner string, until time.Time, why string) error

	// SetAside ends a claimed delivery without an attempt, as status
	// (StatusSuppressed, StatusSilenced or StatusGrouped), with why as its
	// LastError (the cooldown, silence or group that set it aside). It returns ErrLeaseLost if
	// owner no longer holds the lease.
	SetAside(ctx context.Context, id, owner, status, why string, at time.Time) error

	// Cooldown takes a route's cooldown for the key value key (scope names
	// the rule and route) for delivery id, for d from now, unless another
	// delivery holds it unexpired: then that one's id is returned, and the
	// cooldown counts one more suppressed. A delivery that takes it gets
	// the count the expired one suppressed (carried); taking it again (a
	// retry) changes nothing and returns the same.
	Cooldown(ctx context.Context, scope, key, id string, now time.Time, d time.Duration) (holder string, carried int, err error)

	// ReleaseCooldown ends the cooldown scope/key at now if delivery holds
	// it: a delivery that went dead sent nothing, and must not keep others
	// from being sent. What the cooldown suppressed carries over to the
	// next holder as usual.
	ReleaseCooldown(ctx context.Context, scope, key, delivery string, now time.Time) error

	// GroupOf returns the batch a delivery joined, "" if it joined none.
	GroupOf(ctx context.Context, delivery string) (string, error)

	// FireTimers makes up to max waiting deliveries due by now pending,
	// and returns them (id and sink). A delivery fires or is cancelled,
	// never both: both are one conditional update of its status.
	FireTimers(ctx context.Context, now time.Time, max int) ([]FiredTimer, error)

	// CancelTimers cancels every waiting delivery with timerKey, noting
	// the event that cancelled it (by), and returns how many.
	CancelTimers(ctx context.Context, timerKey, by string, at time.Time) (int, error)

	// Timers lists the waiting timers, earliest due first: one per timer
	// key and first event, with its waiting deliveries (see Timer). It
	// reads only waiting deliveries, so its cost grows with what waits,
	// not with the delivery log.
	Timers(ctx context.Context) ([]Timer, error)

	// CancelTimer cancels the waiting deliveries of one timer: those with
	// timerKey of the event source/eventID, and not those another first
	// event with equal same: values stored under the same key (which
	// CancelTimers would cancel too). by says who, as "cancelled by "+by
	// in their LastError (an operator: "operator NAME"). It returns how
	// many it cancelled; 0 when the timer fired, was cancelled or never
	// was. Like CancelTimers it is one conditional update per delivery,
	// so a delivery it cancels never fires.
	CancelTimer(ctx context.Context, timerKey, source, eventID, by string, at time.Time) (int, error)

	// WaitingTimers counts the waiting deliveries of every timer, for the
	// hookroute_timers_waiting gauge: a count over the waiting ones'
	// index, cheaper at every scrape than listing them with Timers.
	WaitingTimers(ctx context.Context) (int, error)

	// CooldownHolder returns the delivery holding the cooldown scope/key
	// at now and until when, "" if none does (for trials; it changes
	// nothing).
	CooldownHolder(ctx context.Context, scope, key string, now time.Time) (holder string, until time.Time, err error)

	// JoinGroup puts delivery (of the event source/eventID, received at
	// receivedAt) into the open batch of the group scope/key, or opens
	// one it carries, due to flush at the later of now+wait and the
	// group's last flush plus interval. It returns the batch (the
	// carrier's delivery id: delivery itself when it opened it) and when
	// it flushes. A delivery that joined before gets the same answer.
	JoinGroup(ctx context.Context, m GroupMember, now time.Time, wait, interval time.Duration) (batch string, flushAt time.Time, err error)

	// OpenGroups counts the groups with an open batch, waiting to flush.
	OpenGroups(ctx context.Context) (int, error)

	// FlushGroup closes batch, if it is still its group's open one, as
	// flushed at now (a later delivery opens the next), and returns its
	// members in the order they arrived. Calling it again returns the
	// same members.
	FlushGroup(ctx context.Context, batch string, now time.Time) ([]GroupMember, error)

	// AcquireKey locks a route's dedup key (per sink) for owner until
	// now+lease and returns the remote object recorded for it, with an
	// empty ID if none yet. The lock is what keeps two deliveries with one
	// key from creating two remote objects, across workers and replicas.
	// ok is false, and nothing changes, while another owner holds an
	// unexpired lock; the same owner may take it again.
	AcquireKey(ctx context.Context, sink, key, owner string, now time.Time, lease time.Duration) (obj RemoteObject, ok bool, err error)

	// ReleaseKey drops owner's lock on the key, recording obj for it
	// first: obj.ID unless it is "", and obj.Link unless it is nil (a
	// new ID with a nil Link clears the old link, which described
	// another object). A lock owner no longer holds is left alone.
	ReleaseKey(ctx context.Context, sink, key, owner string, obj RemoteObject) error

	// Links returns, per sink, the remote objects recorded for the dedup
	// key value key, each Link with its "id"; sinks with no object yet
	// are absent.
	Links(ctx context.Context, key string) (map[string]Link, error)

	// PendingFor reports whether the event has a pending delivery to one
	// of sinks, and the earliest next attempt among them: a route with
	// after: waits for those.
	PendingFor(ctx context.Context, source, eventID string, sinks []string) (due time.Time, pending bool, err error)
}

// History is what operators read and act on: events, deliveries and their
// attempts, replays, and retention.
type History interface {
	// GetEvent returns one event, or ErrNotFound.
	GetEvent(ctx context.Context, source, id string) (*EventRecord, error)

	// GetDelivery returns one delivery with every attempt, or ErrNotFound.
	GetDelivery(ctx context.Context, id string) (*DeliveryRecord, error)

	// ListDeliveries returns deliveries matching f, newest first (by
	// CreatedAt, then ID, both descending).
	ListDeliveries(ctx context.Context, f DeliveryFilter) ([]*DeliveryRecord, error)

	// ListEvents returns events matching f, newest first (by ReceivedAt,
	// then Source and ID, all descending), without their bodies.
	ListEvents(ctx context.Context, f EventFilter) ([]*EventRecord, error)

	// PendingCounts returns the number of pending deliveries per sink and the
	// age of the oldest due one, for metrics.
	PendingCounts(ctx context.Context, now time.Time) (map[string]PendingStat, error)

	// Replay puts a delivery back to pending, due at at, with a fresh
	// attempt budget (attempts and throttled back to 0; the attempt log is kept) and the
	// same id, and records by whom and when. A delivery that is pending and
	// leased (in flight) returns ErrBusy; an unknown id ErrNotFound.
	Replay(ctx context.Context, id, by string, at time.Time) error

	// Prune deletes at most limit rows of history older than before:
	// deliveries that are delivered or dead and were last updated before it
	// (their attempts go with them), then events received before it that
	// have no delivery left, then dedup-key records unused since it and not
	// locked. It returns the number of rows deleted; callers repeat until
	// it returns less than limit. Pending deliveries and their events are
	// never pruned.
	Prune(ctx context.Context, before time.Time, limit int) (int, error)
}

// SinkControl is the per-sink state every replica shares: an operator's or
// the breaker's pause, and a receiver's Retry-After hold.
type SinkControl interface {
	// SetSinkPaused records that a sink is paused (or resumed), with a
	// reason, so that every replica sees it and it survives restarts.
	// Resuming a paused sink also makes its waiting retries due at at
	// (the breaker closing): every pending delivery of the sink that was
	// attempted before, is not leased and was scheduled later. They then go
	// as fast as the sink's concurrency allows, in their order, instead
	// of each at the end of its own backoff; one whose last failure came
	// with a Retry-After (Finish.NotBefore) is made due at that floor
	// instead, if it is later. Deliveries never attempted (new ones, and
	// replays spread on purpose) keep their times.
	SetSinkPaused(ctx context.Context, sink string, paused bool, reason string, at time.Time) error

	// SinkStates returns the recorded state of every sink that was ever
	// paused, resumed or held.
	SinkStates(ctx context.Context) (map[string]SinkState, error)

	// HoldSink records that sink's far side asked for no request before
	// until (a Retry-After on a 429 or 503), keeping the later of until
	// and a hold already recorded. Until then Claim leases nothing of the
	// sink, for any owner on any replica, and NextDue reports no time
	// earlier than until: the whole sink waits out a window one answer
	// announced, not only the delivery that got it.
	HoldSink(ctx context.Context, sink string, until time.Time) error
}

// FiredTimer is a delivery FireTimers made pending.
type FiredTimer struct{ ID, Sink string }

// GroupMember is a delivery in a group's batch.
type GroupMember struct {
	Scope, Key string // the rule and route, and the group key
	Delivery   string
	Source     string
	EventID    string
	ReceivedAt time.Time
}

// Silence mutes, from StartsAt until EndsAt, the deliveries whose event,
// rule and sink its Matcher (an expr expression) selects: they are set
// aside as silenced, with the silence's id, and can be replayed.
type Silence struct {
	ID        string
	Matcher   string
	Comment   string
	CreatedBy string // the admin token's name
	CreatedAt time.Time
	StartsAt  time.Time
	EndsAt    time.Time
}

// Silence states, as the API shows them.
const (
	SilencePending = "pending" // not started yet
	SilenceActive  = "active"
	SilenceExpired = "expired"
)

// State is the silence's state at now.
func (s *Silence) State(now time.Time) string {
	switch {
	case now.Before(s.StartsAt):
		return SilencePending
	case now.Before(s.EndsAt):
		return SilenceActive
	}
	return SilenceExpired
}

// SilenceStore keeps silences, shared by every replica.
type SilenceStore interface {
	// CreateSilence records s; its ID must be new.
	CreateSilence(ctx context.Context, s *Silence) error
	// Silences returns every silence kept, newest first (expired ones
	// until retention prunes them).
	Silences(ctx context.Context) ([]*Silence, error)
	// ExpireSilence ends the silence at at, if it would end later; it
	// returns ErrNotFound for an unknown id.
	ExpireSilence(ctx context.Context, id string, at time.Time) error
}

// KeyStore keeps the outbound signing keys of secured sinks.
type KeyStore interface {
	// CreateSigningKey records a new signing key of sink: its public half
	// as PEM and its private half sealed by the router (the store never
	// sees it in clear). It returns ErrKeyLimit, and stores nothing, when
	// the sink already has MaxSigningKeys keys; the check and the insert
	// are one step, so two callers racing (on any replica) cannot both
	// pass it.
	CreateSigningKey(ctx context.Context, sink, keyID string, publicPEM, sealedPrivate []byte, at time.Time) error

	// SigningKeys returns sink's signing keys, oldest first (by CreatedAt,
	// then ID): the first one signs.
	SigningKeys(ctx context.Context, sink string) ([]SigningKey, error)

	// DeleteSigningKey deletes one signing key of sink, or returns
	// ErrNotFound.
	DeleteSigningKey(ctx context.Context, sink, keyID string) error
}

// PendingStat summarises one sink's queue.
type PendingStat struct {
	Pending      int
	Dead         int
	OldestDueAge time.Duration // age of the oldest pending delivery that is due
}

// ErrBusy is returned by Replay for a delivery that is in flight.
var ErrBusy = errors.New("store: delivery is in flight")

// SinkState is a sink's operator-visible state.
type SinkState struct {
	Paused bool
	Reason string
	Since  time.Time
	// HeldUntil is the sink's latest HoldSink time (zero: never held);
	// it may be in the past.
	HeldUntil time.Time
}

// Cursor marks a position in a newest-first listing: the last item of the
// previous page. For deliveries, Source is unused and ID is the delivery
// id.
type Cursor struct {
	At     time.Time
	Source string
	ID     string
}

// EventFilter selects events. Zero fields match everything.
type EventFilter struct {
	Source string
	Name   string
	Since  time.Time // received at or after
	Until  time.Time // received before
	After  *Cursor   // continue after this item
	Limit  int       // 0 means 100
}

// DeliveryFilter selects deliveries. Zero fields match everything.
type DeliveryFilter struct {
	Status  string
	Sink    string
	Rule    string
	Source  string
	EventID string
	Since   time.Time // created at or after
	Until   time.Time // created before
	After   *Cursor   // continue after this item
	Limit   int       // 0 means 100
}

// MaxSigningKeys is how many signing keys a sink may hold at once: the one
// that signs and its successor, whose public half receivers are given
// before the old key is deleted.
const MaxSigningKeys = 2

// ErrKeyLimit is returned by CreateSigningKey for a sink that already has
// MaxSigningKeys keys.
var ErrKeyLimit = errors.New("store: the sink has the maximum number of signing keys")

// SigningKey is an outbound signing key as stored. SealedPrivate is the
// private key encrypted under the master key (see router/keys.go); it is
// never shown anywhere.
type SigningKey struct {
	Sink          string
	ID            string
	PublicPEM     []byte // PEM "PUBLIC KEY" (PKIX)
	SealedPrivate []byte
	CreatedAt     time.Time
}

// Notifier is implemented by stores shared between replicas (PostgreSQL):
// Listen calls wake with a sink's name whenever any replica inserts
// deliveries for it, so that latency does not depend on the poll interval.
// It returns when ctx is done.
type Notifier interface {
	Listen(ctx context.Context, wake func(sink string)) error
}

// GroupCommitter is implemented by stores that share transactions between
// callers (SQLite's group commit); its counters become metrics, so that an
// operator can see how many writes each fsync carries.
type GroupCommitter interface {
	// GroupCommitStats returns the transactions committed and the writes
	// (ingests, claims, finishes) they carried, since the store opened.
	GroupCommitStats() (commits, writes int64)
}
