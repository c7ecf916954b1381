package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hookroute/hookroute/internal/fakeapi"
)

// Noise control, end to end: a rule's group: (digests) and a route's
// cooldown:, the binary against the Slack Web API fake, on SQLite and
// PostgreSQL, through a SIGKILL and across two replicas.

const (
	noiseSlackToken = "xoxb-noise-token"
	noiseViewToken  = "e2e-noise-view-token"
	noiseVisitor    = "tricia@zylker.com"
	// noisePoll is how often the tests look: deadlines, not sleeps.
	noisePoll = 25 * time.Millisecond
)

// noiseConfig is a router on ${TEST_STORE_URL} with a read token, the
// salesiq source, a Slack sink (#noise) and one rule for sad ratings whose
// rule-level keys are ruleExtra (a group:) and whose one route to Slack
// has routeLines (text:, cooldown:).
func noiseConfig(ruleExtra string, routeLines ...string) string {
	var route strings.Builder
	for _, l := range routeLines {
		route.WriteString("        " + l + "\n")
	}
	if ruleExtra != "" {
		ruleExtra = "    " + ruleExtra + "\n"
	}
	return `
server: {listen: "{{LISTEN}}", admin_listen: "{{ADMIN}}", shutdown_timeout: 5s}
store: {url: "${TEST_STORE_URL}"}
egress: {allow: ["127.0.0.1/32"]}   # the Slack fake listens on loopback
admin:
  tokens:
    - {name: viewer, token: "${TEST_VIEW_TOKEN}", scopes: [read]}
sources:
  - {name: salesiq, type: salesiq, public_keys: [{pem: "${TEST_PUBLIC_KEY}"}]}
sinks:
  - name: slack
    type: slack
    token: ${TEST_SLACK_TOKEN}
    channel: "#noise"
    api_url: ${TEST_SLACK_URL}
    rate: 100
    retry: {max_attempts: 5, initial: 100ms, max_interval: 300ms}
rules:
  - name: sad
    source: salesiq
    when: event == "conversation.rated" && chat.rating == "sad"
` + ruleExtra + `    to:
      - sink: slack
` + route.String()
}

// digestText is the grouped route's text.
const digestText = `text: '{{ .group.count }} sad ratings from {{ .group.key }}:{{ range .events }} {{ .entity_id }}{{ end }}'`

// digestWant is what digestText renders for a group of visitor's events
// about chats, oldest first.
func digestWant(visitor string, chats ...string) string {
	return fmt.Sprintf("%d sad ratings from visitor.email_id=%s: %s", len(chats), visitor, strings.Join(chats, " "))
}

// noiseSlack is the Slack fake behind an httptest server that notes when
// each chat.postMessage arrived.
type noiseSlack struct {
	fake *fakeapi.Slack
	url  string // the api_url: ends in /api/

	mu    sync.Mutex
	posts []noisePost
}

type noisePost struct {
	at   time.Time
	text string
}

func newNoiseSlack(t *testing.T) *noiseSlack {
	t.Helper()
	s := &noiseSlack{fake: fakeapi.NewSlack(noiseSlackToken)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/chat.postMessage" {
			// The router posts a form: note its text and when it came,
			// and hand the fake the body again.
			b, _ := io.ReadAll(r.Body)
			form, _ := url.ParseQuery(string(b))
			s.mu.Lock()
			s.posts = append(s.posts, noisePost{at: time.Now(), text: form.Get("text")})
			s.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		s.fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/api/"
	return s
}

// messages returns the chat.postMessage calls received, oldest first.
func (s *noiseSlack) messages() []noisePost {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]noisePost(nil), s.posts...)
}

// texts returns the texts of the messages received.
func (s *noiseSlack) texts() []string {
	var out []string
	for _, m := range s.messages() {
		out = append(out, m.text)
	}
	return out
}

// noiseEnv is the environment of noiseConfig for store and slack.
func noiseEnv(t *testing.T, store string, slack *noiseSlack) []string {
	return []string{
		"TEST_STORE_URL=" + store,
		"TEST_VIEW_TOKEN=" + noiseViewToken,
		"TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey),
		"TEST_SLACK_TOKEN=" + noiseSlackToken, "TEST_SLACK_URL=" + slack.url,
	}
}

// noiseEvent is a sad conversation.rated event about chat from the
// visitor with email.
func noiseEvent(chat, email string) []byte {
	b, _ := json.Marshal(map[string]any{
		"entity_type": "conversation", "event": "conversation.rated", "entity_id": chat,
		"org_id": "55778119", "app_id": json.Number("40526000000002040"), "attempt": 1, "version": "1",
		"event_time": "1700000000000",
		"entity": map[string]any{
			"id": chat, "status": "Ended", "rating": 1, "feedback": "slow",
			"visitor": map[string]any{"type": "contact", "id": "2", "name": "Tricia", "email_id": email},
		},
	})
	return b
}

// sendNoise posts a sad rating about chat from email to p and wants it
// acknowledged with one delivery.
func sendNoise(t *testing.T, p *routerProc, chat, email string) {
	t.Helper()
	code, resp := p.post("/hooks/salesiq", noiseEvent(chat, email), e2eKey)
	if code != 202 || !strings.Contains(resp, `"deliveries":1`) {
		t.Fatalf("post %s: %d %s, want 202 with 1 delivery", chat, code, resp)
	}
}

// noiseDeliveries is GET /api/deliveries?status=status (every delivery
// for ""), through p's admin API with the read token.
func noiseDeliveries(t *testing.T, p *routerProc, status string) []convDelivery {
	t.Helper()
	path := "/api/deliveries?limit=100"
	if status != "" {
		path += "&status=" + url.QueryEscape(status)
	}
	code, body := adminCall(t, p, "GET", path, noiseViewToken)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var out struct{ Items []convDelivery }
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return out.Items
}

// noiseChats maps delivery ids to the chat ids of their events, from
// every delivery p's admin API lists.
func noiseChats(t *testing.T, p *routerProc) map[string]string {
	t.Helper()
	code, body := adminCall(t, p, "GET", "/api/deliveries?limit=100", noiseViewToken)
	if code != 200 {
		t.Fatalf("GET /api/deliveries: %d %s", code, body)
	}
	var out struct {
		Items []struct {
			ID      string `json:"id"`
			EventID string `json:"event_id"`
		}
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, d := range out.Items {
		// conversation.rated:{chat}:{event_time}
		parts := strings.Split(d.EventID, ":")
		if len(parts) != 3 {
			t.Fatalf("delivery %s: event id %q is not event:chat:time", d.ID, d.EventID)
		}
		m[d.ID] = parts[1]
	}
	return m
}

// noiseWait polls cond every noisePoll until it holds, or fails after
// timeout with what and the state last seen (state is called on failure).
func noiseWait(t *testing.T, timeout time.Duration, what string, cond func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; %s", timeout, what, state())
		}
		time.Sleep(noisePoll)
	}
}

// checkGrouped wants one delivery of chats (the visitor's) delivered in
// one attempt, the carrier, and every other one grouped into it, unsent,
// under the group of visitor.
func checkGrouped(t *testing.T, p *routerProc, visitor string, chats []string) {
	t.Helper()
	byID := noiseChats(t, p)
	ours := map[string]bool{}
	for _, c := range chats {
		ours[c] = true
	}
	var carrier convDelivery
	for _, d := range noiseDeliveries(t, p, "delivered") {
		if !ours[byID[d.ID]] {
			continue
		}
		if carrier.ID != "" {
			t.Fatalf("two deliveries of the group delivered: %s (chat %s) and %s (chat %s), want one carrier", carrier.ID, byID[carrier.ID], d.ID, byID[d.ID])
		}
		carrier = d
	}
	if carrier.ID == "" {
		t.Fatalf("no delivery of chats %v delivered", chats)
	}
	if carrier.Attempts != 1 {
		t.Errorf("carrier %s: %d attempts, want 1", carrier.ID, carrier.Attempts)
	}
	var grouped []convDelivery
	for _, d := range noiseDeliveries(t, p, "grouped") {
		if ours[byID[d.ID]] {
			grouped = append(grouped, d)
		}
	}
	if len(grouped) != len(chats)-1 {
		t.Errorf("%d deliveries grouped, want %d", len(grouped), len(chats)-1)
	}
	seen := map[string]bool{byID[carrier.ID]: true}
	want := fmt.Sprintf("grouped into delivery %s (group visitor.email_id=%s)", carrier.ID, visitor)
	for _, d := range grouped {
		if d.LastError != want || d.Attempts != 0 || d.InFlight {
			t.Errorf("grouped delivery %s (chat %s): %q after %d attempts (in flight %v), want %q after none", d.ID, byID[d.ID], d.LastError, d.Attempts, d.InFlight, want)
		}
		seen[byID[d.ID]] = true
	}
	for _, c := range chats {
		if !seen[c] {
			t.Errorf("chat %s's delivery is neither the carrier (chat %s) nor grouped into it", c, byID[carrier.ID])
		}
	}
}

// noiseState describes the Slack messages and deliveries, for failures.
func noiseState(t *testing.T, p *routerProc, slack *noiseSlack) func() string {
	return func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "Slack messages: %q; deliveries:", slack.texts())
		for _, d := range noiseDeliveries(t, p, "") {
			fmt.Fprintf(&b, "\n  %s %s attempts=%d in_flight=%v %q", d.ID, d.Status, d.Attempts, d.InFlight, d.LastError)
		}
		return b.String()
	}
}

// noMoreMessages waits grace and fails if Slack got more than n
// messages, or refused any.
func noMoreMessages(t *testing.T, slack *noiseSlack, n int, grace time.Duration) {
	t.Helper()
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if got := slack.texts(); len(got) > n {
			t.Fatalf("%d Slack messages, want %d: %q", len(got), n, got)
		}
		time.Sleep(noisePoll)
	}
	// Each one a message the fake accepted, not a call it refused.
	if roots := slack.fake.Roots("#noise"); len(roots) != len(slack.texts()) {
		t.Fatalf("the fake holds %d messages in #noise, for %d chat.postMessage calls", len(roots), len(slack.texts()))
	}
}

func TestGroupDigestSQLite(t *testing.T) {
	dir := t.TempDir()
	testGroupDigest(t, dir, "sqlite:"+filepath.Join(dir, "hookroute.db"))
}

func TestGroupDigestPostgres(t *testing.T) {
	u, _ := freshSchema(t, postgresURL(t))
	testGroupDigest(t, t.TempDir(), u)
}

// testGroupDigest: five sad ratings from one visitor within a second, with
// wait: 2s, make one Slack message listing the five, oldest first, sent
// no sooner than 2 s after the first; the other four deliveries are
// grouped into the carrier. Another visitor's rating in the same second
// is a group of its own.
func testGroupDigest(t *testing.T, dir, store string) {
	slack := newNoiseSlack(t)
	const wait = 2 * time.Second
	p := startRouter(t, dir, noiseConfig("group: {by: [visitor.email_id], wait: 2s}", digestText), noiseEnv(t, store, slack))
	state := noiseState(t, p, slack)

	chats := []string{"g1", "g2", "g3", "g4", "g5"}
	first := time.Now()
	for i, c := range chats {
		sendNoise(t, p, c, noiseVisitor)
		if i == 2 {
			sendNoise(t, p, "other1", "other@example.com")
		}
		time.Sleep(100 * time.Millisecond) // distinct receive times: the order is defined
	}
	if sent := time.Since(first); sent >= time.Second {
		t.Fatalf("sending took %v: the test wants the events within 1 s", sent)
	}
	want := map[string]bool{digestWant(noiseVisitor, chats...): true, digestWant("other@example.com", "other1"): true}
	noiseWait(t, wait+8*time.Second, "the two digests", func() bool { return len(slack.texts()) >= 2 }, state)
	// Not one more: neither a second digest nor a single message.
	noMoreMessages(t, slack, 2, 300*time.Millisecond)
	for _, m := range slack.messages() {
		if !want[m.text] {
			t.Errorf("Slack message %q, want one of %q", m.text, noiseKeys(want))
		}
		delete(want, m.text)
		if since := m.at.Sub(first); since < wait {
			t.Errorf("message %q sent %v after the first event, before wait (%v)", m.text, since, wait)
		}
	}
	// The other visitor's delivery went alone; the five have one carrier.
	noiseWait(t, 5*time.Second, "both carriers recorded as delivered", func() bool {
		return len(noiseDeliveries(t, p, "delivered")) == 2
	}, state)
	checkGrouped(t, p, noiseVisitor, chats)
	checkGrouped(t, p, "other@example.com", []string{"other1"})
}

func noiseKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestGroupSurvivesSIGKILL: five ratings are grouped (four joined, the
// carrier waiting out wait: 3s); the router is killed with SIGKILL during
// the wait and restarted on the same file: one message lists all five,
// not sooner than the wait, and no second one follows.
func TestGroupSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	testGroupSurvivesSIGKILL(t, dir, "sqlite:"+filepath.Join(dir, "hookroute.db"))
}

// TestGroupSurvivesSIGKILLPostgres is TestGroupSurvivesSIGKILL on
// PostgreSQL.
func TestGroupSurvivesSIGKILLPostgres(t *testing.T) {
	u, _ := freshSchema(t, postgresURL(t))
	testGroupSurvivesSIGKILL(t, t.TempDir(), u)
}

func testGroupSurvivesSIGKILL(t *testing.T, dir, store string) {
	slack := newNoiseSlack(t)
	const wait = 3 * time.Second
	config := noiseConfig("group: {by: [visitor.email_id], wait: 3s}", digestText)
	env := noiseEnv(t, store, slack)
	p := startRouter(t, dir, config, env)

	chats := []string{"k1", "k2", "k3", "k4", "k5"}
	first := time.Now()
	for _, c := range chats {
		sendNoise(t, p, c, noiseVisitor)
		time.Sleep(20 * time.Millisecond)
	}
	var carrier convDelivery
	noiseWait(t, wait-500*time.Millisecond, "four grouped deliveries and the carrier waiting", func() bool {
		pending := noiseDeliveries(t, p, "pending")
		if len(noiseDeliveries(t, p, "grouped")) != 4 || len(pending) != 1 {
			return false
		}
		carrier = pending[0]
		// Postponed (its lease given back) with the group's note.
		return !carrier.InFlight && strings.HasPrefix(carrier.LastError, "carries group visitor.email_id="+noiseVisitor+", which flushes at ")
	}, noiseState(t, p, slack))
	if n := len(slack.texts()); n != 0 {
		t.Fatalf("%d Slack messages before the wait was over", n)
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil // for startRouter's cleanup
	killed := time.Since(first)
	if killed >= wait {
		t.Fatalf("killed %v after the first event, after the wait (%v): the test proves nothing", killed, wait)
	}

	q := startRouter(t, dir, config, env)
	state := noiseState(t, q, slack)
	noiseWait(t, wait+8*time.Second, "the digest after the restart", func() bool { return len(slack.texts()) >= 1 }, state)
	noMoreMessages(t, slack, 1, 700*time.Millisecond)
	m := slack.messages()[0]
	if want := digestWant(noiseVisitor, chats...); m.text != want {
		t.Errorf("the digest reads %q, want %q", m.text, want)
	}
	if since := m.at.Sub(first); since < wait {
		t.Errorf("the digest was sent %v after the first event, before wait (%v)", since, wait)
	}
	noiseWait(t, 5*time.Second, "the carrier recorded as delivered", func() bool {
		return len(noiseDeliveries(t, q, "delivered")) == 1
	}, state)
	if got := noiseDeliveries(t, q, "delivered")[0].ID; got != carrier.ID {
		t.Errorf("delivered %s, want the carrier seen before the kill, %s", got, carrier.ID)
	}
	checkGrouped(t, q, noiseVisitor, chats)
	t.Logf("killed %v after the first event; digest %v after it", killed.Round(time.Millisecond), m.at.Sub(first).Round(time.Millisecond))
}

// TestGroupTwoReplicas: two routers on one PostgreSQL database, ratings
// sent to each in turn: one message lists every member, once.
func TestGroupTwoReplicas(t *testing.T) {
	u, _ := freshSchema(t, postgresURL(t))
	slack := newNoiseSlack(t)
	const wait = 2 * time.Second
	config := noiseConfig("group: {by: [visitor.email_id], wait: 2s}", digestText)
	env := noiseEnv(t, u, slack)
	replicas := []*routerProc{startRouter(t, t.TempDir(), config, env), startRouter(t, t.TempDir(), config, env)}

	chats := []string{"r1", "r2", "r3", "r4", "r5", "r6"}
	first := time.Now()
	for i, c := range chats {
		sendNoise(t, replicas[i%2], c, noiseVisitor)
		time.Sleep(50 * time.Millisecond)
	}
	state := noiseState(t, replicas[0], slack)
	noiseWait(t, wait+8*time.Second, "the digest", func() bool { return len(slack.texts()) >= 1 }, state)
	noMoreMessages(t, slack, 1, 700*time.Millisecond)
	m := slack.messages()[0]
	if want := digestWant(noiseVisitor, chats...); m.text != want {
		t.Errorf("the digest reads %q, want %q", m.text, want)
	}
	if since := m.at.Sub(first); since < wait {
		t.Errorf("the digest was sent %v after the first event, before wait (%v)", since, wait)
	}
	noiseWait(t, 5*time.Second, "the carrier recorded as delivered and the rest grouped", func() bool {
		return len(noiseDeliveries(t, replicas[1], "delivered")) == 1 && len(noiseDeliveries(t, replicas[1], "grouped")) == len(chats)-1
	}, state)
	checkGrouped(t, replicas[1], noiseVisitor, chats)
}

// TestCooldownE2E: with cooldown: {key: visitor, for: 3s}, a visitor's
// first rating is sent and the next two within the cooldown are
// suppressed, naming the first's delivery; after the cooldown a fourth is
// sent, and its text counts the two suppressed.
func TestCooldownE2E(t *testing.T) {
	slack := newNoiseSlack(t)
	dir := t.TempDir()
	const cooldown = 3 * time.Second
	p := startRouter(t, dir, noiseConfig("",
		`cooldown: {key: "{{ .visitor.email_id }}", for: 3s}`,
		`text: 'sad chat {{ .entity_id }} after {{ .suppressed }} suppressed'`),
		noiseEnv(t, "sqlite:"+filepath.Join(dir, "hookroute.db"), slack))
	state := noiseState(t, p, slack)

	sendNoise(t, p, "c1", noiseVisitor)
	noiseWait(t, 10*time.Second, "the first message", func() bool { return len(slack.texts()) == 1 }, state)
	firstAt := slack.messages()[0].at
	if got, want := slack.texts()[0], "sad chat c1 after 0 suppressed"; got != want {
		t.Errorf("the first message reads %q, want %q", got, want)
	}
	var firstID string
	noiseWait(t, 5*time.Second, "the first delivery recorded", func() bool {
		ds := noiseDeliveries(t, p, "delivered")
		if len(ds) == 1 {
			firstID = ds[0].ID
		}
		return firstID != ""
	}, state)

	sendNoise(t, p, "c2", noiseVisitor)
	sendNoise(t, p, "c3", noiseVisitor)
	var suppressed []convDelivery
	noiseWait(t, cooldown, "two suppressed deliveries", func() bool {
		suppressed = noiseDeliveries(t, p, "suppressed")
		return len(suppressed) == 2
	}, state)
	if time.Since(firstAt) >= cooldown {
		t.Fatalf("the two were suppressed %v after the first message, after the cooldown: the test proves nothing", time.Since(firstAt))
	}
	byID := noiseChats(t, p)
	want := "suppressed by the cooldown of delivery " + firstID + " (cooldown key " + noiseVisitor + ")"
	got := map[string]bool{}
	for _, d := range suppressed {
		got[byID[d.ID]] = true
		if d.LastError != want || d.Attempts != 0 {
			t.Errorf("suppressed delivery %s (chat %s): %q after %d attempts, want %q after none", d.ID, byID[d.ID], d.LastError, d.Attempts, want)
		}
	}
	if !got["c2"] || !got["c3"] {
		t.Errorf("suppressed chats %v, want c2 and c3", noiseKeys(got))
	}
	if n := len(slack.texts()); n != 1 {
		t.Errorf("%d Slack messages within the cooldown, want 1: %q", n, slack.texts())
	}

	// After the cooldown (taken before the first message went, so over
	// by firstAt + 3s).
	for time.Since(firstAt) < cooldown+100*time.Millisecond {
		time.Sleep(noisePoll)
	}
	sendNoise(t, p, "c4", noiseVisitor)
	noiseWait(t, 10*time.Second, "the message after the cooldown", func() bool { return len(slack.texts()) >= 2 }, state)
	noMoreMessages(t, slack, 2, 200*time.Millisecond)
	if got, want := slack.texts()[1], "sad chat c4 after 2 suppressed"; got != want {
		t.Errorf("the message after the cooldown reads %q, want %q", got, want)
	}
	if n := len(noiseDeliveries(t, p, "suppressed")); n != 2 {
		t.Errorf("%d suppressed deliveries, want 2", n)
	}
}
