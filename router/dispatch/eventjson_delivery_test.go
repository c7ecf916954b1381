package dispatch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/dispatch"
)

// jsonFactory builds "json" sinks that record what each delivery carried;
// with only: true they are EventJSONSinks, as the http sink is.
type jsonFactory struct {
	mu    sync.Mutex
	sinks map[string]*jsonSink
}

type jsonSink struct {
	only bool
	mu   sync.Mutex
	got  []*router.Delivery
}

func (s *jsonSink) EventJSONOnly() bool { return s.only }

func (s *jsonSink) Deliver(_ context.Context, d *router.Delivery) (router.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, d)
	return router.Result{StatusCode: 200}, nil
}

func (s *jsonSink) deliveries() []*router.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*router.Delivery(nil), s.got...)
}

func (f *jsonFactory) Build(_, name string, node *yaml.Node) (router.Sink, error) {
	var c struct {
		Only bool `yaml:"only"`
	}
	if err := node.Decode(&c); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sinks == nil {
		f.sinks = map[string]*jsonSink{}
	}
	s := &jsonSink{only: c.Only}
	f.sinks[name] = s
	return s, nil
}

func (f *jsonFactory) RouteFields(kind string) ([]router.FieldSpec, bool) {
	return []router.FieldSpec{{Name: "text"}}, kind == "json"
}

// TestEventJSONDeliveries: the worker hands an EventJSONSink the event as
// JSON, and only on a route without fields or dedup key, and those bytes
// are what the event map handed to other sinks encodes to.
func TestEventJSONDeliveries(t *testing.T) {
	const conf = `
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: plain, type: json, only: true}
  - {name: fields, type: json, only: true}
  - {name: keyed, type: json, only: true}
  - {name: maps, type: json, only: false}
rules:
  - name: all
    when: "true"
    to:
      - {sink: plain}
      - {sink: fields, text: "{{ .visitor.name }}"}
      - {sink: keyed, dedup_key: "{{ .chat.id }}"}
      - {sink: maps}
`
	f := &jsonFactory{}
	rt, st := loadWithStore(t, conf, f, pubEnv)
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	body := `{"event":"conversation.rated","entity_id":"7","event_time":"1","attempt":1,` +
		`"entity":{"id":"7","rating":1,"visitor":{"name":"Zoë <z>"},"n":1.5e300,"big":123456789012345678901}}`
	if w := post(t, r.IngestHandler(), body); w.Code != 202 {
		t.Fatalf("ingest: %d %s", w.Code, w.Body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range f.sinks {
		for len(s.deliveries()) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("not every sink got its delivery")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	plain := f.sinks["plain"].deliveries()[0]
	if plain.EventJSON == nil || plain.Event != nil {
		t.Fatalf("plain route to an EventJSONSink: EventJSON %q, Event %v; want JSON alone", plain.EventJSON, plain.Event)
	}
	for _, name := range []string{"fields", "keyed", "maps"} {
		if d := f.sinks[name].deliveries()[0]; d.Event == nil || d.EventJSON != nil {
			t.Errorf("%s: EventJSON %q, Event %v; want the map alone", name, d.EventJSON, d.Event)
		}
	}
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f.sinks["maps"].deliveries()[0].Event); err != nil {
		t.Fatal(err)
	}
	if got := plain.EventJSON; !bytes.Equal(got, bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
		t.Fatalf("EventJSON is not the event map's JSON:\n got %s\nwant %s", got, want.Bytes())
	}
}
