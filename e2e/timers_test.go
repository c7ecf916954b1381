package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Timers, end to end: a rule's unless: {when, same, within} holds its
// deliveries waiting until within has passed, and a later event matching
// unless.when with the same same: values cancels them; the binary against
// the Slack Web API fake, on SQLite and PostgreSQL, through a SIGKILL and
// across two replicas.

const (
	timerViewToken = "e2e-timer-view-token"
	timerRule      = "missed-chat-unanswered"
	// timerWithin is the rule's unless.within.
	timerWithin = 3 * time.Second
	// timerLate is how late after its due time a timer's message may
	// reach Slack: a firing round (200 ms), a claim and an attempt, with
	// room for a loaded machine.
	timerLate = 3 * time.Second
	// timerGrace is how long the tests watch for a message that must not
	// come, past the time it would have come.
	timerGrace = 700 * time.Millisecond
)

// timerConfig is the example: a missed chat is posted to Slack
// after 3 s unless an operator attended it first.
const timerConfig = `
server: {listen: "{{LISTEN}}", admin_listen: "{{ADMIN}}", shutdown_timeout: 5s}
store: {url: "${TEST_STORE_URL}"}
egress: {allow: ["127.0.0.1/32"]}   # the Slack fake listens on loopback
admin:
  tokens:
    - {name: viewer, token: "${TEST_VIEW_TOKEN}", scopes: [read]}
sources:
  - {name: salesiq, type: salesiq, public_keys: [{pem: "${TEST_PUBLIC_KEY}"}]}
sinks:
  - name: support-slack
    type: slack
    token: ${TEST_SLACK_TOKEN}
    channel: "#support"
    api_url: ${TEST_SLACK_URL}
    rate: 100
    retry: {max_attempts: 5, initial: 100ms, max_interval: 300ms}
rules:
  - name: missed-chat-unanswered
    source: salesiq
    when: event == "conversation.missed"
    unless:
      when: event == "conversation.attender.updated"
      same: [entity_id]
      within: 3s
    to:
      - sink: support-slack
        text: "Chat {{ .entity_id }} missed {{ .timer.waited }} ago and still unanswered"
`

// timerEnv is timerConfig's environment for store and slack.
func timerEnv(t *testing.T, store string, slack *noiseSlack) []string {
	return []string{
		"TEST_STORE_URL=" + store,
		"TEST_VIEW_TOKEN=" + timerViewToken,
		"TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey),
		"TEST_SLACK_TOKEN=" + noiseSlackToken, "TEST_SLACK_URL=" + slack.url,
	}
}

// timerMissedEvent is a conversation.missed event about chat, shaped as
// router/trial/samples/salesiq-conversation-missed.json.
func timerMissedEvent(chat, eventTime string) []byte {
	b, _ := json.Marshal(map[string]any{
		"entity_type": "conversation", "event": "conversation.missed", "entity_id": chat,
		"org_id": "55778119", "app_id": json.Number("40526000000002040"), "attempt": 1, "version": "1",
		"event_time": eventTime,
		"entity": map[string]any{
			"id": chat, "status": "Missed", "question": "Do you ship to Norway?", "missed_time": eventTime,
			"visitor": map[string]any{"type": "lead", "id": "30000000090099", "name": "Ola", "email_id": "ola@example.com"},
		},
	})
	return b
}

// timerAttendedEvent is a conversation.attender.updated event about chat,
// shaped as router/trial/samples/salesiq-conversation-attender-updated.json.
func timerAttendedEvent(chat, eventTime string) []byte {
	b, _ := json.Marshal(map[string]any{
		"entity_type": "conversation", "event": "conversation.attender.updated", "entity_id": chat,
		"org_id": "55778119", "app_id": json.Number("40526000000002040"), "attempt": 1, "version": "1",
		"event_time": eventTime,
		"entity": map[string]any{
			"id": chat, "visitor_conversation_id": "1187", "reference_id": "1187", "status": "Open",
			"question": "Can I change the delivery address of my order?", "department_id": "40526000000002018",
			"app_id": "40526000000002040", "opened_time": "1567068001230", "attended_time": eventTime,
			"owner":       map[string]any{"type": "operator", "id": "40526000000002001", "name": "Patricia", "email_id": "patricia@zylker.com"},
			"supervisors": []any{}, "participants": []any{},
			"visitor": map[string]any{"type": "contact", "id": "30000000090034", "name": "Tricia", "email_id": "tricia@zylker.com", "phone": "9043273469"},
		},
	})
	return b
}

// sendTimerMissed posts chat's conversation.missed to p, wants it
// acknowledged with the rule matched and one delivery, and returns when
// it was sent (before the request: the router received it no sooner)
// and its id.
func sendTimerMissed(t *testing.T, p *routerProc, chat string) (time.Time, string) {
	t.Helper()
	at := time.Now()
	code, resp := p.post("/hooks/salesiq", timerMissedEvent(chat, strconv.FormatInt(at.UnixMilli(), 10)), e2eKey)
	if code != 202 || !strings.Contains(resp, `"matched":["`+timerRule+`"]`) || !strings.Contains(resp, `"deliveries":1`) {
		t.Fatalf("missed %s: %d %s, want 202 matching %s with 1 delivery", chat, code, resp, timerRule)
	}
	return at, replyID(t, resp)
}

// sendTimerAttended posts chat's conversation.attender.updated to p,
// wants it acknowledged matching no rule, and returns its id.
func sendTimerAttended(t *testing.T, p *routerProc, chat string) string {
	t.Helper()
	code, resp := p.post("/hooks/salesiq", timerAttendedEvent(chat, strconv.FormatInt(time.Now().UnixMilli(), 10)), e2eKey)
	if code != 202 || !strings.Contains(resp, `"matched":[]`) || !strings.Contains(resp, `"deliveries":0`) {
		t.Fatalf("attended %s: %d %s, want 202 matching nothing", chat, code, resp)
	}
	return replyID(t, resp)
}

// timerDelivery is a delivery as the admin API lists it.
type timerDelivery struct {
	ID        string `json:"id"`
	EventID   string `json:"event_id"`
	Rule      string `json:"rule"`
	Sink      string `json:"sink"`
	Status    string `json:"status"`
	InFlight  bool   `json:"in_flight"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
}

// timerDeliveries is every delivery p's admin API lists, by the chat of
// its event (conversation.missed:{chat}:{event_time}); a chat has one.
func timerDeliveries(t *testing.T, p *routerProc) map[string]timerDelivery {
	t.Helper()
	code, body := adminCall(t, p, "GET", "/api/deliveries?limit=100", timerViewToken)
	if code != 200 {
		t.Fatalf("GET /api/deliveries: %d %s", code, body)
	}
	var out struct{ Items []timerDelivery }
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("GET /api/deliveries: %v", err)
	}
	m := map[string]timerDelivery{}
	for _, d := range out.Items {
		parts := strings.Split(d.EventID, ":")
		if len(parts) != 3 || parts[0] != "conversation.missed" {
			t.Fatalf("delivery %s of event %q: want only conversation.missed events' deliveries", d.ID, d.EventID)
		}
		if _, dup := m[parts[1]]; dup {
			t.Fatalf("two deliveries for chat %s", parts[1])
		}
		if d.Rule != timerRule || d.Sink != "support-slack" {
			t.Fatalf("delivery %s: rule %s sink %s", d.ID, d.Rule, d.Sink)
		}
		m[parts[1]] = d
	}
	return m
}

// timerState describes the Slack messages and deliveries, for failures.
func timerState(t *testing.T, p *routerProc, slack *noiseSlack) func() string {
	return func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "Slack messages:")
		for _, m := range slack.messages() {
			fmt.Fprintf(&b, "\n  %s %q", m.at.Format("15:04:05.000"), m.text)
		}
		b.WriteString("\ndeliveries:")
		for chat, d := range timerDeliveries(t, p) {
			fmt.Fprintf(&b, "\n  chat %s: %s %s attempts=%d in_flight=%v %q", chat, d.ID, d.Status, d.Attempts, d.InFlight, d.LastError)
		}
		return b.String()
	}
}

// wantTimerStatus fails unless chat's delivery has status, no attempt in
// flight, attempts attempts and last_error lastError.
func wantTimerStatus(t *testing.T, ds map[string]timerDelivery, chat, status string, attempts int, lastError string) {
	t.Helper()
	d, ok := ds[chat]
	if !ok {
		t.Errorf("no delivery for chat %s", chat)
		return
	}
	if d.Status != status || d.InFlight || d.Attempts != attempts || d.LastError != lastError {
		t.Errorf("chat %s's delivery %s: %s (in flight %v) after %d attempts, last_error %q; want %s after %d, last_error %q",
			chat, d.ID, d.Status, d.InFlight, d.Attempts, d.LastError, status, attempts, lastError)
	}
}

// timerText matches the rule's text.
var timerText = regexp.MustCompile(`^Chat (\S+) missed (\S+) ago and still unanswered$`)

// checkTimerMessage fails unless m is chat's message, sent no sooner than
// within after sent and at most timerLate after that, its text showing
// the time waited: at least within, and no more than the message took
// (rounded to the second, as the template's .timer.waited is).
func checkTimerMessage(t *testing.T, m noisePost, chat string, sent time.Time) {
	t.Helper()
	sub := timerText.FindStringSubmatch(m.text)
	if sub == nil || sub[1] != chat {
		t.Errorf("message %q, want chat %s's %q", m.text, chat, "Chat "+chat+" missed … ago and still unanswered")
		return
	}
	took := m.at.Sub(sent)
	if took < timerWithin || took > timerWithin+timerLate {
		t.Errorf("chat %s's message came %v after the missed event, want within %v..%v", chat, took, timerWithin, timerWithin+timerLate)
	}
	waited, err := time.ParseDuration(sub[2])
	if err != nil {
		t.Errorf("chat %s's message %q: waited %q is not a duration: %v", chat, m.text, sub[2], err)
		return
	}
	if waited < timerWithin || waited > took+500*time.Millisecond || waited%time.Second != 0 {
		t.Errorf("chat %s's message says it waited %v; it came %v after the event: want whole seconds, at least %v and at most that", chat, waited, took.Round(time.Millisecond), timerWithin)
	}
}

// noMoreTimerMessages fails if Slack gets more than n messages before
// until, or holds other than n.
func noMoreTimerMessages(t *testing.T, slack *noiseSlack, n int, until time.Time) {
	t.Helper()
	for {
		if got := slack.texts(); len(got) > n {
			t.Fatalf("%d Slack messages, want %d: %q", len(got), n, got)
		}
		if !time.Now().Before(until) {
			break
		}
		time.Sleep(noisePoll)
	}
	if got := slack.texts(); len(got) != n {
		t.Fatalf("%d Slack messages, want %d: %q", len(got), n, got)
	}
	if roots := slack.fake.Roots("#support"); len(roots) != n {
		t.Fatalf("the fake holds %d messages in #support, want %d", len(roots), n)
	}
}

// timerMetric is the value of the timer counter for outcome on p, 0 if
// it has none yet.
func timerMetric(t *testing.T, p *routerProc, outcome string) float64 {
	t.Helper()
	code, body := adminCall(t, p, "GET", "/metrics", timerViewToken)
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	series := `hookroute_timer_deliveries_total{outcome="` + outcome + `"} `
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// timerMessageOf returns the message about chat among slack's.
func timerMessageOf(slack *noiseSlack, chat string) (noisePost, bool) {
	for _, m := range slack.messages() {
		if sub := timerText.FindStringSubmatch(m.text); sub != nil && sub[1] == chat {
			return m, true
		}
	}
	return noisePost{}, false
}

func TestTimersSQLite(t *testing.T) {
	dir := t.TempDir()
	testTimers(t, dir, "sqlite:"+filepath.Join(dir, "hookroute.db"))
}

func TestTimersPostgres(t *testing.T) {
	u, _ := freshSchema(t, postgresURL(t))
	testTimers(t, t.TempDir(), u)
}

// testTimers: chat A is missed and nobody answers: Slack gets one
// message about it, no sooner than 3 s after, saying how long it waited.
// Chat B is missed and attended 1 s later: its delivery is cancelled
// before the attended event is acknowledged, naming that event, and
// Slack never hears of B. An attended event after A's message changes
// nothing.
func testTimers(t *testing.T, dir, store string) {
	slack := newNoiseSlack(t)
	p := startRouter(t, dir, timerConfig, timerEnv(t, store, slack))
	state := timerState(t, p, slack)

	sentA, _ := sendTimerMissed(t, p, "A")
	sentB, _ := sendTimerMissed(t, p, "B")
	ds := timerDeliveries(t, p)
	wantTimerStatus(t, ds, "A", "waiting", 0, "")
	wantTimerStatus(t, ds, "B", "waiting", 0, "")

	time.Sleep(time.Until(sentB.Add(time.Second)))
	attended := sendTimerAttended(t, p, "B")
	if time.Since(sentB) >= timerWithin {
		t.Fatalf("B attended %v after it was missed, not within %v: the test proves nothing", time.Since(sentB), timerWithin)
	}
	// Cancelled before the attended event was acknowledged: no polling.
	wantTimerStatus(t, timerDeliveries(t, p), "B", "cancelled", 0, "cancelled by event salesiq/"+attended)
	if n := len(slack.texts()); n != 0 {
		t.Fatalf("%d Slack messages %v after the first missed event: %q", n, time.Since(sentA), slack.texts())
	}

	noiseWait(t, timerWithin+timerLate+2*time.Second, "chat A's message", func() bool { return len(slack.texts()) >= 1 }, state)
	// B's timer would have run out 3 s after B: nothing by then, and a
	// grace.
	noMoreTimerMessages(t, slack, 1, sentB.Add(timerWithin+timerGrace))
	checkTimerMessage(t, slack.messages()[0], "A", sentA)

	noiseWait(t, 5*time.Second, "A's delivery recorded as delivered", func() bool {
		d := timerDeliveries(t, p)["A"]
		return d.Status == "delivered" && !d.InFlight
	}, state)
	ds = timerDeliveries(t, p)
	if len(ds) != 2 {
		t.Errorf("%d deliveries, want A's and B's", len(ds))
	}
	wantTimerStatus(t, ds, "A", "delivered", 1, "")
	wantTimerStatus(t, ds, "B", "cancelled", 0, "cancelled by event salesiq/"+attended)

	// Attended after its message went: nothing to cancel.
	sendTimerAttended(t, p, "A")
	wantTimerStatus(t, timerDeliveries(t, p), "A", "delivered", 1, "")
	if fired, cancelled := timerMetric(t, p, "fired"), timerMetric(t, p, "cancelled"); fired != 1 || cancelled != 1 {
		t.Errorf("hookroute_timer_deliveries_total: fired %v, cancelled %v; want 1 and 1", fired, cancelled)
	}
	t.Logf("A's message %v after A", slack.messages()[0].at.Sub(sentA).Round(time.Millisecond))
}

func TestTimerSurvivesSIGKILLSQLite(t *testing.T) {
	dir := t.TempDir()
	testTimerSurvivesSIGKILL(t, dir, "sqlite:"+filepath.Join(dir, "hookroute.db"))
}

func TestTimerSurvivesSIGKILLPostgres(t *testing.T) {
	u, _ := freshSchema(t, postgresURL(t))
	testTimerSurvivesSIGKILL(t, t.TempDir(), u)
}

// killTimerRouter ends p with SIGKILL and waits for it to exit.
func killTimerRouter(p *routerProc) {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil // for startRouter's cleanup
}

// testTimerSurvivesSIGKILL: chat A is missed, and the router is killed
// with SIGKILL while A's timer runs and restarted on the same store at
// once: A's message comes once, 3 s after A. Chat C is missed on the
// restarted router, which is killed before C's timer runs out and
// restarted only after: C's message comes at once, once.
func testTimerSurvivesSIGKILL(t *testing.T, dir, store string) {
	slack := newNoiseSlack(t)
	env := timerEnv(t, store, slack)
	p := startRouter(t, dir, timerConfig, env)

	sentA, _ := sendTimerMissed(t, p, "A")
	wantTimerStatus(t, timerDeliveries(t, p), "A", "waiting", 0, "")
	killTimerRouter(p)
	if killed := time.Since(sentA); killed >= timerWithin {
		t.Fatalf("killed %v after A, after its timer ran out: the test proves nothing", killed)
	}

	q := startRouter(t, dir, timerConfig, env)
	state := timerState(t, q, slack)
	if restarted := time.Since(sentA); restarted >= timerWithin-500*time.Millisecond {
		t.Fatalf("restarted %v after A, too near its timer's end: the test proves nothing", restarted)
	}
	wantTimerStatus(t, timerDeliveries(t, q), "A", "waiting", 0, "")
	// C's timer runs out well after A's message.
	time.Sleep(time.Until(sentA.Add(1500 * time.Millisecond)))
	sentC, _ := sendTimerMissed(t, q, "C")

	noiseWait(t, timerWithin+timerLate+2*time.Second, "chat A's message after the restart", func() bool { return len(slack.texts()) >= 1 }, state)
	noiseWait(t, 5*time.Second, "A's delivery recorded as delivered", func() bool {
		d := timerDeliveries(t, q)["A"]
		return d.Status == "delivered" && !d.InFlight
	}, state)
	ds := timerDeliveries(t, q)
	wantTimerStatus(t, ds, "A", "delivered", 1, "")
	wantTimerStatus(t, ds, "C", "waiting", 0, "")
	killTimerRouter(q)
	if killed := time.Since(sentC); killed >= timerWithin {
		t.Fatalf("killed %v after C, after its timer ran out: the test proves nothing", killed)
	}
	if n := len(slack.texts()); n != 1 {
		t.Fatalf("%d Slack messages before C's timer ran out, want A's: %q", n, slack.texts())
	}
	checkTimerMessage(t, slack.messages()[0], "A", sentA)

	// Down past C's due time: the restart fires it at once.
	time.Sleep(time.Until(sentC.Add(timerWithin + 300*time.Millisecond)))
	r := startRouter(t, dir, timerConfig, env)
	ready := time.Now()
	state = timerState(t, r, slack)
	noiseWait(t, timerLate+2*time.Second, "chat C's message after the restart", func() bool { return len(slack.texts()) >= 2 }, state)
	noMoreTimerMessages(t, slack, 2, time.Now().Add(timerGrace))
	c, ok := timerMessageOf(slack, "C")
	if !ok {
		t.Fatalf("no message about C: %q", slack.texts())
	}
	checkTimerMessage(t, c, "C", sentC)
	if after := c.at.Sub(ready); after > 1500*time.Millisecond {
		t.Errorf("C's message came %v after the router restarted past C's due time, want at once", after)
	}
	if a, ok := timerMessageOf(slack, "A"); !ok || a.at.After(ready) {
		t.Errorf("A's message sent again after the second restart: %q", slack.texts())
	}
	noiseWait(t, 5*time.Second, "C's delivery recorded as delivered", func() bool {
		d := timerDeliveries(t, r)["C"]
		return d.Status == "delivered" && !d.InFlight
	}, state)
	ds = timerDeliveries(t, r)
	wantTimerStatus(t, ds, "A", "delivered", 1, "")
	wantTimerStatus(t, ds, "C", "delivered", 1, "")
	if fired := timerMetric(t, r, "fired"); fired != 1 {
		t.Errorf("hookroute_timer_deliveries_total{outcome=\"fired\"} %v on the last router, want 1 (C)", fired)
	}
	t.Logf("A's message %v after A; C's %v after C, %v after the last restart", slack.messages()[0].at.Sub(sentA).Round(time.Millisecond), c.at.Sub(sentC).Round(time.Millisecond), c.at.Sub(ready).Round(time.Millisecond))
}

// TestTimerTwoReplicas: two routers on one PostgreSQL schema, missed
// chats sent to each in turn, one of them attended through the other
// replica: every other chat's message comes once, after its timer; the
// attended chat's delivery is cancelled and never sent.
func TestTimerTwoReplicas(t *testing.T) {
	u, _ := freshSchema(t, postgresURL(t))
	slack := newNoiseSlack(t)
	env := timerEnv(t, u, slack)
	replicas := []*routerProc{startRouter(t, t.TempDir(), timerConfig, env), startRouter(t, t.TempDir(), timerConfig, env)}
	state := timerState(t, replicas[0], slack)

	chats := []string{"m0", "m1", "m2", "m3", "m4", "m5"}
	const attendedChat = "m2" // missed through replica 0, attended through 1
	sent := map[string]time.Time{}
	for i, c := range chats {
		sent[c], _ = sendTimerMissed(t, replicas[i%2], c)
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Until(sent[attendedChat].Add(time.Second)))
	attended := sendTimerAttended(t, replicas[1], attendedChat)
	cancelledBy := "cancelled by event salesiq/" + attended
	// Cancelled before the acknowledgement: either replica sees it.
	for _, p := range replicas {
		wantTimerStatus(t, timerDeliveries(t, p), attendedChat, "cancelled", 0, cancelledBy)
	}
	if n := len(slack.texts()); n != 0 {
		t.Fatalf("%d Slack messages before any timer ran out: %q", n, slack.texts())
	}

	last := sent[chats[len(chats)-1]]
	noiseWait(t, time.Until(last.Add(timerWithin+timerLate+2*time.Second)), "the five unattended chats' messages", func() bool { return len(slack.texts()) >= len(chats)-1 }, state)
	noMoreTimerMessages(t, slack, len(chats)-1, last.Add(timerWithin+timerGrace))
	for _, c := range chats {
		if c == attendedChat {
			continue
		}
		m, ok := timerMessageOf(slack, c)
		if !ok {
			t.Errorf("no message about chat %s: %q", c, slack.texts())
			continue
		}
		checkTimerMessage(t, m, c, sent[c])
	}
	if _, ok := timerMessageOf(slack, attendedChat); ok {
		t.Errorf("a message about the attended chat %s: %q", attendedChat, slack.texts())
	}

	noiseWait(t, 5*time.Second, "five deliveries recorded as delivered", func() bool {
		n := 0
		for _, d := range timerDeliveries(t, replicas[1]) {
			if d.Status == "delivered" && !d.InFlight {
				n++
			}
		}
		return n == len(chats)-1
	}, state)
	ds := timerDeliveries(t, replicas[1])
	if len(ds) != len(chats) {
		t.Errorf("%d deliveries, want %d", len(ds), len(chats))
	}
	for _, c := range chats {
		if c == attendedChat {
			wantTimerStatus(t, ds, c, "cancelled", 0, cancelledBy)
		} else {
			wantTimerStatus(t, ds, c, "delivered", 1, "")
		}
	}
	// Each fired by one replica: the two count five between them.
	var fired, cancelled float64
	for _, p := range replicas {
		fired += timerMetric(t, p, "fired")
		cancelled += timerMetric(t, p, "cancelled")
	}
	if fired != float64(len(chats)-1) || cancelled != 1 {
		t.Errorf("hookroute_timer_deliveries_total over both replicas: fired %v, cancelled %v; want %d and 1", fired, cancelled, len(chats)-1)
	}
	t.Logf("fired by replica 0: %v, by replica 1: %v", timerMetric(t, replicas[0], "fired"), timerMetric(t, replicas[1], "fired"))
}
