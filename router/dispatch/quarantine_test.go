package dispatch_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/dispatch"
)

// ingestReply is the body of a webhook's 200 or 202.
type ingestReply struct {
	ID         string   `json:"id"`
	Matched    []string `json:"matched"`
	Deliveries int      `json:"deliveries"`
}

func decodeReply(t *testing.T, w *httptest.ResponseRecorder) ingestReply {
	t.Helper()
	var rep ingestReply
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
		t.Fatalf("reply %q: %v", w.Body, err)
	}
	return rep
}

// wantQuarantined checks that the answer was a 202 for a quarantined event
// and that the store holds it quarantined, with no delivery.
func wantQuarantined(t *testing.T, st router.Store, source string, w *httptest.ResponseRecorder) {
	t.Helper()
	rep := decodeReply(t, w)
	if w.Code != http.StatusAccepted || !strings.HasPrefix(rep.ID, "q:") || rep.Deliveries != 0 || strings.Contains(rep.ID, "map[") {
		t.Fatalf("answer %d %s, want 202 with a q: id and no deliveries", w.Code, w.Body)
	}
	ev, err := st.GetEvent(context.Background(), source, rep.ID)
	if err != nil {
		t.Fatalf("GetEvent(%s): %v", rep.ID, err)
	}
	if !ev.Quarantined {
		t.Errorf("event %s stored, not quarantined", rep.ID)
	}
	ds, err := st.ListDeliveries(context.Background(), router.DeliveryFilter{Source: source})
	if err != nil || len(ds) != 0 {
		t.Errorf("deliveries of %s: %d, %v; want none", source, len(ds), err)
	}
}

// An id field sent as an object or a list must not become an id such as
// "conversation.rated:map[x:1]:1": the event is quarantined instead.
func TestSalesIQNonScalarIDPartsQuarantine(t *testing.T) {
	for name, body := range map[string]string{
		"entity_id object": `{"event":"conversation.rated","entity_id":{"x":1},"event_time":"1","entity":{"rating":"sad"}}`,
		"entity_id list":   `{"event":"conversation.rated","entity_id":[1,2],"event_time":"1","entity":{"rating":"sad"}}`,
		"event_time list":  `{"event":"conversation.rated","entity_id":"42","event_time":["1"],"entity":{"rating":"sad"}}`,
		"event object":     `{"event":{"name":"conversation.rated"},"entity_id":"42","event_time":"1","entity":{"rating":"sad"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			r, st, _ := setup(t)
			wantQuarantined(t, st, "siq", post(t, r.IngestHandler(), body))
		})
	}
	t.Run("scalars still make the id", func(t *testing.T) {
		r, _, _ := setup(t)
		w := post(t, r.IngestHandler(), `{"event":"conversation.rated","entity_id":42,"event_time":1567065865617,"entity":{"rating":"sad"}}`)
		if rep := decodeReply(t, w); w.Code != http.StatusAccepted || rep.ID != "conversation.rated:42:1567065865617" {
			t.Fatalf("answer %d %s", w.Code, w.Body)
		}
	})
}

func TestSalesIQBareEntityNonScalarIDQuarantines(t *testing.T) {
	f := &countingFactory{}
	rt, st := loadWithStore(t, `
sources:
  - {name: siq, type: salesiq, event: conversation.rated, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: b, type: count}
rules:
  - {name: all, when: "true", to: [{sink: b}]}
`, f, pubEnv)
	r := dispatch.New(rt, st, dispatch.Options{})
	wantQuarantined(t, st, "siq", post(t, r.IngestHandler(), `{"id":{"x":1},"rating":"sad"}`))
}

// A generic source's id: expression that gives an object or a list
// quarantines the event, as does an event: expression.
func TestGenericNonScalarIDQuarantines(t *testing.T) {
	f := &countingFactory{}
	rt, st := loadWithStore(t, `
sources:
  - {name: gen, type: none, id: payload.ref, event: payload.kind}
sinks:
  - {name: b, type: count}
rules:
  - {name: all, when: "true", to: [{sink: b}]}
`, f, nil)
	r := dispatch.New(rt, st, dispatch.Options{Now: func() time.Time { return time.Unix(1e9, 0) }})
	send := func(body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/hooks/gen", strings.NewReader(body))
		w := httptest.NewRecorder()
		r.IngestHandler().ServeHTTP(w, req)
		return w
	}
	wantQuarantined(t, st, "gen", send(`{"ref":{"x":1},"kind":"push"}`))
	wantQuarantined(t, st, "gen", send(`{"ref":[1,2],"kind":"push"}`))
	wantQuarantined(t, st, "gen", send(`{"ref":"r-1","kind":{"a":"push"}}`))
	w := send(`{"ref":7,"kind":"push"}`)
	if rep := decodeReply(t, w); w.Code != http.StatusAccepted || rep.ID != "7" || rep.Deliveries != 1 {
		t.Fatalf("a number id: answer %d %s, want 202 with id 7", w.Code, w.Body)
	}
}
