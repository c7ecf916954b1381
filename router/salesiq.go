package router

import "time"

// SalesIQEvent is the event view of a salesiq source and the typed
// environment its rules are compiled against, so a typo such as
// chat.ratng is a load error. Fields follow the SalesIQ webhook envelope;
// anything undocumented is still reachable through entity and payload.
type SalesIQEvent struct {
	Source     string            `expr:"source"`
	Event      string            `expr:"event"`
	ID         string            `expr:"id"`
	ReceivedAt time.Time         `expr:"received_at"`
	Headers    map[string]string `expr:"headers"`
	Payload    map[string]any    `expr:"payload"`

	EntityType string `expr:"entity_type"`
	EntityID   string `expr:"entity_id"`
	OrgID      string `expr:"org_id"`
	// AppID exceeds 2^53; it is kept as its exact decimal string.
	AppID     string         `expr:"app_id"`
	Attempt   int            `expr:"attempt"`
	Version   string         `expr:"version"`
	EventTime string         `expr:"event_time"` // epoch milliseconds
	Entity    map[string]any `expr:"entity"`

	Chat     SalesIQChat   `expr:"chat"`
	Visitor  SalesIQPerson `expr:"visitor"`
	Operator SalesIQPerson `expr:"operator"`
}

// SalesIQChat is the conversation entity. Rating is normalised to sad,
// neutral or happy ("" when absent or unknown); RatingRaw keeps the wire
// value (1/2/3 or a string).
type SalesIQChat struct {
	ID                    string         `expr:"id"`
	VisitorConversationID string         `expr:"visitor_conversation_id"`
	ReferenceID           string         `expr:"reference_id"`
	Status                string         `expr:"status"`
	Rating                string         `expr:"rating"`
	RatingRaw             any            `expr:"rating_raw"`
	Feedback              string         `expr:"feedback"`
	Question              string         `expr:"question"`
	DepartmentID          string         `expr:"department_id"`
	AppID                 string         `expr:"app_id"`
	OpenedTime            string         `expr:"opened_time"`
	AttendedTime          string         `expr:"attended_time"`
	EndTime               string         `expr:"end_time"`
	MissedTime            string         `expr:"missed_time"`
	Supervisors           []any          `expr:"supervisors"`
	Participants          []any          `expr:"participants"`
	ChatStatus            map[string]any `expr:"chat_status"`
}

// SalesIQPerson is a visitor or an operator (the entity's owner).
type SalesIQPerson struct {
	Type    string `expr:"type"`
	ID      string `expr:"id"`
	Name    string `expr:"name"`
	EmailID string `expr:"email_id"`
	Phone   string `expr:"phone"`
}

// Map is the map that templates see, as the view's Data: viewMap(ev), written out because it
// runs for nearly every delivery (View.Data builds it on first use), and
// reflection made it a fifth of the decode (TestSalesIQDataMatchesViewMap
// keeps the two the same). eventJSON (router/dispatch/viewjson.go) writes this map as JSON
// straight from the body: a field added here must be added there too
// (TestEventJSONMatchesDecodeAndEncode fails until it is).
func (ev *SalesIQEvent) Map() map[string]any {
	c, v, o := &ev.Chat, &ev.Visitor, &ev.Operator
	return map[string]any{
		"source": ev.Source, "event": ev.Event, "id": ev.ID, "received_at": ev.ReceivedAt,
		"headers": ev.Headers, "payload": ev.Payload,
		"entity_type": ev.EntityType, "entity_id": ev.EntityID, "org_id": ev.OrgID, "app_id": ev.AppID,
		"attempt": ev.Attempt, "version": ev.Version, "event_time": ev.EventTime, "entity": ev.Entity,
		"chat": map[string]any{
			"id": c.ID, "visitor_conversation_id": c.VisitorConversationID, "reference_id": c.ReferenceID,
			"status": c.Status, "rating": c.Rating, "rating_raw": c.RatingRaw, "feedback": c.Feedback,
			"question": c.Question, "department_id": c.DepartmentID, "app_id": c.AppID,
			"opened_time": c.OpenedTime, "attended_time": c.AttendedTime, "end_time": c.EndTime,
			"missed_time": c.MissedTime, "supervisors": c.Supervisors, "participants": c.Participants,
			"chat_status": c.ChatStatus,
		},
		"visitor":  v.data(),
		"operator": o.data(),
	}
}

func (p *SalesIQPerson) data() map[string]any {
	return map[string]any{"type": p.Type, "id": p.ID, "name": p.Name, "email_id": p.EmailID, "phone": p.Phone}
}
