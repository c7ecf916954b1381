package sinks

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
)

// httpFake records requests and answers each path its own way.
type httpFake struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
	body [][]byte
}

func newHTTPFake(t *testing.T) *httpFake {
	f := &httpFake{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs, f.body = append(f.reqs, r), append(f.body, b)
		f.mu.Unlock()
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusOK)
		case "/created":
			w.WriteHeader(http.StatusCreated)
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/bad":
			http.Error(w, `{"error":"field text is required"}`, http.StatusBadRequest)
		case "/timeout":
			w.WriteHeader(http.StatusRequestTimeout)
		case "/slow":
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/down":
			w.Header().Set("Retry-After", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/huge":
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(strings.Repeat("boom ", 1<<18)))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *httpFake) last(t *testing.T) (*http.Request, []byte) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("no request received")
	}
	return f.reqs[len(f.reqs)-1], f.body[len(f.body)-1]
}

func (f *httpFake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func httpSinkAt(t *testing.T, url string) router.Sink {
	return mustBuild(t, "http", "url: "+url+"\nheaders: {X-Api-Key: '${API_KEY}'}", map[string]string{"API_KEY": "k-123456"})
}

func TestHTTPSendsEventByDefault(t *testing.T) {
	f := newHTTPFake(t)
	res, err := httpSinkAt(t, f.URL+"/ok").Deliver(context.Background(), delivery(map[string]string{}))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("Deliver: %v, %+v", err, res)
	}
	r, body := f.last(t)
	checks := map[string]string{
		"Method":          r.Method,
		"Content-Type":    r.Header.Get("Content-Type"),
		"Idempotency-Key": r.Header.Get("Idempotency-Key"),
		"User-Agent":      r.Header.Get("User-Agent"),
		"X-Api-Key":       r.Header.Get("X-Api-Key"),
	}
	want := map[string]string{"Method": "POST", "Content-Type": "application/json", "Idempotency-Key": "dlv-0001", "User-Agent": "hookroute", "X-Api-Key": "k-123456"}
	for k, v := range want {
		if checks[k] != v {
			t.Errorf("%s = %q, want %q", k, checks[k], v)
		}
	}
	golden(t, "http/event.golden", body)
}

// TestHTTPSendsEventJSON: the event as JSON that the worker builds from the
// stored body (Delivery.EventJSON) goes out as it is; a body field still
// wins over it.
func TestHTTPSendsEventJSON(t *testing.T) {
	f := newHTTPFake(t)
	s := httpSinkAt(t, f.URL+"/ok")
	if j, ok := s.(router.EventJSONSink); !ok || !j.EventJSONOnly() {
		t.Fatal("the http sink does not take the event as JSON")
	}
	d := delivery(map[string]string{})
	d.Event, d.EventJSON = nil, []byte(`{"event":"conversation.rated","id":"x"}`)
	if _, err := s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if _, body := f.last(t); string(body) != string(d.EventJSON) {
		t.Errorf("body %s, want %s", body, d.EventJSON)
	}
	d.Fields = map[string]string{"body": `{"text":"rendered"}`}
	if _, err := s.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if _, body := f.last(t); string(body) != `{"text":"rendered"}` {
		t.Errorf("body %s, want the rendered body field", body)
	}
}

func TestHTTPSendsRenderedBody(t *testing.T) {
	f := newHTTPFake(t)
	s := mustBuild(t, "http", "url: "+f.URL+"/created\nmethod: put\ncontent_type: application/vnd.acme+json", nil)
	// What the router renders from {"text": "{{ .chat.feedback }}"}.
	specs, _ := testRegistry().RouteFields("http")
	esc := specs[0].Escape
	body := `{"text": "` + esc("too slow \"really\"\n<b>") + `"}`
	res, err := s.Deliver(context.Background(), delivery(map[string]string{"body": body}))
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("Deliver: %v, %+v", err, res)
	}
	r, got := f.last(t)
	if r.Method != "PUT" || r.Header.Get("Content-Type") != "application/vnd.acme+json" {
		t.Errorf("method %s, content type %s", r.Method, r.Header.Get("Content-Type"))
	}
	var v map[string]string
	if err := json.Unmarshal(got, &v); err != nil || v["text"] != "too slow \"really\"\n<b>" {
		t.Errorf("body %s is not the JSON intended: %v", got, err)
	}
	golden(t, "http/body.golden", got)
}

func TestHTTPStatuses(t *testing.T) {
	f := newHTTPFake(t)
	tests := []struct {
		path      string
		code      int
		permanent bool
		ok        bool
		after     time.Duration
		text      string
	}{
		{"/ok", 200, false, true, 0, ""},
		{"/empty", 204, false, true, 0, ""},
		{"/moved", 302, true, false, 0, "redirects are not followed"},
		{"/bad", 400, true, false, 0, "field text is required"},
		{"/nowhere", 404, true, false, 0, "404"},
		{"/timeout", 408, false, false, 0, "408"},
		{"/slow", 429, false, false, time.Second, "429"},
		{"/down", 503, false, false, 0, "503"},
		{"/huge", 500, false, false, 0, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			before := f.count()
			res, err := httpSinkAt(t, f.URL+tt.path).Deliver(context.Background(), delivery(nil))
			if res.StatusCode != tt.code {
				t.Errorf("status %d, want %d", res.StatusCode, tt.code)
			}
			if f.count() != before+1 {
				t.Errorf("%d requests, want 1 (redirects must not be followed)", f.count()-before)
			}
			if tt.ok {
				if err != nil {
					t.Fatalf("got %v", err)
				}
				return
			}
			if err == nil || router.IsPermanent(err) != tt.permanent {
				t.Fatalf("got %v, want permanent=%v", err, tt.permanent)
			}
			if tt.after > 0 && router.RetryAfterOf(err) != tt.after {
				t.Errorf("retry after %v, want %v", router.RetryAfterOf(err), tt.after)
			}
			if tt.path == "/down" && router.RetryAfterOf(err) < 59*time.Minute {
				t.Errorf("HTTP-date Retry-After: %v", router.RetryAfterOf(err))
			}
			if !strings.Contains(err.Error(), tt.text) || strings.Contains(err.Error(), tt.path) || len(err.Error()) > 400 {
				t.Errorf("error %q: want %q in it, the path not", err, tt.text)
			}
		})
	}
}

func TestHTTPConfig(t *testing.T) {
	env := map[string]string{"TWO_LINES": "a\nb"}
	tests := []struct{ snippet, path, msg string }{
		{"method: POST", "url", "must be set"},
		{"url: ftp://x.example/", "url", "http or https"},
		{"url: https://user:pw@x.example/", "url", "user or password"},
		{"url: /relative", "url", "http or https"},
		{"url: https://x.example/\nmethod: GET", "method", "POST, PUT or PATCH"},
		{"url: https://x.example/\ncontent_type: ';;'", "content_type", "media type"},
		{"url: https://x.example/\nheaders: {Idempotency-Key: x}", "headers.Idempotency-Key", "set by hookroute"},
		{"url: https://x.example/\nheaders: {content-type: x}", "headers.content-type", "use content_type"},
		{"url: https://x.example/\nheaders: {'bad name': x}", "headers.bad name", "not a valid header name"},
		{"url: https://x.example/\nheaders: {X-Two: '${TWO_LINES}'}", "headers.X-Two", "one line"},
		{"url: https://x.example/\ntimeout_ms: 5", "timeout_ms", "unknown key"},
	}
	for _, tt := range tests {
		_, err := build(t, "http", tt.snippet, env)
		wantConfigError(t, err, tt.path, tt.msg)
	}
	mustBuild(t, "http", "url: http://127.0.0.1:9/x\nsecured: false\nmethod: patch", nil)
}
