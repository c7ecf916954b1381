package dispatch

import (
	"fmt"
	"log/slog"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/rules"
)

// TestViewCacheKeepsViewsToTheirConfig: a view is given out only under
// the config it was decoded under, so a view decoded before a reload and
// put after it is never used with the new config.
func TestViewCacheKeepsViewsToTheirConfig(t *testing.T) {
	c := newViewCache()
	before, after := &rules.Runtime{}, &rules.Runtime{}
	v := &router.View{ID: "e1"}
	c.put(before, "siq", "e1", v)
	if got := c.get(before, "siq", "e1"); got != v {
		t.Fatalf("get under the same config = %v, want the view", got)
	}
	if got := c.get(after, "siq", "e1"); got != nil {
		t.Fatalf("get under a reloaded config = %v, want a miss", got)
	}
	c.clear()
	if got := c.get(before, "siq", "e1"); got != nil {
		t.Fatalf("get after clear = %v, want a miss", got)
	}
}

// TestViewCacheEvictsOldest: the cache holds viewCacheSize views and
// drops the oldest first.
func TestViewCacheEvictsOldest(t *testing.T) {
	c := newViewCache()
	rt := &rules.Runtime{}
	for i := range viewCacheSize + 1 {
		c.put(rt, "siq", fmt.Sprint(i), &router.View{ID: fmt.Sprint(i)})
	}
	if got := c.get(rt, "siq", "0"); got != nil {
		t.Errorf("oldest view still cached: %v", got)
	}
	for _, id := range []string{"1", fmt.Sprint(viewCacheSize)} {
		if got := c.get(rt, "siq", id); got == nil || got.ID != id {
			t.Errorf("view %s = %v, want it cached", id, got)
		}
	}
	if len(c.m) != viewCacheSize {
		t.Errorf("cache holds %d views, want %d", len(c.m), viewCacheSize)
	}
}

// jsonOnlySink takes the event as JSON alone, as the http sink does.
type jsonOnlySink struct{ testkit.FakeSink }

func (*jsonOnlySink) EventJSONOnly() bool { return true }

type jsonOnlyFactory struct{ testkit.FakeFactory }

func (f *jsonOnlyFactory) Build(kind, name string, node *yaml.Node) (router.Sink, error) {
	if kind == "jsononly" {
		return &jsonOnlySink{}, nil
	}
	return f.FakeFactory.Build(kind, name, node)
}

func (f *jsonOnlyFactory) RouteFields(kind string) ([]router.FieldSpec, bool) {
	if kind == "jsononly" {
		return nil, true
	}
	return f.FakeFactory.RouteFields(kind)
}

// TestIngestCachesOnlyViewsADeliveryReads: an event whose deliveries all
// get the event as JSON written from the body leaves its view out of the
// cache; one with a delivery that renders templates puts it in.
func TestIngestCachesOnlyViewsADeliveryReads(t *testing.T) {
	conf := `
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: raw, type: jsononly}
  - {name: chat, type: fake}
rules:
  - {name: all, when: "true", to: [{sink: raw}]}
  - {name: sad, when: 'chat.rating == "sad"', to: [{sink: chat, text: "{{ .visitor.name }}"}]}
`
	rt, err := rules.Load("rules.yaml", []byte(conf), &jsonOnlyFactory{}, testkit.Lookup(map[string]string{"PUB": testkit.PublicPEM}))
	if err != nil {
		t.Fatal(err)
	}
	src, _ := rt.Source("siq")
	r := &Router{log: slog.New(slog.DiscardHandler)}
	for _, c := range []struct {
		rating    string
		matched   int
		wantsView bool
	}{{"happy", 1, false}, {"sad", 2, true}} {
		body := `{"event":"conversation.rated","entity_id":"1","event_time":"2","entity":{"rating":"` + c.rating + `"}}`
		_, ds, _, view, _ := r.prepare(rt, src, &router.Incoming{Source: "siq", Body: []byte(body)})
		if len(ds) != c.matched || (view != nil) != c.wantsView {
			t.Errorf("%s: %d deliveries, view for the cache %v; want %d, %v", c.rating, len(ds), view != nil, c.matched, c.wantsView)
		}
	}
}
