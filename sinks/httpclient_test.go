package sinks

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/rules"
)

func TestClassifyStatus(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	const (
		ok = iota
		retry
		permanent
	)
	tests := []struct {
		code       int
		retryAfter string
		want       int
		after      time.Duration
	}{
		{200, "", ok, 0},
		{201, "", ok, 0},
		{204, "", ok, 0},
		{301, "", permanent, 0},
		{302, "", permanent, 0},
		{307, "", permanent, 0},
		{400, "", permanent, 0},
		{401, "", permanent, 0},
		{403, "", permanent, 0},
		{404, "", permanent, 0},
		{409, "", permanent, 0},
		{410, "", permanent, 0},
		{422, "", permanent, 0},
		{400, "5", permanent, 0}, // Retry-After does not make a 400 retryable
		{408, "", retry, 0},
		{425, "", retry, 0},
		{429, "", retry, 0},
		{429, "1", retry, time.Second},
		{429, "120", retry, 2 * time.Minute},
		{429, now.Add(30 * time.Second).Format(http.TimeFormat), retry, 30 * time.Second},
		{429, now.Add(-time.Minute).Format(http.TimeFormat), retry, 0}, // in the past
		{429, "soon", retry, 0},
		{500, "", retry, 0},
		{502, "", retry, 0},
		{503, "7", retry, 7 * time.Second},
		{504, "", retry, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d_%s", tt.code, tt.retryAfter), func(t *testing.T) {
			h := http.Header{}
			if tt.retryAfter != "" {
				h.Set("Retry-After", tt.retryAfter)
			}
			err := classifyStatus(tt.code, h, []byte("nope"), now)
			switch tt.want {
			case ok:
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			case retry:
				if err == nil || router.IsPermanent(err) {
					t.Fatalf("got %v, want a retryable error", err)
				}
			case permanent:
				if !router.IsPermanent(err) {
					t.Fatalf("got %v, want a permanent error", err)
				}
			}
			if got := router.RetryAfterOf(err); got != tt.after {
				t.Errorf("retry after %v, want %v", got, tt.after)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(tt.code)) || !strings.Contains(err.Error(), "nope") {
				t.Errorf("error %q should name the status and quote the body", err)
			}
		})
	}
}

func TestSnippet(t *testing.T) {
	tests := map[string]string{
		"":                              "",
		"channel_is_archived":           "channel_is_archived",
		"  two\r\n\tlines\x00\x1b[31m ": "two lines [31m",
		"bad \xff utf8":                 "bad utf8",
	}
	for in, want := range tests {
		if got := snippet([]byte(in)); got != want {
			t.Errorf("snippet(%q) = %q, want %q", in, got, want)
		}
	}
	long := snippet([]byte(strings.Repeat("é", 500)))
	if len(long) > maxSnippet || !strings.HasSuffix(long, "…") || !utf8.ValidString(long) {
		t.Errorf("long snippet: %d bytes, %q", len(long), long)
	}
}

func TestReadBodyIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		_, _ = w.Write([]byte(strings.Repeat("x", 4*maxResponseBody)))
	}))
	defer srv.Close()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL, nil)
	code, body, err := send(srv.Client(), req, redact.New(), "srv")
	if code != 500 || len(body) != maxResponseBody || err == nil {
		t.Fatalf("got %d, %d bytes, %v", code, len(body), err)
	}
	if len(err.Error()) > 300 {
		t.Errorf("error is %d bytes long", len(err.Error()))
	}
}

func TestEscapeJSONString(t *testing.T) {
	in := "say \"hi\"\n<b> & \\ \t\u2028"
	got := escapeJSONString(in)
	want := `say \"hi\"\n<b> & \\ \t\u2028`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestAmbiguousIPSpellingsRefusedAtLoad: a sink URL whose host is one of
// the numeric spellings of an IPv4 address that resolvers disagree on is a
// load error at the URL's line and column, written in the file or given
// by ${VAR}, for every kind of sink URL.
func TestAmbiguousIPSpellingsRefusedAtLoad(t *testing.T) {
	const conf = `sources:
  - {name: gen, type: none}
sinks:
  - name: out
    type: %s
    %s
rules:
  - {name: all, when: "true", to: [{sink: out%s}]}
`
	load := func(kind, line, route string, env map[string]string) string {
		t.Helper()
		src := fmt.Sprintf(conf, kind, line, route)
		_, err := rules.Load("rules.yaml", []byte(src), NewRegistry(), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err == nil {
			t.Fatalf("%s sink with %q loaded, want an error", kind, line)
		}
		return err.Error()
	}
	for _, host := range []string{"2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.0.0.1", "127.0.1", "0177.1", "127.000.0.1", "1.2.3.4."} {
		got := load("http", "url: http://"+host+":8080/hook", "", nil)
		if want := "rules.yaml:6:10: sinks[0].url: check URL: the host is an ambiguous IPv4 spelling"; !strings.Contains(got, want) {
			t.Errorf("%s: got\n%s\nwant it to contain\n%s", host, got, want)
		}
		if strings.Contains(got, host) {
			t.Errorf("%s: the error quotes the URL: %s", host, got)
		}
	}
	for _, c := range []struct{ kind, line, route, want string }{
		{"http", "url: ${HOOK_URL}", "", "rules.yaml:6:10: sinks[0].url: check URL: the host is an ambiguous"},
		{"slack", "webhook_url: ${HOOK_URL}", ", text: hi", "rules.yaml:6:18: sinks[0].webhook_url: check URL: the host is an ambiguous"},
		{"slack", "token: ${TOKEN}\n    channel: C1\n    api_url: https://0x7f.1/api/", ", text: hi", "rules.yaml:8:14: sinks[0].api_url: check URL: the host is an ambiguous"},
		{"pagerduty", "routing_key: ${TOKEN}\n    base_url: https://127.1/", "", "rules.yaml:7:15: sinks[0].base_url: check URL: the host is an ambiguous"},
	} {
		got := load(c.kind, c.line, c.route, map[string]string{"HOOK_URL": "https://0x7f000001/services/T/B/X", "TOKEN": "t0k3n-for-the-test"})
		if !strings.Contains(got, c.want) {
			t.Errorf("%s %s: got\n%s\nwant it to contain\n%s", c.kind, c.line, got, c.want)
		}
	}
	// The canonical spelling still loads: whether it may be reached is the
	// guard's decision, at dial time.
	src := fmt.Sprintf(conf, "http", "url: http://127.0.0.1:8080/hook", "")
	if _, err := rules.Load("rules.yaml", []byte(src), NewRegistry(), nil); err != nil {
		t.Fatalf("canonical address: %v", err)
	}
}
