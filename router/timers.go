package router

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Timer is one waiting timer as operators see it (Store.Timers): the
// deliveries a rule with unless: stored waiting for one first event,
// under one timer key. Two first events with equal same: values share a
// key, and are two timers: a later event cancels both, an operator one.
type Timer struct {
	// ID is TimerID(Key, Source, EventID): stable for as long as the
	// timer waits, so that a listing's id can be cancelled later, on any
	// replica, with nothing stored for it.
	ID  string
	Key string // the timer key: JSON ["rule", same values…]
	// Rule is the rule whose deliveries wait (the key's first element).
	Rule    string
	Source  string
	EventID string
	// EventName is the first event's name, "" when it is not stored.
	EventName string
	// StartedAt is when the first event was received (its deliveries'
	// CreatedAt): the time the timer counts from.
	StartedAt time.Time
	// Due is the earliest Due of Deliveries: when the timer next fires.
	Due time.Time
	// Deliveries are the timer's waiting deliveries, earliest due first
	// (then by id). Those that fired or were cancelled are not in it: a
	// rule with escalation steps (route delay:) loses one per step.
	Deliveries []TimerDelivery
}

// TimerDelivery is one waiting delivery of a Timer.
type TimerDelivery struct {
	ID   string
	Sink string
	Due  time.Time // when it fires (its NextAttemptAt)
}

// TimerID is the id of the timer of the first event source/eventID under
// timerKey: "t_" and 16 hex digits of a SHA-256 of the three. It is
// derived, not stored, so that timers need no table of their own; the
// event is part of it because one key may wait for several events.
func TimerID(timerKey, source, eventID string) string {
	sum := sha256.Sum256([]byte(timerKey + "\x00" + source + "\x00" + eventID))
	return "t_" + hex.EncodeToString(sum[:8])
}
