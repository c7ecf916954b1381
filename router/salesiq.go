package router

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

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

// salesiqAdapter decodes SalesIQ bodies: the documented envelope, or a bare
// entity as a workflow webhook may send it (then bareEvent names it).
type salesiqAdapter struct{ bareEvent string }

func (salesiqAdapter) env() any { return SalesIQEvent{} }

func (a salesiqAdapter) decode(in *Incoming) (*View, error) {
	v, err := decodeJSON(in.Body)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("salesiq: body is not a JSON object")
	}
	ev := &SalesIQEvent{Source: in.Source, ReceivedAt: in.ReceivedAt, Headers: in.Headers, Payload: m}
	if entity, ok := m["entity"].(map[string]any); ok {
		if err := idParts(m, "event", "entity_id", "event_time"); err != nil {
			return nil, err
		}
		ev.Event = str(m["event"])
		ev.EntityType = str(m["entity_type"])
		ev.EntityID = str(m["entity_id"])
		ev.OrgID = str(m["org_id"])
		ev.AppID = str(m["app_id"])
		ev.Attempt, _ = m["attempt"].(int)
		ev.Version = str(m["version"])
		ev.EventTime = str(m["event_time"])
		ev.Entity = entity
		if ev.Event == "" || ev.EntityID == "" || ev.EventTime == "" {
			return nil, errors.New("salesiq: envelope lacks event, entity_id or event_time")
		}
		// The body changes between SalesIQ's retries (attempt counts up),
		// so the id is built from what stays the same.
		ev.ID = ev.Event + ":" + ev.EntityID + ":" + ev.EventTime
	} else {
		if a.bareEvent == "" {
			return nil, errors.New("salesiq: body has no envelope and the source sets no event: name for bare entities")
		}
		if err := idParts(m, "id"); err != nil {
			return nil, err
		}
		ev.Event = a.bareEvent
		ev.Entity = m
		ev.EntityID = str(m["id"])
		// A bare entity carries no event time or attempt counter, so its
		// own bytes are the best identity there is.
		ev.ID = ev.Event + ":" + ev.EntityID + ":" + bodyHash(in.Body)[:16]
	}
	ev.Chat = salesiqChat(ev.Entity)
	ev.Visitor = salesiqPerson(ev.Entity["visitor"])
	ev.Operator = salesiqPerson(ev.Entity["owner"])
	return NewLazyView(ev.Event, ev.ID, ev, ev.data), nil
}

// idParts refuses a body whose id fields are objects or lists: the
// event id is made of them, and an id that is Go's printing of a map is
// not one the sender gave (see scalarString). Such a body is quarantined.
func idParts(m map[string]any, keys ...string) error {
	for _, k := range keys {
		if _, ok := scalarString(m[k]); !ok {
			return fmt.Errorf("salesiq: %s is %s, want a string or a number", k, kindName(m[k]))
		}
	}
	return nil
}

// data is the map that templates see: viewMap(ev), written out because it
// runs for nearly every delivery (View.Data builds it on first use), and
// reflection made it a fifth of the decode (TestSalesIQDataMatchesViewMap
// keeps the two the same). eventJSON (viewjson.go) writes this map as JSON
// straight from the body: a field added here must be added there too
// (TestEventJSONMatchesDecodeAndEncode fails until it is).
func (ev *SalesIQEvent) data() map[string]any {
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

func salesiqChat(e map[string]any) SalesIQChat {
	sup, _ := e["supervisors"].([]any)
	par, _ := e["participants"].([]any)
	cs, _ := e["chat_status"].(map[string]any)
	return SalesIQChat{
		ID: str(e["id"]), VisitorConversationID: str(e["visitor_conversation_id"]),
		ReferenceID: str(e["reference_id"]), Status: str(e["status"]),
		Rating: NormalizeRating(e["rating"]), RatingRaw: e["rating"],
		Feedback: str(e["feedback"]), Question: str(e["question"]),
		DepartmentID: str(e["department_id"]), AppID: str(e["app_id"]),
		OpenedTime: str(e["opened_time"]), AttendedTime: str(e["attended_time"]),
		EndTime: str(e["end_time"]), MissedTime: str(e["missed_time"]),
		Supervisors: sup, Participants: par, ChatStatus: cs,
	}
}

func salesiqPerson(v any) SalesIQPerson {
	m, _ := v.(map[string]any)
	return SalesIQPerson{Type: str(m["type"]), ID: str(m["id"]), Name: str(m["name"]), EmailID: str(m["email_id"]), Phone: str(m["phone"])}
}

// NormalizeRating maps SalesIQ's rating, which the documentation shows both
// as 1/2/3 and as "sad"/"neutral"/"happy", to the words; anything else is
// "".
func NormalizeRating(v any) string {
	switch strings.ToLower(strings.TrimSpace(str(v))) {
	case "1", "sad":
		return "sad"
	case "2", "neutral":
		return "neutral"
	case "3", "happy":
		return "happy"
	}
	return ""
}

// genericAdapter decodes any JSON body: the payload's top-level keys are
// exposed beside source, event, id, received_at, headers and payload.
type genericAdapter struct {
	src *Source
}

func (genericAdapter) env() any { return genericEnv() }

func genericEnv() map[string]any {
	return map[string]any{
		"source": "", "event": "", "id": "", "received_at": time.Time{},
		"headers": map[string]string{}, "payload": map[string]any{},
	}
}

func (a genericAdapter) decode(in *Incoming) (*View, error) {
	v, err := decodeJSON(in.Body)
	if err != nil {
		return nil, err
	}
	data := map[string]any{}
	if m, ok := v.(map[string]any); ok {
		for k, x := range m {
			data[k] = x
		}
	}
	data["source"], data["received_at"], data["headers"], data["payload"] = in.Source, in.ReceivedAt, in.Headers, v
	data["event"], data["id"] = "", ""
	s := a.src
	name, err := s.evalString(s.eventProg, data)
	if err != nil {
		return nil, fmt.Errorf("event expression: %w", err)
	}
	id := s.headerID(in.Headers)
	if id == "" && s.idProg != nil {
		if id, err = s.evalString(s.idProg, data); err != nil {
			return nil, fmt.Errorf("id expression: %w", err)
		}
	}
	if id == "" {
		id = bodyHash(in.Body)
	}
	data["event"], data["id"] = name, id
	return NewView(name, id, data, data), nil
}
