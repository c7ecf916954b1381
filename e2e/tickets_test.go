package e2e

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookroute/hookroute/internal/fakeapi"
)

const ticketConfig = `
server: {listen: "{{LISTEN}}", admin_listen: "{{ADMIN}}"}
store: {url: "sqlite:{{DB}}"}
egress: {allow: ["127.0.0.1/32"]}   # the fakes listen on loopback
sources:
  - {name: salesiq, type: salesiq, public_keys: [{pem: "${TEST_PUBLIC_KEY}"}]}
sinks:
  - name: helpdesk
    type: zendesk
    subdomain: acme
    email: bot@acme.example
    token: ${TEST_ZENDESK_TOKEN}
    base_url: ${TEST_ZENDESK_URL}
    retry: {max_attempts: 10, initial: 100ms, max_interval: 300ms}
  - name: tracker
    type: jira
    email: bot@acme.example
    api_token: ${TEST_JIRA_TOKEN}
    base_url: ${TEST_JIRA_URL}
    project: SUP
    timeout: 1s
    retry: {max_attempts: 10, initial: 100ms, max_interval: 300ms}
rules:
  - name: sad-chat
    source: salesiq
    when: chat.rating == "sad"
    to:
      - sink: helpdesk
        subject: "Sad chat from {{ .visitor.name }}"
        body: "{{ .chat.feedback }}"
        requester: "{{ .visitor.email_id }}"
        dedup_key: "salesiq-chat-{{ .chat.id }}"
      - sink: tracker
        subject: "Sad chat from {{ .visitor.name }}"
        body: "{{ .chat.feedback }}"
        dedup_key: "salesiq-chat-{{ .chat.id }}"
`

// ratedEvent is a conversation.rated event about chat, rated at eventTime.
func ratedEvent(chat, eventTime, feedback string) []byte {
	b, _ := json.Marshal(map[string]any{
		"entity_type": "conversation", "event": "conversation.rated", "entity_id": chat,
		"org_id": "55778119", "app_id": json.Number("40526000000002040"), "attempt": 1, "version": "1",
		"event_time": eventTime,
		"entity": map[string]any{
			"id": chat, "status": "Ended", "rating": 1, "feedback": feedback,
			"visitor": map[string]any{"type": "contact", "id": "2", "name": "Tricia", "email_id": "tricia@zylker.com"},
		},
	})
	return b
}

// TestTicketsNeverTwice: follow-ups about one chat land on its ticket and
// issue; a Zendesk 500 and a Jira create whose answer is lost to a timeout
// do not open second ones.
func TestTicketsNeverTwice(t *testing.T) {
	zd := fakeapi.NewZendesk("bot@acme.example", "zd-token-123")
	zdSrv := httptest.NewServer(zd)
	defer zdSrv.Close()
	jira := fakeapi.NewJira("bot@acme.example", "jira-token-123")
	jiraSrv := httptest.NewServer(jira)
	defer jiraSrv.Close()
	p := startRouter(t, t.TempDir(), ticketConfig, []string{
		"TEST_PUBLIC_KEY=" + publicPEM(t, e2eKey),
		"TEST_ZENDESK_TOKEN=zd-token-123", "TEST_ZENDESK_URL=" + zdSrv.URL,
		"TEST_JIRA_TOKEN=jira-token-123", "TEST_JIRA_URL=" + jiraSrv.URL,
	})
	ticketsFor := func(chat string) []fakeapi.ZendeskTicket {
		var out []fakeapi.ZendeskTicket
		for _, tk := range zd.Tickets() {
			if tk.ExternalID == "salesiq-chat-"+chat {
				out = append(out, tk)
			}
		}
		return out
	}
	issuesFor := func(feedbackPrefix string) []fakeapi.JiraIssue {
		var out []fakeapi.JiraIssue
		for _, is := range jira.Issues() {
			if strings.HasPrefix(is.Description, feedbackPrefix) {
				out = append(out, is)
			}
		}
		return out
	}

	t.Run("three sad ratings of one chat: one ticket and one issue, two comments each", func(t *testing.T) {
		for i, fb := range []string{"chatA first", "chatA second", "chatA third"} {
			if code, resp := p.post("/hooks/salesiq", ratedEvent("A", fmt.Sprint(1700000000000+i), fb), e2eKey); code != 202 {
				t.Fatalf("post %d: %d %s", i, code, resp)
			}
		}
		eventually(t, 20*time.Second, "the ticket with two follow-ups", func() bool {
			ts := ticketsFor("A")
			return len(ts) == 1 && len(ts[0].Comments) == 3
		})
		eventually(t, 20*time.Second, "the issue with two comments", func() bool {
			is := issuesFor("chatA")
			return len(is) == 1 && len(is[0].Comments) == 2
		})
		time.Sleep(300 * time.Millisecond)
		if n := len(ticketsFor("A")); n != 1 {
			t.Errorf("%d tickets for chat A", n)
		}
		if n := len(issuesFor("chatA")); n != 1 {
			t.Errorf("%d issues for chat A", n)
		}
	})

	t.Run("a Zendesk 500 then 201 gives one ticket", func(t *testing.T) {
		zd.Fail(1, 500, "")
		p.post("/hooks/salesiq", ratedEvent("B", "1700000001000", "chatB only"), e2eKey)
		eventually(t, 20*time.Second, "chat B's ticket", func() bool { return len(ticketsFor("B")) == 1 })
		time.Sleep(500 * time.Millisecond)
		if n := len(ticketsFor("B")); n != 1 {
			t.Errorf("%d tickets for chat B, want 1", n)
		}
	})

	t.Run("a Jira timeout after create, then a retry, gives one issue", func(t *testing.T) {
		jira.DelayNextCreate(2 * time.Second) // past the sink's 1s timeout
		p.post("/hooks/salesiq", ratedEvent("C", "1700000002000", "chatC only"), e2eKey)
		eventually(t, 20*time.Second, "chat C's delivery to Jira done", func() bool {
			return p.query(`SELECT count(*) FROM deliveries WHERE sink='tracker' AND status='delivered' AND event_id LIKE '%:C:%'`) == 1
		})
		if n := len(issuesFor("chatC")); n != 1 {
			t.Errorf("%d issues for chat C, want 1", n)
		}
		if n := p.query(`SELECT count(*) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.sink='tracker' AND d.event_id LIKE '%:C:%'`); n < 2 {
			t.Errorf("%d attempts for chat C's Jira delivery, want the timeout and the retry", n)
		}
	})
}
