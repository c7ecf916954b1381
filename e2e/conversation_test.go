package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookroute/hookroute/internal/fakeapi"
)

// Slack conversations linked to tickets, end to end: the binary against
// the Slack Web API fake and the Zendesk fake.

const (
	convSlackToken = "xoxb-conversation-token"
	convZDToken    = "zd-conversation-token"
	convAdminToken = "e2e-conversation-view-token"
	// convTicketURL is the agent page of the Zendesk fake's first ticket
	// (ids start at 35436) under the sink's subdomain, acme: the link's
	// url, whatever base_url points at.
	convTicketURL = "https://acme.zendesk.com/agent/tickets/35436"
)

// convConfig is the README's Conversations recipe: a sad rating opens a
// Zendesk ticket and a Slack root that shows its link once the ticket
// delivery is done (after:); the chat's close only follows up
// (on_missing: skip), updating the root and adding a reaction.
// zendeskRetry is the helpdesk sink's retry; slackExtra are more keys of
// the sad rating's Slack route.
func convConfig(zendeskRetry string, slackExtra ...string) string {
	var extra strings.Builder
	for _, l := range slackExtra {
		extra.WriteString("        " + l + "\n")
	}
	return `
server: {listen: "{{LISTEN}}", admin_listen: "{{ADMIN}}"}
store: {url: "${TEST_STORE_URL}"}
egress: {allow: ["127.0.0.1/32"]}   # the fakes listen on loopback
admin:
  tokens:
    - {name: viewer, token: "${TEST_VIEW_TOKEN}", scopes: [read]}
sources:
  - {name: salesiq, type: salesiq, public_keys: [{pem: "${TEST_PUBLIC_KEY}"}]}
sinks:
  - name: helpdesk
    type: zendesk
    subdomain: acme
    email: bot@acme.example
    token: ${TEST_ZENDESK_TOKEN}
    base_url: ${TEST_ZENDESK_URL}
    retry: ` + zendeskRetry + `
  - name: support-slack
    type: slack
    token: ${TEST_SLACK_TOKEN}
    channel: "#support"
    api_url: ${TEST_SLACK_URL}
    rate: 100
    retry: {max_attempts: 5, initial: 100ms, max_interval: 300ms}
rules:
  - name: sad-chat
    source: salesiq
    when: event == "conversation.rated" && chat.rating == "sad"
    to:
      - sink: helpdesk
        subject: "Sad chat from {{ .visitor.name }}"
        body: "{{ .chat.feedback }}"
        requester: "{{ .visitor.email_id }}"
        dedup_key: "salesiq-chat-{{ .chat.id }}"
      - sink: support-slack
        dedup_key: "salesiq-chat-{{ .chat.id }}"
        after: [helpdesk]
        root_text: 'Sad chat {{ .chat.id }}: rated {{ .chat.rating }}, "{{ .chat.feedback }}". Ticket: [{{ (index .links "helpdesk").url }}]'
        text: '{{ .visitor.name }} rated it {{ .chat.rating }}: "{{ .chat.feedback }}"'
` + extra.String() + `  - name: chat-closed
    source: salesiq
    when: event == "conversation.completed"
    to:
      - sink: support-slack
        dedup_key: "salesiq-chat-{{ .chat.id }}"
        on_missing: skip
        root_text: 'Chat {{ .chat.id }} closed, ticket {{ (index .links "helpdesk").url | default "none" }} (root {{ (index .links "support-slack").ts }} {{ (index .links "support-slack").url }})'
        reaction: white_check_mark
`
}

// convSetup is a router on convConfig with its fakes.
type convSetup struct {
	p     *routerProc
	slack *fakeapi.Slack
	zd    *fakeapi.Zendesk
	chID  string // the id of #support in the Slack fake

	mu        sync.Mutex
	slackPost []time.Time // when each chat.postMessage arrived
	zdDone    []time.Time // when each Zendesk request was answered
}

// startConversation starts the fakes and the router on store (a store URL;
// "" for a SQLite file in the test's directory).
func startConversation(t *testing.T, store, zendeskRetry string, slackExtra ...string) *convSetup {
	t.Helper()
	s := &convSetup{slack: fakeapi.NewSlack(convSlackToken), zd: fakeapi.NewZendesk("bot@acme.example", convZDToken)}
	s.chID = s.slack.Channel("#support")
	slackSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/chat.postMessage" {
			s.mu.Lock()
			s.slackPost = append(s.slackPost, time.Now())
			s.mu.Unlock()
		}
		s.slack.ServeHTTP(w, r)
	}))
	t.Cleanup(slackSrv.Close)
	zdSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.zd.ServeHTTP(w, r)
		s.mu.Lock()
		s.zdDone = append(s.zdDone, time.Now())
		s.mu.Unlock()
	}))
	t.Cleanup(zdSrv.Close)
	dir := t.TempDir()
	if store == "" {
		store = "sqlite:" + filepath.Join(dir, "hookroute.db")
	}
	s.p = startRouter(t, dir, convConfig(zendeskRetry, slackExtra...), []string{
		"TEST_STORE_URL=" + store,
		"TEST_VIEW_TOKEN=" + convAdminToken,
		"TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey),
		"TEST_ZENDESK_TOKEN=" + convZDToken, "TEST_ZENDESK_URL=" + zdSrv.URL,
		"TEST_SLACK_TOKEN=" + convSlackToken, "TEST_SLACK_URL=" + slackSrv.URL + "/api/",
	})
	return s
}

// completedEvent is a conversation.completed event about chat, shaped as
// router/trial/samples/salesiq-conversation-completed.json.
func completedEvent(chat, eventTime string) []byte {
	b, _ := json.Marshal(map[string]any{
		"entity_type": "conversation", "event": "conversation.completed", "entity_id": chat,
		"org_id": "55778119", "app_id": json.Number("40526000000002040"), "attempt": 1, "version": "1",
		"event_time": eventTime,
		"entity": map[string]any{
			"id": chat, "visitor_conversation_id": "1187", "reference_id": "1187", "status": "Ended",
			"question": "Can I change the delivery address of my order?", "department_id": "40526000000002018",
			"app_id": "40526000000002040", "opened_time": "1567068001230", "attended_time": "1567068031877",
			"end_time":    eventTime,
			"owner":       map[string]any{"type": "operator", "id": "40526000000002001", "name": "Patricia", "email_id": "patricia@zylker.com"},
			"supervisors": []any{}, "participants": []any{},
			"chat_status": map[string]any{"status_code": []int{5}, "state": []string{"ended"}, "label": "Ended"},
			"visitor":     map[string]any{"type": "contact", "id": "30000000090034", "name": "Tricia", "email_id": "tricia@zylker.com", "phone": "9043273469"},
		},
	})
	return b
}

// convDelivery is a delivery as the admin API shows it.
type convDelivery struct {
	ID         string `json:"id"`
	Rule       string `json:"rule"`
	Sink       string `json:"sink"`
	Status     string `json:"status"`
	InFlight   bool   `json:"in_flight"`
	Attempts   int    `json:"attempts"`
	LastError  string `json:"last_error"`
	RemoteID   string `json:"remote_id"`
	AttemptLog []struct {
		At         time.Time `json:"at"`
		DurationMS float64   `json:"duration_ms"`
		Outcome    string    `json:"outcome"`
		Error      string    `json:"error"`
	} `json:"attempt_log"`
}

// send posts body, wants a 202 making want deliveries, waits until every
// one of them is delivered or dead (none pending, none in flight), and
// returns them by sink.
func (s *convSetup) send(t *testing.T, body []byte, want int) map[string]convDelivery {
	t.Helper()
	code, resp := s.p.post("/hooks/salesiq", body, e2eKey)
	if code != 202 || !strings.Contains(resp, fmt.Sprintf(`"deliveries":%d`, want)) {
		t.Fatalf("post: %d %s, want 202 with %d deliveries", code, resp, want)
	}
	id := replyID(t, resp)
	var ds []convDelivery
	eventually(t, 10*time.Second, "event "+id+"'s deliveries delivered or dead", func() bool {
		code, b := adminCall(t, s.p, "GET", "/api/events/"+url.PathEscape(id)+"?source=salesiq", convAdminToken)
		if code != 200 {
			t.Fatalf("GET event %s: %d %s", id, code, b)
		}
		var ev struct{ Deliveries []convDelivery }
		if err := json.Unmarshal([]byte(b), &ev); err != nil {
			t.Fatalf("event %s: %v", id, err)
		}
		ds = ev.Deliveries
		if len(ds) != want {
			return false
		}
		for _, d := range ds {
			if d.Status == "pending" || d.InFlight {
				return false
			}
		}
		return true
	})
	out := map[string]convDelivery{}
	for _, d := range ds {
		out[d.Sink] = s.delivery(t, d.ID)
	}
	return out
}

// delivery is GET /api/deliveries/{id}, with its attempt log.
func (s *convSetup) delivery(t *testing.T, id string) convDelivery {
	t.Helper()
	code, b := adminCall(t, s.p, "GET", "/api/deliveries/"+url.PathEscape(id), convAdminToken)
	if code != 200 {
		t.Fatalf("GET delivery %s: %d %s", id, code, b)
	}
	var d convDelivery
	if err := json.Unmarshal([]byte(b), &d); err != nil {
		t.Fatalf("delivery %s: %v", id, err)
	}
	return d
}

// wantDelivered fails unless every delivery of ds was delivered, each in
// one attempt: an after: wait spends none.
func wantDelivered(t *testing.T, what string, ds map[string]convDelivery) {
	t.Helper()
	for sink, d := range ds {
		if d.Status != "delivered" || d.Attempts != 1 {
			t.Errorf("%s: delivery to %s is %s after %d attempts (%s), want delivered in 1", what, sink, d.Status, d.Attempts, d.LastError)
		}
	}
}

// callSummary is a Slack call in a line, for failure messages.
func callSummary(calls []fakeapi.SlackCall) string {
	var b strings.Builder
	for _, c := range calls {
		f := c.Form
		fmt.Fprintf(&b, "\n  %s channel=%q ts=%q thread_ts=%q timestamp=%q name=%q text=%q", c.Method, f.Get("channel"), f.Get("ts"), f.Get("thread_ts"), f.Get("timestamp"), f.Get("name"), f.Get("text"))
	}
	return b.String()
}

// sadRoot is the sad rating's root text for chat with feedback, ticket
// the helpdesk link's url.
func sadRoot(chat, feedback, ticket string) string {
	return fmt.Sprintf(`Sad chat %s: rated sad, "%s". Ticket: [%s]`, chat, feedback, ticket)
}

func sadReply(feedback string) string { return fmt.Sprintf(`Tricia rated it sad: "%s"`, feedback) }

// closedRoot is the close's root text: the ticket's url, and the root's
// ts and permalink in channel (the Slack fake's permalink shape) as the
// support-slack link has them.
func closedRoot(chat, ticket, channel, rootTS string) string {
	permalink := "https://fake.slack.com/archives/" + channel + "/p" + strings.Replace(rootTS, ".", "", 1)
	return fmt.Sprintf("Chat %s closed, ticket %s (root %s %s)", chat, ticket, rootTS, permalink)
}

func TestConversationSQLite(t *testing.T) {
	testConversation(t, "")
}

func TestConversationPostgres(t *testing.T) {
	url, _ := freshSchema(t, postgresURL(t))
	testConversation(t, url)
}

// testConversation: a sad rating, its feedback and the chat's close make
// one ticket and one Slack thread: the root (showing the ticket's agent
// page), two replies, the root updated twice, one reaction. A close of a
// chat that has no conversation sends nothing.
func testConversation(t *testing.T, store string) {
	s := startConversation(t, store, "{max_attempts: 5, initial: 100ms, max_interval: 300ms}")
	const chat = "40526000001808120"

	ds := s.send(t, ratedEvent(chat, "1700000000000", "No answer about refunds"), 2)
	wantDelivered(t, "the sad rating", ds)
	ds = s.send(t, ratedEvent(chat, "1700000060000", "Still waiting for my refund"), 2)
	wantDelivered(t, "the feedback", ds)
	ds = s.send(t, completedEvent(chat, "1700000120000"), 1)
	wantDelivered(t, "the close", ds)

	all := s.slack.Calls("")
	posts := s.slack.Calls("chat.postMessage")
	var roots, replies []fakeapi.SlackCall
	for _, c := range posts {
		if c.Form.Get("thread_ts") == "" {
			roots = append(roots, c)
		} else {
			replies = append(replies, c)
		}
	}
	if len(roots) != 1 || len(replies) != 2 {
		t.Fatalf("%d roots and %d replies posted, want 1 and 2; Slack calls:%s", len(roots), len(replies), callSummary(all))
	}
	msgs := s.slack.Roots("#support")
	if len(msgs) != 1 {
		t.Fatalf("%d root messages in #support, want 1", len(msgs))
	}
	root := msgs[0]
	if got, want := roots[0].Form.Get("text"), sadRoot(chat, "No answer about refunds", convTicketURL); got != want {
		t.Errorf("the root was posted as %q, want %q (after: [helpdesk] makes the ticket's link known)", got, want)
	}
	for i, want := range []string{sadReply("No answer about refunds"), sadReply("Still waiting for my refund")} {
		f := replies[i].Form
		if f.Get("thread_ts") != root.TS || f.Get("text") != want || f.Get("channel") != s.chID {
			t.Errorf("reply %d: channel %q thread_ts %q text %q, want %q, %q, %q", i, f.Get("channel"), f.Get("thread_ts"), f.Get("text"), s.chID, root.TS, want)
		}
	}
	if got := s.slack.Replies("#support", root.TS); len(got) != 2 || got[0].ReplyBroadcast || got[1].ReplyBroadcast {
		t.Errorf("the fake holds %d replies under the root (%+v), want 2, not broadcast", len(got), got)
	}

	updates := s.slack.Calls("chat.update")
	if len(updates) != 2 {
		t.Fatalf("%d chat.update calls, want 2 (the feedback and the close); Slack calls:%s", len(updates), callSummary(all))
	}
	wantUpdates := []string{
		sadRoot(chat, "Still waiting for my refund", convTicketURL),
		closedRoot(chat, convTicketURL, s.chID, root.TS),
	}
	for i, u := range updates {
		if u.Form.Get("channel") != s.chID || u.Form.Get("ts") != root.TS || u.Form.Get("text") != wantUpdates[i] {
			t.Errorf("chat.update %d: channel %q ts %q text %q, want %q, %q, %q", i, u.Form.Get("channel"), u.Form.Get("ts"), u.Form.Get("text"), s.chID, root.TS, wantUpdates[i])
		}
	}
	if root.Text != wantUpdates[1] || !strings.Contains(root.Text, convTicketURL) {
		t.Errorf("the root reads %q, want %q", root.Text, wantUpdates[1])
	}

	reactions := s.slack.Calls("reactions.add")
	if len(reactions) != 1 {
		t.Fatalf("%d reactions.add calls, want 1; Slack calls:%s", len(reactions), callSummary(all))
	}
	if f := reactions[0].Form; f.Get("name") != "white_check_mark" || f.Get("timestamp") != root.TS || f.Get("channel") != s.chID {
		t.Errorf("reactions.add name %q timestamp %q channel %q, want white_check_mark on %s in %s", f.Get("name"), f.Get("timestamp"), f.Get("channel"), root.TS, s.chID)
	}
	if !slices.Equal(root.Reactions, []string{"white_check_mark"}) {
		t.Errorf("the root's reactions: %v", root.Reactions)
	}

	tickets := s.zd.Tickets()
	if len(tickets) != 1 {
		t.Fatalf("%d tickets, want 1", len(tickets))
	}
	tk := tickets[0]
	if tk.ID != 35436 || tk.ExternalID != "salesiq-chat-"+chat || !slices.Equal(tk.Comments, []string{"No answer about refunds", "Still waiting for my refund"}) {
		t.Errorf("ticket %d external_id %q comments %q, want 35436, salesiq-chat-%s, the two feedbacks", tk.ID, tk.ExternalID, tk.Comments, chat)
	}

	// The close of a chat that never had a sad rating: on_missing: skip
	// sends nothing.
	before := len(s.slack.Calls(""))
	ds = s.send(t, completedEvent("40526000009999999", "1700000180000"), 1)
	if d := ds["support-slack"]; d.Status != "delivered" || d.RemoteID != "" {
		t.Errorf("the other chat's close: delivery %s remote id %q, want delivered with none", d.Status, d.RemoteID)
	}
	if after := s.slack.Calls(""); len(after) != before {
		t.Errorf("the close of a chat without a conversation made Slack calls:%s", callSummary(after[before:]))
	}
	if n := len(s.zd.Tickets()); n != 1 {
		t.Errorf("%d tickets after the other chat's close, want 1", n)
	}
}

// TestConversationRootDeleted: a root someone deleted is posted again
// with the updated root text, the reply goes under the new root, and the
// new root is recorded: the close updates and reacts to it, and its
// template sees its ts.
func TestConversationRootDeleted(t *testing.T) {
	s := startConversation(t, "", "{max_attempts: 5, initial: 100ms, max_interval: 300ms}", "reply_broadcast: true")
	const chat = "40526000001808121"

	wantDelivered(t, "the sad rating", s.send(t, ratedEvent(chat, "1700000000000", "First"), 2))
	old := s.slack.Roots("#support")
	if len(old) != 1 {
		t.Fatalf("%d roots after the first rating, want 1", len(old))
	}
	if !s.slack.DeleteMessage("#support", old[0].TS) {
		t.Fatalf("the fake has no root %s to delete", old[0].TS)
	}

	wantDelivered(t, "the feedback", s.send(t, ratedEvent(chat, "1700000060000", "Second"), 2))
	roots := s.slack.Roots("#support")
	if len(roots) != 2 {
		t.Fatalf("%d roots after the feedback, want the deleted one and a new one; Slack calls:%s", len(roots), callSummary(s.slack.Calls("")))
	}
	fresh := roots[1]
	if fresh.Deleted || fresh.TS == old[0].TS {
		t.Fatalf("the second root %+v is not a new live message", fresh)
	}
	if want := sadRoot(chat, "Second", convTicketURL); fresh.Text != want {
		t.Errorf("the new root reads %q, want the updated root text %q", fresh.Text, want)
	}
	replies := s.slack.Replies("#support", fresh.TS)
	if len(replies) != 1 || replies[0].Text != sadReply("Second") || !replies[0].ReplyBroadcast {
		t.Errorf("replies under the new root: %+v, want one broadcast reply %q", replies, sadReply("Second"))
	}
	if oldReplies := s.slack.Replies("#support", old[0].TS); len(oldReplies) != 1 || oldReplies[0].Text != sadReply("First") {
		t.Errorf("replies under the deleted root: %+v, want only the first rating's", oldReplies)
	}

	wantDelivered(t, "the close", s.send(t, completedEvent(chat, "1700000120000"), 1))
	roots = s.slack.Roots("#support")
	if len(roots) != 2 {
		t.Fatalf("%d roots after the close, want 2", len(roots))
	}
	want := closedRoot(chat, convTicketURL, s.chID, fresh.TS)
	if got := roots[1]; got.Text != want || !slices.Equal(got.Reactions, []string{"white_check_mark"}) {
		t.Errorf("the new root reads %q with reactions %v, want %q with white_check_mark", got.Text, got.Reactions, want)
	}
	if len(roots[0].Updates) != 0 || len(roots[0].Reactions) != 0 {
		t.Errorf("the deleted root got updates %q and reactions %v", roots[0].Updates, roots[0].Reactions)
	}
	for _, c := range append(s.slack.Calls("chat.update")[1:], s.slack.Calls("reactions.add")...) {
		if ts := c.Form.Get("ts") + c.Form.Get("timestamp"); ts != fresh.TS {
			t.Errorf("the close's %s named %s, want the new root %s", c.Method, ts, fresh.TS)
		}
	}
	if n := len(s.slack.Calls("reactions.add")); n != 1 {
		t.Errorf("%d reactions.add calls, want 1", n)
	}
}

// TestConversationAfterDeadTicket: the ticket sink fails every request
// until its delivery is dead; the Slack root waits for that, then goes out
// without a ticket link.
func TestConversationAfterDeadTicket(t *testing.T) {
	s := startConversation(t, "", "{max_attempts: 2, initial: 300ms, max_interval: 300ms}")
	s.zd.Fail(1000, 500, "")
	const chat = "40526000001808122"

	ds := s.send(t, ratedEvent(chat, "1700000000000", "Nobody answered"), 2)
	hd, sl := ds["helpdesk"], ds["support-slack"]
	if hd.Status != "dead" || hd.Attempts != 2 || len(hd.AttemptLog) != 2 {
		t.Fatalf("the ticket delivery: %s after %d attempts (%d logged), want dead after 2", hd.Status, hd.Attempts, len(hd.AttemptLog))
	}
	if sl.Status != "delivered" || sl.Attempts != 1 || len(sl.AttemptLog) != 1 {
		t.Fatalf("the Slack delivery: %s after %d attempts (%s), want delivered in 1", sl.Status, sl.Attempts, sl.LastError)
	}
	if n := len(s.zd.Tickets()); n != 0 {
		t.Errorf("%d tickets, want none", n)
	}

	roots := s.slack.Roots("#support")
	if len(roots) != 1 {
		t.Fatalf("%d roots, want 1", len(roots))
	}
	if want := sadRoot(chat, "Nobody answered", ""); roots[0].Text != want {
		t.Errorf("the root reads %q, want %q (no ticket link)", roots[0].Text, want)
	}
	if r := s.slack.Replies("#support", roots[0].TS); len(r) != 1 || r[0].Text != sadReply("Nobody answered") {
		t.Errorf("replies: %+v, want one %q", r, sadReply("Nobody answered"))
	}

	// Not before the ticket delivery was dead: by the router's clock, the
	// Slack attempt began after the last ticket attempt ended; by the
	// fakes', the first chat.postMessage came after the last Zendesk answer.
	last := hd.AttemptLog[len(hd.AttemptLog)-1]
	deadAt := last.At.Add(time.Duration(last.DurationMS * float64(time.Millisecond)))
	if last.Outcome != "dead" || !sl.AttemptLog[0].At.After(deadAt) {
		t.Errorf("the Slack attempt began at %s, the ticket's last attempt (%s) ended at %s", sl.AttemptLog[0].At.Format(time.RFC3339Nano), last.Outcome, deadAt.Format(time.RFC3339Nano))
	}
	s.mu.Lock()
	posts, zd := slices.Clone(s.slackPost), slices.Clone(s.zdDone)
	s.mu.Unlock()
	if len(zd) != 2 || len(posts) != 2 {
		t.Fatalf("%d Zendesk requests and %d chat.postMessage calls, want 2 and 2", len(zd), len(posts))
	}
	if !posts[0].After(zd[1]) {
		t.Errorf("the root was posted at %s, before the second (last) Zendesk answer at %s", posts[0].Format(time.RFC3339Nano), zd[1].Format(time.RFC3339Nano))
	}
}
