package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookroute/hookroute/internal/fakeapi"
	"github.com/hookroute/hookroute/router"
)

// chat runs deliveries of one conversation against the Slack fake the way
// the worker does: each delivery is handed the remote object the last one
// recorded (a result's RemoteID, and its Link when not nil).
type chat struct {
	t    *testing.T
	api  *fakeapi.Slack
	sink router.Sink
	obj  router.RemoteObject
}

func newChat(t *testing.T) *chat {
	t.Helper()
	api := fakeapi.NewSlack(testToken)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	s := mustBuild(t, "slack", "token: ${SLACK_BOT_TOKEN}\nchannel: '#support'\nrate: 100\napi_url: "+srv.URL+"/api/", tokenEnv)
	return &chat{t: t, api: api, sink: s}
}

// send delivers fields for the conversation and records what it made.
func (c *chat) send(fields map[string]string) (router.Result, error) {
	c.t.Helper()
	d := delivery(fields)
	d.DedupKey, d.RemoteID, d.RemoteLink = "chat-1", c.obj.ID, c.obj.Link
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.sink.Deliver(ctx, d)
	if res.RemoteID != "" {
		c.obj.ID = res.RemoteID
	}
	if res.Link != nil {
		c.obj.Link = res.Link
	}
	return res, err
}

func (c *chat) mustSend(fields map[string]string) router.Result {
	c.t.Helper()
	res, err := c.send(fields)
	if err != nil {
		c.t.Fatalf("Deliver(%v): %v", fields, err)
	}
	return res
}

func TestConversationRootRepliesUpdatesReaction(t *testing.T) {
	c := newChat(t)
	first := c.mustSend(map[string]string{"root_text": "Sad chat, no ticket yet", "text": "rated sad"})
	channel := c.api.Channel("#support")
	link := first.Link
	if first.RemoteID == "" || link["channel"] != channel || link["ts"] != first.RemoteID ||
		!strings.HasPrefix(link["url"], "https://") {
		t.Fatalf("first delivery: %+v; want the root's ts and a link with channel %s, ts and permalink", first, channel)
	}
	c.mustSend(map[string]string{"root_text": "Sad chat: ticket 7", "text": "feedback: slow", "reply_broadcast": "true"})
	c.mustSend(map[string]string{"root_text": "Sad chat: ticket 7, closed", "reaction": ":white_check_mark:"})

	roots := c.api.Roots(channel)
	if len(roots) != 1 || roots[0].TS != first.RemoteID {
		t.Fatalf("roots = %+v; want the one first posted", roots)
	}
	root := roots[0]
	if root.Text != "Sad chat: ticket 7, closed" || len(root.Updates) != 2 {
		t.Errorf("root text %q after %d updates; want the last root_text after 2", root.Text, len(root.Updates))
	}
	if len(root.Reactions) != 1 || root.Reactions[0] != "white_check_mark" {
		t.Errorf("reactions = %v; want [white_check_mark]", root.Reactions)
	}
	replies := c.api.Replies(channel, root.TS)
	if len(replies) != 2 || replies[0].Text != "rated sad" || replies[1].Text != "feedback: slow" {
		t.Fatalf("replies = %+v; want the two texts", replies)
	}
	if replies[0].ReplyBroadcast || !replies[1].ReplyBroadcast {
		t.Errorf("reply_broadcast = %v, %v; want false, true", replies[0].ReplyBroadcast, replies[1].ReplyBroadcast)
	}
	// A reaction twice is success (already_reacted).
	c.mustSend(map[string]string{"reaction": "white_check_mark", "root_text": "Sad chat: ticket 7, closed"})
	if n := len(c.api.Calls("chat.postMessage")); n != 3 {
		t.Errorf("%d chat.postMessage calls; want 3 (a root and two replies)", n)
	}
}

// TestConversationWithoutRoot: a route with only text keeps the old
// behaviour: the first message is the root, later ones reply to it.
func TestConversationWithoutRoot(t *testing.T) {
	c := newChat(t)
	c.mustSend(map[string]string{"text": "one"})
	c.mustSend(map[string]string{"text": "two"})
	channel := c.api.Channel("#support")
	roots := c.api.Roots(channel)
	if len(roots) != 1 || roots[0].Text != "one" || len(roots[0].Updates) != 0 {
		t.Fatalf("roots = %+v; want one, never updated", roots)
	}
	if r := c.api.Replies(channel, roots[0].TS); len(r) != 1 || r[0].Text != "two" {
		t.Fatalf("replies = %+v; want two", r)
	}
}

// TestConversationRootDeleted: a root deleted in Slack is posted again by
// the next delivery, which records the new ts in place of the old.
func TestConversationRootDeleted(t *testing.T) {
	c := newChat(t)
	old := c.mustSend(map[string]string{"root_text": "root v1", "text": "first"}).RemoteID
	channel := c.api.Channel("#support")
	if !c.api.DeleteMessage(channel, old) {
		t.Fatal("the fake did not delete the root")
	}
	res := c.mustSend(map[string]string{"root_text": "root v2", "text": "second"})
	if res.RemoteID == "" || res.RemoteID == old || res.Link["ts"] != res.RemoteID {
		t.Fatalf("after the root was deleted: %+v; want a new ts, recorded with its link", res)
	}
	live := 0
	for _, m := range c.api.Roots(channel) {
		if !m.Deleted {
			live++
			if m.TS != res.RemoteID || m.Text != "root v2" {
				t.Errorf("live root %+v; want the new one with root v2", m)
			}
		}
	}
	if live != 1 {
		t.Errorf("%d live roots; want 1", live)
	}
	if r := c.api.Replies(channel, res.RemoteID); len(r) != 1 || r[0].Text != "second" {
		t.Errorf("replies under the new root = %+v; want second", r)
	}
	// Without root_text, a reply to a deleted root posts the message as
	// the new root.
	if !c.api.DeleteMessage(channel, res.RemoteID) {
		t.Fatal("delete")
	}
	again := c.mustSend(map[string]string{"text": "third"})
	if again.RemoteID == res.RemoteID {
		t.Fatalf("reply to a deleted root kept the old ts")
	}
	if r := c.api.Replies(channel, again.RemoteID); len(r) != 0 {
		t.Errorf("replies under the re-posted root = %+v; want none, the message is the root", r)
	}
}

// TestConversationRootKeptOnFailure: when the reply after a new root
// fails, the root is in the result, so the retry follows up on it.
func TestConversationRootKeptOnFailure(t *testing.T) {
	c := newChat(t)
	// The root's post is the first call; the reply's the second.
	c.api.Fail("chat.postMessage", -1, 0, "internal_error", 0)
	if _, err := c.send(map[string]string{"root_text": "root", "text": "reply"}); err == nil {
		t.Fatal("a failing post succeeded")
	}
	if c.obj.ID != "" {
		t.Fatalf("no root was posted, yet %q was recorded", c.obj.ID)
	}
	c.api.ClearFaults()
	c.api.Fail("chat.getPermalink", -1, 0, "internal_error", 0)
	c.mustSend(map[string]string{"root_text": "root", "text": "reply"})
	if c.obj.Link["url"] != "" || c.obj.Link["ts"] != c.obj.ID {
		t.Errorf("link without a permalink = %v; want channel and ts only", c.obj.Link)
	}
	c.api.ClearFaults()
	// Now fail only the reply of the next delivery.
	c.api.Fail("chat.postMessage", 1, 500, "", 0)
	id := c.obj.ID
	res, err := c.send(map[string]string{"root_text": "root 2", "text": "reply 2"})
	if err == nil || router.IsPermanent(err) || res.RemoteID != id {
		t.Fatalf("failed reply: %+v, %v; want a retryable error that keeps the root %s", res, err, id)
	}
	c.mustSend(map[string]string{"root_text": "root 2", "text": "reply 2"})
	channel := c.api.Channel("#support")
	if roots := c.api.Roots(channel); len(roots) != 1 {
		t.Fatalf("%d roots; want 1", len(roots))
	}
	if r := c.api.Replies(channel, id); len(r) != 2 {
		t.Fatalf("replies = %+v; want reply and reply 2", r)
	}
}

func TestConversationBadFields(t *testing.T) {
	c := newChat(t)
	for _, fields := range []map[string]string{
		{"text": "x", "reaction": "not an emoji"},
		{"text": "x", "reply_broadcast": "maybe"},
		{"root_text": " ", "text": ""},
	} {
		if _, err := c.send(fields); err == nil || !router.IsPermanent(err) {
			t.Errorf("Deliver(%v) = %v; want a permanent error", fields, err)
		}
	}
}

func TestSlackCheckRoute(t *testing.T) {
	bot := mustBuild(t, "slack", "token: ${SLACK_BOT_TOKEN}\nchannel: C1", tokenEnv).(router.RouteChecker)
	hook := mustBuild(t, "slack", "webhook_url: ${HOOK}", map[string]string{"HOOK": "https://hooks.slack.com/services/T0/B0/x"}).(router.RouteChecker)
	cases := []struct {
		name string
		rc   router.RouteChecker
		keys map[string]string
		want []string // "key: message part"
	}{
		{"bot conversation", bot, map[string]string{"dedup_key": "k", "root_text": "r", "text": "t", "reaction": "tada", "reply_broadcast": "true"}, nil},
		{"only an update", bot, map[string]string{"dedup_key": "k", "root_text": "r"}, nil},
		{"templated reaction", bot, map[string]string{"dedup_key": "k", "text": "t", "reaction": "{{ .x }}"}, nil},
		{"no content", bot, map[string]string{"dedup_key": "k", "reaction": "tada"}, []string{": a route to a slack sink needs text, blocks, root_text or root_blocks"}},
		{"root without key", bot, map[string]string{"root_text": "r"}, []string{"root_text: needs dedup_key"}},
		{"bad literals", bot, map[string]string{"dedup_key": "k", "text": "t", "reaction": "a b", "reply_broadcast": "yes please"},
			[]string{"reply_broadcast: want true or false", "reaction: want an emoji name"}},
		{"thread_ts and root", bot, map[string]string{"dedup_key": "k", "thread_ts": "1.2", "root_text": "r"}, []string{"thread_ts: a fixed thread_ts"}},
		{"webhook", hook, map[string]string{"text": "t", "dedup_key": "k", "root_text": "r", "reaction": "tada"},
			[]string{"dedup_key: an incoming webhook cannot update or thread", "root_text: an incoming webhook", "reaction: an incoming webhook"}},
		{"webhook plain", hook, map[string]string{"text": "t"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, p := range tc.rc.CheckRoute(tc.keys) {
				got = append(got, p.Key+": "+p.Msg)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("problems = %q; want %d like %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d = %q; want it to start with %q", i, got[i], w)
				}
			}
		})
	}
}

// TestConversationRateLimited: a 429 on an update is a RetryAfterError,
// as on a post.
func TestConversationRateLimited(t *testing.T) {
	c := newChat(t)
	c.mustSend(map[string]string{"root_text": "r", "text": "t"})
	c.api.Fail("chat.update", 1, 429, "", 3*time.Second)
	_, err := c.send(map[string]string{"root_text": "r2"})
	var ra *router.RetryAfterError
	if !errors.As(err, &ra) || ra.After < 3*time.Second {
		t.Fatalf("429 on chat.update: %v; want a RetryAfterError of 3s", err)
	}
}

// TestConversationFitsSlackLimits: a root and a reply over Slack's limits
// are cut before sending, so the fake, which refuses what Slack refuses,
// takes them; multi-byte characters at the cut stay whole.
func TestConversationFitsSlackLimits(t *testing.T) {
	c := newChat(t)
	feedback := strings.Repeat("é", 2999) + "👍👍" + strings.Repeat("x", 499)
	header := strings.Repeat("H", 200)
	blocks := `[{"type":"header","text":{"type":"plain_text","text":"` + header + `"}},` +
		`{"type":"section","text":{"type":"mrkdwn","text":"` + feedback + `"}}]`
	c.mustSend(map[string]string{"root_text": "r", "root_blocks": blocks, "text": strings.Repeat("ü", 5000)})
	c.mustSend(map[string]string{"root_text": "r2", "root_blocks": blocks})
	channel := c.api.Channel("#support")
	root := c.api.Roots(channel)[0]
	var got []struct {
		Text struct {
			Text string `json:"text"`
		} `json:"text"`
	}
	if err := json.Unmarshal(root.Blocks, &got); err != nil || len(got) != 2 {
		t.Fatalf("root blocks %s: %v", root.Blocks, err)
	}
	h, sec := []rune(got[0].Text.Text), []rune(got[1].Text.Text)
	if len(h) > 150 || h[len(h)-1] != '…' || len(sec) > 3000 || sec[len(sec)-1] != '…' || !utf8.ValidString(got[1].Text.Text) {
		t.Errorf("header %d runes, section %d runes ending %q; want them cut to 150 and 3000 with …", len(h), len(sec), string(sec[len(sec)-3:]))
	}
	if r := c.api.Replies(channel, root.TS); len(r) != 1 || utf8.RuneCountInString(r[0].Text) != 4000 {
		t.Errorf("reply of 5000 characters: %d replies; want one cut to 4000", len(r))
	}
}
