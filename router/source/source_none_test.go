package source_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hookroute/hookroute/router/dispatch"
	"github.com/hookroute/hookroute/router/rules"
	"github.com/hookroute/hookroute/router/sqlite"
	"github.com/hookroute/hookroute/sinks"
)

// A none source verifies nothing: an unsigned request is accepted, its
// event is named and identified by the config's expressions, and the
// same id again is a duplicate. Nothing signed reaches it, so send adds
// no headers.
func TestNoneSource(t *testing.T) {
	rt, err := rules.Load("rules.yaml", []byte(`
sources:
  - {name: open, type: none, event: kind, id: '"ref-" + ref'}
sinks:
  - {name: a, type: log}
rules:
  - {name: pings, when: 'event == "ping"', to: [{sink: a}]}
`), sinks.NewRegistry(), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), t.TempDir()+"/db", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := dispatch.New(rt, st, dispatch.Options{PruneEvery: -1})
	post := func(body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r.IngestHandler().ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/hooks/open", strings.NewReader(body)))
		return w
	}
	w := post(`{"kind":"ping","ref":"1"}`)
	if rep := decodeReply(t, w); w.Code != http.StatusAccepted || rep.ID != "ref-1" || len(rep.Matched) != 1 {
		t.Fatalf("unsigned request: %d %s; want 202, id ref-1, rule pings matched", w.Code, w.Body)
	}
	w = post(`{"kind":"ping","ref":"1","again":true}`)
	if rep := decodeReply(t, w); w.Code != http.StatusOK || rep.ID != "ref-1" {
		t.Fatalf("same id again: %d %s; want 200, a duplicate of ref-1", w.Code, w.Body)
	}
	src, _ := rt.Source("open")
	if h, err := src.SendHeaders("", []byte(`{}`)); err != nil || len(h) != 0 {
		t.Errorf("send: headers %v, err %v; want none, and no error", h, err)
	}
}

// reply is the body of an ingest answer.
type reply struct {
	ID      string   `json:"id"`
	Matched []string `json:"matched"`
}

func decodeReply(t *testing.T, w *httptest.ResponseRecorder) reply {
	t.Helper()
	var rep reply
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
		t.Fatalf("reply %q: %v", w.Body, err)
	}
	return rep
}
