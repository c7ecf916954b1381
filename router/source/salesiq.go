package source

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/hookroute/hookroute/internal/jsonview"
	"github.com/hookroute/hookroute/router"
)

// SalesIQ decodes SalesIQ bodies: the documented envelope, or a bare
// entity as a workflow webhook may send it (then BareEvent names it).
type SalesIQ struct {
	// BareEvent names the event of a bare entity (the source's event:).
	BareEvent string
}

func (SalesIQ) Env() any { return router.SalesIQEvent{} }

func (a SalesIQ) Decode(in *router.Incoming) (*router.View, error) {
	v, err := jsonview.Decode(in.Body)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("salesiq: body is not a JSON object")
	}
	ev := newSalesIQEvent(in, m)
	if _, ok := m["entity"].(map[string]any); ok {
		if err := idParts(m, "event", "entity_id", "event_time"); err != nil {
			return nil, err
		}
		decodeEnvelope(ev, m)
		if ev.Event == "" || ev.EntityID == "" || ev.EventTime == "" {
			return nil, errors.New("salesiq: envelope lacks event, entity_id or event_time")
		}
		// The body changes between SalesIQ's retries (attempt counts up),
		// so the id is built from what stays the same.
		ev.ID = ev.Event + ":" + ev.EntityID + ":" + ev.EventTime
	} else {
		if a.BareEvent == "" {
			return nil, errors.New("salesiq: body has no envelope and the source sets no event: name for bare entities")
		}
		if err := idParts(m, "id"); err != nil {
			return nil, err
		}
		ev.Event = a.BareEvent
		ev.Entity = m
		ev.EntityID = jsonview.Str(m["id"])
		// A bare entity carries no event time or attempt counter, so its
		// own bytes are the best identity there is.
		ev.ID = ev.Event + ":" + ev.EntityID + ":" + BodyHash(in.Body)[:16]
	}
	decodeEntity(ev)
	return router.NewLazyView(ev.Event, ev.ID, ev, ev.Map), nil
}

// idParts refuses a body whose id fields are objects or lists: the
// event id is made of them, and an id that is Go's printing of a map is
// not one the sender gave (see scalarString). Such a body is quarantined.
func idParts(m map[string]any, keys ...string) error {
	for _, k := range keys {
		if _, ok := ScalarString(m[k]); !ok {
			return fmt.Errorf("salesiq: %s is %s, want a string or a number", k, KindName(m[k]))
		}
	}
	return nil
}

// NormalizeRating maps SalesIQ's rating, which the documentation shows both
// as 1/2/3 and as "sad"/"neutral"/"happy", to the words; anything else is
// "".
func NormalizeRating(v any) string {
	switch strings.ToLower(strings.TrimSpace(jsonview.Str(v))) {
	case "1", "sad":
		return "sad"
	case "2", "neutral":
		return "neutral"
	case "3", "happy":
		return "happy"
	}
	return ""
}

// Generic decodes any JSON body: the payload's top-level keys are
// exposed beside source, event, id, received_at, headers and payload.
type Generic struct {
	// Event and ID are the source's event: and id: expressions (nil:
	// none); IDHeader is the header its sender puts its own id in.
	Event, ID *vm.Program
	IDHeader  string
}

func (Generic) Env() any { return GenericEnv() }

func GenericEnv() map[string]any {
	return map[string]any{
		"source": "", "event": "", "id": "", "received_at": time.Time{},
		"headers": map[string]string{}, "payload": map[string]any{},
	}
}

func (a Generic) Decode(in *router.Incoming) (*router.View, error) {
	v, err := jsonview.Decode(in.Body)
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
	name, err := evalString(a.Event, data)
	if err != nil {
		return nil, fmt.Errorf("event expression: %w", err)
	}
	var id string
	if a.IDHeader != "" {
		id = in.Headers[a.IDHeader]
	}
	if id == "" && a.ID != nil {
		if id, err = evalString(a.ID, data); err != nil {
			return nil, fmt.Errorf("id expression: %w", err)
		}
	}
	if id == "" {
		id = BodyHash(in.Body)
	}
	data["event"], data["id"] = name, id
	return router.NewView(name, id, data, data), nil
}

func evalString(p *vm.Program, env map[string]any) (string, error) {
	if p == nil {
		return "", nil
	}
	out, err := expr.Run(p, env)
	if err != nil {
		return "", err
	}
	id, ok := ScalarString(out)
	if !ok {
		return "", fmt.Errorf("returned %s, want a string or a number", KindName(out))
	}
	return id, nil
}
