package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// scheduleE2EConfig keeps one route to a schedule that is closed today
// (UTC) and the next two days, and one route outside it; {{TODAY}} and
// {{PLUS2}} are the dates. Three days, so that a run across midnight sees
// the same next opening.
const scheduleE2EConfig = `
server: {listen: "{{LISTEN}}", admin_listen: "{{ADMIN}}"}
store: {url: "sqlite:{{DB}}"}
admin:
  tokens:
    - {name: ops, token: "${TEST_ADMIN_TOKEN}", scopes: [read]}
egress: {allow: ["127.0.0.1/32"]}
sources:
  - {name: salesiq, type: salesiq, public_keys: [{pem: "${TEST_PUBLIC_KEY}"}]}
sinks:
  - {name: office, type: http, url: "${TEST_HTTP_URL}"}
  - {name: night, type: http, url: "${TEST_HTTP_URL}"}
  - {name: dropper, type: http, url: "${TEST_HTTP_URL}"}
schedules:
  - name: hours
    timezone: UTC
    weekly: ["mon-sun 00:00-24:00"]
    except: ["{{TODAY}}..{{PLUS2}}"]
rules:
  - name: sad
    source: salesiq
    when: chat.rating == "sad"
    to:
      - {sink: office, during: hours}
      - {sink: night, outside: hours}
      - {sink: dropper, during: hours, when_closed: drop}
`

// TestScheduleDefersOnTheRealClock: with the real clock, a route whose
// schedule is closed waits, unattempted, with the reason in the log, one
// with when_closed: drop is suppressed, and the route outside it
// delivers at once.
func TestScheduleDefersOnTheRealClock(t *testing.T) {
	var got atomic.Int32
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	defer sink.Close()
	now := time.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	const token = "schedule-test-token-31f5c"
	conf := strings.NewReplacer("{{TODAY}}", today.Format("2006-01-02"), "{{PLUS2}}", today.AddDate(0, 0, 2).Format("2006-01-02")).Replace(scheduleE2EConfig)
	p := startRouter(t, t.TempDir(), conf, []string{
		"TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey), "TEST_HTTP_URL=" + sink.URL + "/hook", "TEST_ADMIN_TOKEN=" + token,
	})
	if code, resp := p.post("/hooks/salesiq", salesiqEvent("8101", "1", "slow", 1), e2eKey); code != 202 {
		t.Fatalf("post: %d %s", code, resp)
	}
	type item struct {
		Sink          string
		Status        string
		LastError     string `json:"last_error"`
		Attempts      int
		NextAttemptAt time.Time `json:"next_attempt_at"`
	}
	var list struct{ Items []item }
	var office, dropper item
	eventually(t, 10*time.Second, "night delivered, office deferred and dropper suppressed", func() bool {
		adminGet(t, p, token, "/api/deliveries", &list)
		var night bool
		for _, d := range list.Items {
			switch d.Sink {
			case "night":
				night = d.Status == "delivered"
			case "office":
				office = d
			case "dropper":
				dropper = d
			}
		}
		return night && office.LastError != "" && dropper.Status == "suppressed"
	})
	if !strings.HasPrefix(dropper.LastError, "suppressed (during: hours, when_closed: drop): closed, opens ") || dropper.Attempts != 0 {
		t.Errorf("dropper's delivery: %+v; want suppressed, unattempted, with why", dropper)
	}
	opens := today.AddDate(0, 0, 3)
	if office.Status != "pending" || office.Attempts != 0 || !office.NextAttemptAt.Equal(opens) ||
		!strings.HasPrefix(office.LastError, "deferred (during: hours): closed, opens ") {
		t.Errorf("office's delivery: %+v; want pending, unattempted, due %v, with why it waits", office, opens)
	}
	if n := got.Load(); n != 1 {
		t.Errorf("the sink got %d requests; want night's alone", n)
	}
}
