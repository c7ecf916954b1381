package router

import "time"

//go:generate go run ../internal/salesiqgen

// The three types below are the SalesIQ schema, written once: each
// field's expr tag is its name in rules and templates, and its salesiq
// tag says where its value comes from. internal/salesiqgen reads them and
// writes the views' Map methods (salesiq_gen.go), the decoder that fills
// them and the writer that turns a stored body straight into the view's
// JSON (router/source/salesiq_gen.go). A field added here reaches all
// three with `go generate ./router`; a test fails until it is run.
//
// salesiq tag values, on SalesIQEvent:
//
//	request          the router.Incoming field of the same name
//	derived          set by the decoder (the event id)
//	body             the decoded body itself
//	envelope.KEY     the envelope's member KEY
//	entity           (a struct) built from the entity's members
//	entity.KEY       (a struct) built from the entity's member KEY
//
// and on the structs' fields: KEY, the member it is read from, with
// ",rating" when the value is normalised by NormalizeRating. A field's
// Go type says how the member is read: string through str, int, any as
// it is, map[string]any and []any when the member is one (else nil).

// SalesIQEvent is the event view of a salesiq source and the typed
// environment its rules are compiled against, so a typo such as
// chat.ratng is a load error. Fields follow the SalesIQ webhook envelope;
// anything undocumented is still reachable through entity and payload.
type SalesIQEvent struct {
	Source     string            `expr:"source" salesiq:"request"`
	Event      string            `expr:"event" salesiq:"envelope.event"`
	ID         string            `expr:"id" salesiq:"derived"`
	ReceivedAt time.Time         `expr:"received_at" salesiq:"request"`
	Headers    map[string]string `expr:"headers" salesiq:"request"`
	Payload    map[string]any    `expr:"payload" salesiq:"body"`

	EntityType string `expr:"entity_type" salesiq:"envelope.entity_type"`
	EntityID   string `expr:"entity_id" salesiq:"envelope.entity_id"`
	OrgID      string `expr:"org_id" salesiq:"envelope.org_id"`
	// AppID exceeds 2^53; it is kept as its exact decimal string.
	AppID     string         `expr:"app_id" salesiq:"envelope.app_id"`
	Attempt   int            `expr:"attempt" salesiq:"envelope.attempt"`
	Version   string         `expr:"version" salesiq:"envelope.version"`
	EventTime string         `expr:"event_time" salesiq:"envelope.event_time"` // epoch milliseconds
	Entity    map[string]any `expr:"entity" salesiq:"envelope.entity"`

	Chat     SalesIQChat   `expr:"chat" salesiq:"entity"`
	Visitor  SalesIQPerson `expr:"visitor" salesiq:"entity.visitor"`
	Operator SalesIQPerson `expr:"operator" salesiq:"entity.owner"`
}

// SalesIQChat is the conversation entity. Rating is normalised to sad,
// neutral or happy ("" when absent or unknown); RatingRaw keeps the wire
// value (1/2/3 or a string).
type SalesIQChat struct {
	ID                    string         `expr:"id" salesiq:"id"`
	VisitorConversationID string         `expr:"visitor_conversation_id" salesiq:"visitor_conversation_id"`
	ReferenceID           string         `expr:"reference_id" salesiq:"reference_id"`
	Status                string         `expr:"status" salesiq:"status"`
	Rating                string         `expr:"rating" salesiq:"rating,rating"`
	RatingRaw             any            `expr:"rating_raw" salesiq:"rating"`
	Feedback              string         `expr:"feedback" salesiq:"feedback"`
	Question              string         `expr:"question" salesiq:"question"`
	DepartmentID          string         `expr:"department_id" salesiq:"department_id"`
	AppID                 string         `expr:"app_id" salesiq:"app_id"`
	OpenedTime            string         `expr:"opened_time" salesiq:"opened_time"`
	AttendedTime          string         `expr:"attended_time" salesiq:"attended_time"`
	EndTime               string         `expr:"end_time" salesiq:"end_time"`
	MissedTime            string         `expr:"missed_time" salesiq:"missed_time"`
	Supervisors           []any          `expr:"supervisors" salesiq:"supervisors"`
	Participants          []any          `expr:"participants" salesiq:"participants"`
	ChatStatus            map[string]any `expr:"chat_status" salesiq:"chat_status"`
}

// SalesIQPerson is a visitor or an operator (the entity's owner).
type SalesIQPerson struct {
	Type    string `expr:"type" salesiq:"type"`
	ID      string `expr:"id" salesiq:"id"`
	Name    string `expr:"name" salesiq:"name"`
	EmailID string `expr:"email_id" salesiq:"email_id"`
	Phone   string `expr:"phone" salesiq:"phone"`
}
