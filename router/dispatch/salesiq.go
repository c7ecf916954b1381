package dispatch

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hookroute/hookroute/router"
)

// salesiqAdapter decodes SalesIQ bodies: the documented envelope, or a bare
// entity as a workflow webhook may send it (then bareEvent names it).
type salesiqAdapter struct{ bareEvent string }

func (salesiqAdapter) env() any { return router.SalesIQEvent{} }

func (a salesiqAdapter) decode(in *router.Incoming) (*router.View, error) {
	v, err := decodeJSON(in.Body)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("salesiq: body is not a JSON object")
	}
	ev := &router.SalesIQEvent{Source: in.Source, ReceivedAt: in.ReceivedAt, Headers: in.Headers, Payload: m}
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
	return router.NewLazyView(ev.Event, ev.ID, ev, ev.Map), nil
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

func salesiqChat(e map[string]any) router.SalesIQChat {
	sup, _ := e["supervisors"].([]any)
	par, _ := e["participants"].([]any)
	cs, _ := e["chat_status"].(map[string]any)
	return router.SalesIQChat{
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

func salesiqPerson(v any) router.SalesIQPerson {
	m, _ := v.(map[string]any)
	return router.SalesIQPerson{Type: str(m["type"]), ID: str(m["id"]), Name: str(m["name"]), EmailID: str(m["email_id"]), Phone: str(m["phone"])}
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

func (a genericAdapter) decode(in *router.Incoming) (*router.View, error) {
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
	return router.NewView(name, id, data, data), nil
}
