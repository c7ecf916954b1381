package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router/verify"
)

// Replays of signed bodies under new, unsigned ids, against the real
// binary: GitHub's X-GitHub-Delivery and an hmac-sha256 source's id from a
// header are outside what the signature covers, so the body's hash is a
// dedup key of its own.

const (
	replayGitHubSecret = "e2e-github-secret-0123456789"
	replayHMACSecret   = "e2e-hmac-secret-0123456789"
	replayViewToken    = "e2e-view-token-0123456789"
)

const replayConfig = `
server: {listen: "{{LISTEN}}", admin_listen: "{{ADMIN}}"}
store: {url: "sqlite:{{DB}}"}
egress: {allow: ["127.0.0.1/32"]}   # the fake sink listens on loopback
admin:
  tokens:
    - {name: viewer, token: "${TEST_VIEW_TOKEN}", scopes: [read]}
sources:
  - {name: gh, type: github, secret: "${TEST_GH_SECRET}"}
  - {name: shop, type: hmac-sha256, secret: "${TEST_HMAC_SECRET}", header: X-Signature, id: 'headers["x-request-id"]', event: payload.topic}
sinks:
  - {name: audit, type: http, url: "${TEST_HTTP_URL}", retry: {max_attempts: 3, initial: 50ms, max_interval: 100ms}}
rules:
  - {name: everything, when: "true", to: [{sink: audit}]}
`

// postSigned posts body to path with the given headers.
func (p *routerProc) postSigned(path string, body []byte, headers map[string]string) (int, string) {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.ingest+path, bytes.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// replyID is the id of a webhook's answer.
func replyID(t *testing.T, body string) string {
	t.Helper()
	var r struct{ ID string }
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return r.ID
}

// listedEvents is GET /api/events?source=… as source/id pairs.
func listedEvents(t *testing.T, p *routerProc, source string) []string {
	t.Helper()
	code, body := adminCall(t, p, "GET", "/api/events?source="+source, replayViewToken)
	if code != 200 {
		t.Fatalf("GET /api/events: %d %s", code, body)
	}
	var out struct {
		Items []struct{ Source, ID string }
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range out.Items {
		ids = append(ids, e.Source+"/"+e.ID)
	}
	return ids
}

func TestReplayUnderNewIDIsDuplicate(t *testing.T) {
	sink := &fakeHTTPSink{}
	sinkSrv := httptest.NewServer(sink)
	defer sinkSrv.Close()
	p := startRouter(t, t.TempDir(), replayConfig, []string{
		"TEST_GH_SECRET=" + replayGitHubSecret,
		"TEST_HMAC_SECRET=" + replayHMACSecret,
		"TEST_VIEW_TOKEN=" + replayViewToken,
		"TEST_HTTP_URL=" + sinkSrv.URL + "/hook",
	})
	delivered := func() int { keys, _ := sink.received(); return len(keys) }

	t.Run("github", func(t *testing.T) {
		body := []byte(`{"action":"opened","issue":{"number":7}}`)
		headers := map[string]string{
			"X-Hub-Signature-256": verify.SignGitHub([]byte(replayGitHubSecret), body),
			"X-GitHub-Delivery":   "delivery-1",
			"X-GitHub-Event":      "issues",
			"X-Api-Key":           "CANARY-e2e-api-key",
		}
		code, answer := p.postSigned("/hooks/gh", body, headers)
		if code != 202 || replyID(t, answer) != "delivery-1" {
			t.Fatalf("first post: %d %s, want 202 with id delivery-1", code, answer)
		}
		eventually(t, 10*time.Second, "the first delivery", func() bool { return delivered() == 1 })

		// The captured request, re-posted under new delivery ids (and
		// another event name, which the signature does not cover either).
		for i := range 5 {
			headers["X-GitHub-Delivery"] = fmt.Sprintf("forged-%d", i)
			if i == 4 {
				headers["X-GitHub-Event"] = "push"
			}
			code, answer := p.postSigned("/hooks/gh", body, headers)
			if code != 200 || replyID(t, answer) != "delivery-1" {
				t.Errorf("replay %d: %d %s, want 200 with the stored id delivery-1", i, code, answer)
			}
		}
		if got := listedEvents(t, p, "gh"); len(got) != 1 || got[0] != "gh/delivery-1" {
			t.Errorf("/api/events?source=gh = %q, want only gh/delivery-1", got)
		}
		if n := p.query(`SELECT count(*) FROM deliveries WHERE source = 'gh'`); n != 1 {
			t.Errorf("%d deliveries stored for gh, want 1", n)
		}
		// The credential header went nowhere (it is dropped by default).
		if code, ev := adminCall(t, p, "GET", "/api/events/delivery-1?source=gh", replayViewToken); code != 200 ||
			strings.Contains(ev, "CANARY") || !strings.Contains(ev, `"x-github-delivery":"delivery-1"`) {
			t.Errorf("GET /api/events/delivery-1: %d %s; want the event without x-api-key", code, ev)
		}

		// A changed body is a new event, whatever its delivery id.
		other := []byte(`{"action":"closed","issue":{"number":7}}`)
		code, answer = p.postSigned("/hooks/gh", other, map[string]string{
			"X-Hub-Signature-256": verify.SignGitHub([]byte(replayGitHubSecret), other),
			"X-GitHub-Delivery":   "delivery-2", "X-GitHub-Event": "issues",
		})
		if code != 202 || replyID(t, answer) != "delivery-2" {
			t.Errorf("another body: %d %s, want 202 with id delivery-2", code, answer)
		}
		eventually(t, 10*time.Second, "the second event's delivery", func() bool { return delivered() == 2 })
	})

	t.Run("hmac-sha256", func(t *testing.T) {
		body := []byte(`{"topic":"orders/create","order":{"id":1001}}`)
		mac := hmac.New(sha256.New, []byte(replayHMACSecret))
		mac.Write(body)
		headers := map[string]string{"X-Signature": hex.EncodeToString(mac.Sum(nil)), "X-Request-Id": "req-1"}
		code, answer := p.postSigned("/hooks/shop", body, headers)
		if code != 202 || replyID(t, answer) != "req-1" {
			t.Fatalf("first post: %d %s, want 202 with id req-1", code, answer)
		}
		eventually(t, 10*time.Second, "the order's delivery", func() bool { return delivered() == 3 })
		for i := range 3 {
			headers["X-Request-Id"] = fmt.Sprintf("req-forged-%d", i)
			code, answer := p.postSigned("/hooks/shop", body, headers)
			if code != 200 || replyID(t, answer) != "req-1" {
				t.Errorf("replay %d: %d %s, want 200 with the stored id req-1", i, code, answer)
			}
		}
		if got := listedEvents(t, p, "shop"); len(got) != 1 || got[0] != "shop/req-1" {
			t.Errorf("/api/events?source=shop = %q, want only shop/req-1", got)
		}
	})

	// Nothing more reaches the sink, and the replays were counted as
	// duplicates.
	time.Sleep(300 * time.Millisecond)
	if n := delivered(); n != 3 {
		t.Errorf("the sink got %d deliveries, want 3 (one per event)", n)
	}
	if n := p.query(`SELECT count(*) FROM events`); n != 3 {
		t.Errorf("%d events stored, want 3", n)
	}
	code, metrics := adminCall(t, p, "GET", "/metrics", replayViewToken)
	for _, want := range []string{
		`hookroute_events_total{outcome="duplicate",source="gh"} 5`,
		`hookroute_events_total{outcome="duplicate",source="shop"} 3`,
	} {
		if code != 200 || !strings.Contains(metrics, want) {
			t.Errorf("metrics (%d) lack %s", code, want)
		}
	}
}
