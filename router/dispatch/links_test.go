package dispatch_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/dispatch"
)

// linksConfig: every sad rating goes to desk, which creates a ticket for
// the chat, and to out, whose text shows the ticket's link once desk is
// done with the event (after: [desk]).
const linksConfig = `
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: desk, type: fake, retry: {max_attempts: 3, initial: 50ms, max_interval: 100ms}}
  - {name: out, type: fake}
rules:
  - name: sad
    when: "true"
    to:
      - sink: out
        text: 'ticket={{ (index .links "desk").url }} id={{ (index .links "desk").id }} none={{ (index .links "out").url }}'
        dedup_key: "chat-{{ .chat.id }}"
        after: [desk]
      - {sink: desk, text: "{{ .chat.id }}", dedup_key: "chat-{{ .chat.id }}"}
`

// runLinks runs a router over linksConfig with desk failing with errs
// first, sends one event, and returns the text out got and how many
// deliveries desk had by then.
func runLinks(t *testing.T, errs ...error) (string, int) {
	t.Helper()
	f := &testkit.FakeFactory{}
	rt, st := loadWithStore(t, linksConfig, f, pubEnv)
	f.Sinks["desk"].Creates, f.Sinks["desk"].Errs = true, errs
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond})
	runRouter(t, r)

	if w := post(t, r.IngestHandler(), event("c1", "sad")); w.Code != 202 {
		t.Fatalf("ingest: %d %s", w.Code, w.Body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(f.Sinks["out"].Deliveries()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("out got nothing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return f.Sinks["out"].Deliveries()[0].Fields["text"], len(f.Sinks["desk"].Deliveries())
}

// TestAfterWaitsAndSeesLinks: out waits while desk retries, then renders
// the ticket desk created; a sink with nothing for the key renders empty.
func TestAfterWaitsAndSeesLinks(t *testing.T) {
	text, desk := runLinks(t, errors.New("503"), errors.New("503"))
	if want := "ticket=[https://fake.example/R1] id=[R1] none="; text != want {
		t.Errorf("out's text = %q, want %q", text, want)
	}
	if desk != 3 {
		t.Errorf("desk had %d deliveries when out went; want its 3 attempts first", desk)
	}
}

// TestAfterReleasedByDead: a predecessor that goes dead releases the wait;
// the template sees no link.
func TestAfterReleasedByDead(t *testing.T) {
	text, desk := runLinks(t, router.Permanent(errors.New("400 bad request")))
	if want := "ticket= id= none="; text != want {
		t.Errorf("out's text = %q, want %q", text, want)
	}
	if desk != 1 {
		t.Errorf("desk had %d deliveries; want 1 (dead at once)", desk)
	}
}

// TestOnMissingSkip: a route that only follows up sends nothing while its
// key has no object, and follows up once another route made one.
func TestOnMissingSkip(t *testing.T) {
	const conf = `
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: desk, type: fake}
rules:
  - name: follow
    when: 'chat.rating == "happy"'
    to: [{sink: desk, text: "follow-up", dedup_key: "chat-{{ .chat.id }}", on_missing: skip}]
  - name: open
    when: 'chat.rating == "sad"'
    to: [{sink: desk, text: "open", dedup_key: "chat-{{ .chat.id }}"}]
`
	f := &testkit.FakeFactory{}
	rt, st := loadWithStore(t, conf, f, pubEnv)
	f.Sinks["desk"].Creates = true
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond})
	runRouter(t, r)

	settled := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ds, err := st.ListDeliveries(context.Background(), router.DeliveryFilter{Status: router.StatusDelivered})
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d deliveries delivered; want %d", len(ds), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// The chat has no ticket: the follow-up is done without sending.
	post(t, r.IngestHandler(), `{"event":"conversation.rated","entity_id":"c9","event_time":"1","attempt":1,"entity":{"id":"c9","rating":"happy"}}`)
	settled(1)
	if n := len(f.Sinks["desk"].Deliveries()); n != 0 {
		t.Fatalf("desk got %d deliveries; want none for a key without an object", n)
	}
	post(t, r.IngestHandler(), `{"event":"conversation.rated","entity_id":"c9","event_time":"2","attempt":1,"entity":{"id":"c9","rating":"sad"}}`)
	settled(2)
	post(t, r.IngestHandler(), `{"event":"conversation.rated","entity_id":"c9","event_time":"3","attempt":1,"entity":{"id":"c9","rating":"happy"}}`)
	settled(3)
	got := f.Sinks["desk"].Deliveries()
	if len(got) != 2 || got[0].Fields["text"] != "open" || got[1].Fields["text"] != "follow-up" || got[1].RemoteID != "R1" {
		t.Fatalf("desk got %d deliveries; want open, then the follow-up on R1", len(got))
	}
}
