package dispatch_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/admin"
	"github.com/hookroute/hookroute/router/dispatch"
	"github.com/hookroute/hookroute/router/verify"
)

const dropConfig = `
server:
  drop_headers: [X-Tenant-Secret, x-hub-signature-256]
admin:
  tokens:
    - {name: viewer, token: "${VIEW_TOKEN}", scopes: [read]}
sources:
  - {name: gh, type: github, secret: "${GH_SECRET}"}
sinks:
  - {name: a, type: count}
rules:
  - {name: push, when: 'event == "push" && headers["x-api-key"] == ""', to: [{sink: a}]}
`

// Credential headers (the default list and server.drop_headers) are not
// stored, shown by the API or seen by rules, while the headers the
// GitHub scheme verifies and takes its id and event name from still work.
func TestCredentialHeadersDropped(t *testing.T) {
	const viewToken = "view-token-0123456789"
	env := map[string]string{"VIEW_TOKEN": viewToken, "GH_SECRET": "gh-secret-0123456789"}
	rt, st := loadWithStore(t, dropConfig, &countingFactory{}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	r := dispatch.New(rt, st, dispatch.Options{Metrics: dispatch.NewMetrics(prometheus.NewRegistry()), PruneEvery: -1})
	body := `{"ref":"refs/heads/main"}`
	req := httptest.NewRequest(http.MethodPost, "/hooks/gh", strings.NewReader(body))
	req.Header.Set("X-Hub-Signature-256", verify.SignGitHub([]byte(env["GH_SECRET"]), []byte(body)))
	req.Header.Set("X-GitHub-Delivery", "delivery-1")
	req.Header.Set("X-GitHub-Event", "push")
	canaries := map[string]string{
		"X-Api-Key": "CANARY-api-key", "X-Auth-Token": "CANARY-auth-token", "Proxy-Authorization": "CANARY-proxy",
		"Cookie": "CANARY-cookie", "X-Tenant-Secret": "CANARY-tenant",
	}
	for k, v := range canaries {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	r.IngestHandler().ServeHTTP(w, req)
	if rep := decodeReply(t, w); w.Code != http.StatusAccepted || rep.ID != "delivery-1" || len(rep.Matched) != 1 {
		t.Fatalf("ingest: %d %s; want 202, id delivery-1, rule push matched (it sees no x-api-key)", w.Code, w.Body)
	}

	ev, err := st.GetEvent(context.Background(), "gh", "delivery-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"x-api-key", "x-auth-token", "proxy-authorization", "cookie", "x-tenant-secret", "x-hub-signature-256"} {
		if v, ok := ev.Headers[h]; ok {
			t.Errorf("stored headers hold %s: %q", h, v)
		}
	}
	if ev.Headers["x-github-delivery"] != "delivery-1" || ev.Headers["x-github-event"] != "push" {
		t.Errorf("stored headers = %v, want x-github-delivery and x-github-event kept", ev.Headers)
	}

	// An event stored before a header joined the list is shown without it.
	old := &router.EventRecord{Source: "gh", ID: "old", Name: "push", ReceivedAt: time.Now(),
		Headers: map[string]string{"x-tenant-secret": "CANARY-old", "x-github-event": "push"}, Body: []byte(`{}`)}
	if _, err := st.Ingest(context.Background(), old, nil); err != nil {
		t.Fatal(err)
	}
	api := admin.Handler(r, prometheus.NewRegistry())
	for _, path := range []string{"/api/events", "/api/events/delivery-1?source=gh", "/api/events/old?source=gh"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+viewToken)
		w := httptest.NewRecorder()
		api.ServeHTTP(w, req)
		out, _ := io.ReadAll(w.Body)
		if w.Code != http.StatusOK || strings.Contains(string(out), "CANARY") {
			t.Errorf("GET %s: %d %s; want 200 without any credential header", path, w.Code, out)
		}
		if strings.HasPrefix(path, "/api/events/") && !strings.Contains(string(out), `"x-github-event":"push"`) {
			t.Errorf("GET %s: %s; want the other headers shown", path, out)
		}
	}
}
