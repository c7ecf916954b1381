package dispatch_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/admin"
	"github.com/hookroute/hookroute/router/dispatch"
)

const silenceConfig = `
admin:
  tokens:
    - {name: ops, token: "${OPS}", scopes: [read, replay, silence, trial]}
    - {name: viewer, token: "${VIEWER}", scopes: [read]}
sources:
  - {name: siq, type: salesiq, public_keys: [{pem: "${PUB}"}]}
sinks:
  - {name: slack, type: fake}
  - {name: desk, type: fake}
rules:
  - name: sad
    when: "true"
    to: [{sink: slack, text: "x"}, {sink: desk, text: "x"}]
`

// The admin tokens of the API tests' configs: ${OPS} and ${VIEWER}.
const apiOps, apiViewer = "ops-token-0123456789", "view-token-0123456789"

// tokenEnv supplies the admin tokens and, as pubEnv, the test key.
func tokenEnv(k string) (string, bool) {
	switch k {
	case "OPS":
		return apiOps, true
	case "VIEWER":
		return apiViewer, true
	}
	return pubEnv(k)
}

// apiDo calls the admin API and decodes its JSON answer into out.
func apiDo(t *testing.T, h http.Handler, method, path, token, body string, out any) int {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
		}
	}
	return w.Code
}

// TestSilences: a silence made through the API sets the deliveries it
// matches aside as silenced (with its id), not the others; expired, a
// replay of the silenced delivery delivers it once. Scopes, bad
// matchers with their position, and the gauge.
func TestSilences(t *testing.T) {
	const ops, viewer = "ops-token-0123456789", "view-token-0123456789"
	f := &testkit.FakeFactory{}
	rt, st := loadWithStore(t, silenceConfig, f, tokenEnv)
	reg := prometheus.NewRegistry()
	r := dispatch.New(rt, st, dispatch.Options{PollInterval: 20 * time.Millisecond, Metrics: dispatch.NewMetrics(reg)})
	h := admin.Handler(r, reg)
	runRouter(t, r)

	var e struct{ Error string }
	if code := apiDo(t, h, "POST", "/api/silences", viewer, `{"matcher": "true", "duration": "1h"}`, &e); code != 403 {
		t.Errorf("a read-only token made a silence: %d", code)
	}
	if code := apiDo(t, h, "POST", "/api/silences", "", `{}`, &e); code != 401 {
		t.Errorf("no token: %d", code)
	}
	for body, want := range map[string]string{
		`{"matcher": "chat.ratng == \"sad\"", "duration": "1h"}`:                   "matcher: line 1, column 6: type router.SalesIQChat has no field ratng",
		`{"matcher": "sink == \"slack\""}`:                                         "ends_at or a positive duration must be set",
		`{"matcher": "true", "duration": "1h", "ends_at": "2030-01-01T00:00:00Z"}`: "not both",
		`{"matcher": "true", "ends_at": "2001-01-01T00:00:00Z"}`:                   "in the past",
		`{"matcher": "true", "duration": "1h", "color": "red"}`:                    "unknown field",
	} {
		if code := apiDo(t, h, "POST", "/api/silences", ops, body, &e); code != 400 || !strings.Contains(e.Error, want) {
			t.Errorf("%s: %d %q; want 400 with %q", body, code, e.Error, want)
		}
	}
	var s struct {
		ID, State string
		CreatedBy string `json:"created_by"`
	}
	if code := apiDo(t, h, "POST", "/api/silences", ops, `{"matcher": "sink == \"slack\" && chat.rating == \"sad\"", "duration": "1h", "comment": "deploy"}`, &s); code != 201 || s.State != "active" || s.CreatedBy != "ops" {
		t.Fatalf("create: %d %+v", code, s)
	}
	if got := gathered(t, reg, "hookroute_silences_active", ""); got != 1 {
		t.Errorf("hookroute_silences_active = %v, want 1", got)
	}
	var list struct{ Items []struct{ ID, State string } }
	if code := apiDo(t, h, "GET", "/api/silences?state=active", viewer, "", &list); code != 200 || len(list.Items) != 1 || list.Items[0].ID != s.ID {
		t.Fatalf("list: %d %+v", code, list)
	}

	var tr struct {
		Routes []struct{ Sink, Outcome, Why string }
	}
	if code := apiDo(t, h, "POST", "/api/trial", ops, `{"source": "siq", "event": `+event("c0", "sad")+`}`, &tr); code != 200 || len(tr.Routes) != 2 {
		t.Fatalf("trial: %d %+v", code, tr)
	}
	for _, rt := range tr.Routes {
		want := "sent"
		if rt.Sink == "slack" {
			want = "silenced"
		}
		if rt.Outcome != want || (want == "silenced" && !strings.HasPrefix(rt.Why, "silenced by "+s.ID)) {
			t.Errorf("trial of %s: %s (%s); want %s", rt.Sink, rt.Outcome, rt.Why, want)
		}
	}
	if w := post(t, r.IngestHandler(), event("c1", "sad")); w.Code != 202 {
		t.Fatalf("ingest: %d %s", w.Code, w.Body)
	}
	var silenced *router.DeliveryRecord
	waitFor(t, "slack's delivery silenced and desk's delivered", func() bool {
		ds, err := st.ListDeliveries(context.Background(), router.DeliveryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, d := range ds {
			switch {
			case d.Sink == "slack" && d.Status == router.StatusSilenced:
				silenced = d
				n++
			case d.Sink == "desk" && d.Status == router.StatusDelivered:
				n++
			}
		}
		return n == 2
	})
	if !strings.HasPrefix(silenced.LastError, "silenced by "+s.ID+" (until ") || !strings.Contains(silenced.LastError, `"deploy"`) || silenced.Attempts != 0 {
		t.Errorf("silenced delivery: %q, %d attempts", silenced.LastError, silenced.Attempts)
	}
	if n := len(f.Sinks["slack"].Deliveries()); n != 0 {
		t.Fatalf("slack got %d deliveries under the silence", n)
	}

	if code := apiDo(t, h, "DELETE", "/api/silences/"+s.ID, viewer, "", &e); code != 403 {
		t.Errorf("a read-only token expired a silence: %d", code)
	}
	if code := apiDo(t, h, "DELETE", "/api/silences/s_nope", ops, "", &e); code != 404 {
		t.Errorf("expire an unknown silence: %d", code)
	}
	if code := apiDo(t, h, "DELETE", "/api/silences/"+s.ID, ops, "", &s); code != 200 || s.State != "expired" {
		t.Fatalf("expire: %d %+v", code, s)
	}
	var replay map[string]any
	if code := apiDo(t, h, "POST", "/api/deliveries/"+silenced.ID+"/replay", ops, "", &replay); code != 200 {
		t.Fatalf("replay: %d %v", code, replay)
	}
	waitFor(t, "the replayed delivery delivered", func() bool {
		d, err := st.GetDelivery(context.Background(), silenced.ID)
		return err == nil && d.Status == router.StatusDelivered
	})
	if n := len(f.Sinks["slack"].Deliveries()); n != 1 {
		t.Errorf("slack got %d deliveries after the replay; want 1", n)
	}
}
