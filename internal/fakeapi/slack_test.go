package fakeapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/hookroute/hookroute/internal/fakeapi"
)

const slackToken = "xoxb-1-2-fake"

// slackServe serves a fake and returns it with a slack-go client that
// sends the token as slack-go v0.35.0 does, in the form.
func slackServe(t *testing.T) (*fakeapi.Slack, *httptest.Server, *slack.Client) {
	t.Helper()
	f := fakeapi.NewSlack(slackToken)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv, slack.New(slackToken, slack.OptionAPIURL(srv.URL+"/api/"))
}

// headerClient moves the token from the form into the Authorization
// header, as hookroute's Slack sink does.
type headerClient struct{ token string }

func (h headerClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		raw, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, err
		}
		form.Del("token")
		body := form.Encode()
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	return http.DefaultClient.Do(req)
}

// rawBlock is a block sent exactly as written, so that tests can send
// what slack-go's typed blocks would not.
type rawBlock string

func (b rawBlock) BlockType() slack.MessageBlockType { return "raw" }
func (b rawBlock) ID() string                        { return "" }
func (b rawBlock) MarshalJSON() ([]byte, error)      { return []byte(b), nil }

func rawBlocks(list ...string) slack.MsgOption {
	blocks := make([]slack.Block, len(list))
	for i, b := range list {
		blocks[i] = rawBlock(b)
	}
	return slack.MsgOptionBlocks(blocks...)
}

// slackCode is the ok:false error code of err, or "" if err is not one.
func slackCode(err error) string {
	var resp slack.SlackErrorResponse
	if errors.As(err, &resp) {
		return resp.Err
	}
	return ""
}

func TestSlackThread(t *testing.T) {
	f, _, api := slackServe(t)
	section := `{"type":"section","text":{"type":"mrkdwn","text":"*disk* full"}}`
	ch, rootTS, err := api.PostMessage("#alerts", slack.MsgOptionText("disk full", false), rawBlocks(section),
		slack.MsgOptionUsername("hookroute"), slack.MsgOptionIconEmoji(":rotating_light:"))
	if err != nil {
		t.Fatalf("post root: %v", err)
	}
	if want := f.Channel("#alerts"); ch != want || !strings.HasPrefix(ch, "C0001") {
		t.Errorf("root channel = %q, want %q, an id starting C0001", ch, want)
	}
	if rootTS != "1700000000.000100" {
		t.Errorf("root ts = %q, want 1700000000.000100", rootTS)
	}
	ch2, replyTS, err := api.PostMessage(ch, slack.MsgOptionText("still full", false), slack.MsgOptionTS(rootTS), slack.MsgOptionBroadcast())
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	if ch2 != ch || replyTS != "1700000000.000200" {
		t.Errorf("reply = %q %q, want %q 1700000000.000200", ch2, replyTS, ch)
	}
	if _, _, text, err := api.UpdateMessage(ch, rootTS, slack.MsgOptionText("disk full (resolved)", false)); err != nil || text != "disk full (resolved)" {
		t.Fatalf("update = %q, %v", text, err)
	}
	if err := api.AddReaction("white_check_mark", slack.NewRefToMessage(ch, rootTS)); err != nil {
		t.Fatalf("first reaction: %v", err)
	}
	if err := api.AddReaction("white_check_mark", slack.NewRefToMessage(ch, rootTS)); slackCode(err) != "already_reacted" {
		t.Errorf("second reaction: %v, want already_reacted", err)
	}
	link, err := api.GetPermalink(&slack.PermalinkParameters{Channel: ch, Ts: rootTS})
	if want := "https://fake.slack.com/archives/" + ch + "/p1700000000000100"; err != nil || link != want {
		t.Errorf("root permalink = %q, %v; want %q", link, err, want)
	}
	link, err = api.GetPermalink(&slack.PermalinkParameters{Channel: ch, Ts: replyTS})
	if want := "https://fake.slack.com/archives/" + ch + "/p1700000000000200?thread_ts=1700000000.000100&cid=" + ch; err != nil || link != want {
		t.Errorf("reply permalink = %q, %v; want %q", link, err, want)
	}

	roots := f.Roots("#alerts")
	if len(roots) != 1 {
		t.Fatalf("roots = %+v, want 1", roots)
	}
	r := roots[0]
	if r.TS != rootTS || r.Text != "disk full (resolved)" || r.User != fakeapi.SlackBotUser || r.Username != "hookroute" || r.IconEmoji != ":rotating_light:" {
		t.Errorf("root = %+v", r)
	}
	if string(r.Blocks) != "["+section+"]" {
		t.Errorf("root blocks = %s, want [%s] (kept by an update without blocks)", r.Blocks, section)
	}
	if !slices.Equal(r.Updates, []string{"disk full (resolved)"}) || !slices.Equal(r.Reactions, []string{"white_check_mark"}) {
		t.Errorf("root updates %q, reactions %q", r.Updates, r.Reactions)
	}
	replies := f.Replies(ch, rootTS)
	if len(replies) != 1 || replies[0].TS != replyTS || replies[0].ThreadTS != rootTS || !replies[0].ReplyBroadcast || replies[0].Text != "still full" {
		t.Errorf("replies = %+v", replies)
	}
	posts := f.Calls("chat.postMessage")
	if len(posts) != 2 || posts[1].Form.Get("thread_ts") != rootTS || posts[1].Form.Get("reply_broadcast") != "true" {
		t.Errorf("chat.postMessage calls = %+v", posts)
	}
	if links := f.Calls("chat.getPermalink"); len(links) != 2 || links[0].HTTPMethod != http.MethodGet || links[0].Form.Get("message_ts") != rootTS {
		t.Errorf("chat.getPermalink calls = %+v, want two GETs", links)
	}
	if got := len(f.Calls("")); got != 7 {
		t.Errorf("%d calls in all, want 7", got)
	}
}

func TestSlackReplyToReplyJoinsRoot(t *testing.T) {
	f, _, api := slackServe(t)
	ch, root, _ := api.PostMessage("#ops", slack.MsgOptionText("root", false))
	_, reply, _ := api.PostMessage(ch, slack.MsgOptionText("one", false), slack.MsgOptionTS(root))
	if _, _, err := api.PostMessage(ch, slack.MsgOptionText("two", false), slack.MsgOptionTS(reply)); err != nil {
		t.Fatal(err)
	}
	if got := f.Replies(ch, root); len(got) != 2 || got[1].ThreadTS != root {
		t.Errorf("replies = %+v, want both under %s", got, root)
	}
}

func TestSlackDeletedRoot(t *testing.T) {
	f, _, api := slackServe(t)
	ch, root, err := api.PostMessage("#alerts", slack.MsgOptionText("root", false))
	if err != nil {
		t.Fatal(err)
	}
	if !f.DeleteMessage("#alerts", root) {
		t.Fatal("DeleteMessage found no message")
	}
	if f.DeleteMessage(ch, root) {
		t.Error("second DeleteMessage reported a message")
	}
	if _, _, _, err := api.UpdateMessage(ch, root, slack.MsgOptionText("x", false)); slackCode(err) != "message_not_found" {
		t.Errorf("update: %v, want message_not_found", err)
	}
	if _, _, err := api.PostMessage(ch, slack.MsgOptionText("x", false), slack.MsgOptionTS(root)); slackCode(err) != "thread_not_found" {
		t.Errorf("reply: %v, want thread_not_found", err)
	}
	if err := api.AddReaction("eyes", slack.NewRefToMessage(ch, root)); slackCode(err) != "message_not_found" {
		t.Errorf("reaction: %v, want message_not_found", err)
	}
	if _, err := api.GetPermalink(&slack.PermalinkParameters{Channel: ch, Ts: root}); slackCode(err) != "message_not_found" {
		t.Errorf("permalink: %v, want message_not_found", err)
	}
	if _, _, err := api.PostMessage(ch, slack.MsgOptionText("x", false), slack.MsgOptionTS("1600000000.000100")); slackCode(err) != "thread_not_found" {
		t.Errorf("reply to an unknown ts: %v, want thread_not_found", err)
	}
	if msgs := f.Messages(); len(msgs) != 1 || !msgs[0].Deleted || msgs[0].Updates != nil {
		t.Errorf("messages = %+v, want the deleted root alone, never updated", msgs)
	}
}

func TestSlackUpdateChecks(t *testing.T) {
	f, _, api := slackServe(t)
	ch := f.Channel("#general")
	theirs := f.PostAsUser(ch, "U0PERSON01", "hello")
	if _, _, _, err := api.UpdateMessage(ch, theirs, slack.MsgOptionText("edited", false)); slackCode(err) != "cant_update_message" {
		t.Errorf("update of a person's message: %v, want cant_update_message", err)
	}
	_, ts, _ := api.PostMessage(ch, slack.MsgOptionText("mine", false), rawBlocks(`{"type":"divider"}`))
	if _, _, _, err := api.UpdateMessage("#general", ts, slack.MsgOptionText("x", false)); slackCode(err) != "channel_not_found" {
		t.Errorf("update by channel name: %v, want channel_not_found", err)
	}
	if _, _, _, err := api.UpdateMessage(ch, ts, slack.MsgOptionText("", false), slack.MsgOptionBlocks()); slackCode(err) != "no_text" {
		t.Errorf("update to no text and no blocks: %v, want no_text", err)
	}
	if _, _, _, err := api.UpdateMessage(ch, ts, slack.MsgOptionText("plain now", false), slack.MsgOptionBlocks()); err != nil {
		t.Fatal(err)
	}
	if got := f.Roots(ch); len(got) != 2 || got[1].Blocks != nil || got[1].Text != "plain now" || got[0].Text != "hello" {
		t.Errorf("roots = %+v, want the bot's blocks removed and the person's message untouched", got)
	}
}

func TestSlackReactionNames(t *testing.T) {
	_, _, api := slackServe(t)
	ch, ts, _ := api.PostMessage("#alerts", slack.MsgOptionText("x", false))
	for name, want := range map[string]string{
		":eyes:": "invalid_name", "thumbs up": "invalid_name", "": "invalid_name",
		"thumbsup::skin-tone-3": "", "eyes": "",
	} {
		if err := api.AddReaction(name, slack.NewRefToMessage(ch, ts)); slackCode(err) != want || (want == "" && err != nil) {
			t.Errorf("reaction %q: %v, want %q", name, err, want)
		}
	}
	if err := api.AddReaction("eyes", slack.NewRefToMessage(ch, "1600000000.000100")); slackCode(err) != "message_not_found" {
		t.Errorf("reaction on an unknown ts: %v, want message_not_found", err)
	}
}

func TestSlackInvalidBlocks(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) } // two bytes, one character
	text := func(typ string, n int) string {
		return fmt.Sprintf(`{"type":%q,"text":%q}`, typ, long(n))
	}
	dividers := slices.Repeat([]string{`{"type":"divider"}`}, 51)
	// fields is a section of n one-character fields but for field at,
	// which has size characters.
	fields := func(n, at, size int) string {
		var f []string
		for i := range n {
			if i == at {
				f = append(f, text("mrkdwn", size))
			} else {
				f = append(f, text("mrkdwn", 1))
			}
		}
		return `{"type":"section","fields":[` + strings.Join(f, ",") + `]}`
	}
	for _, tc := range []struct {
		name   string
		blocks []string
		want   string // "" for a valid message
	}{
		{"50 blocks", dividers[:50], ""},
		{"51 blocks", dividers, "must contain less than 51 items [json-pointer:/blocks]"},
		{"section 3000", []string{`{"type":"section","text":` + text("mrkdwn", 3000) + `}`}, ""},
		{"section 3001", []string{`{"type":"section","text":` + text("mrkdwn", 3001) + `}`}, "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"},
		{"header 151", []string{`{"type":"divider"}`, `{"type":"header","text":` + text("plain_text", 151) + `}`}, "must be less than 151 characters [json-pointer:/blocks/1/text/text]"},
		{"context 2001", []string{`{"type":"context","elements":[` + text("mrkdwn", 5) + `,` + text("plain_text", 2001) + `]}`}, "must be less than 2001 characters [json-pointer:/blocks/0/elements/1/text]"},
		{"10 fields", []string{fields(10, 9, 2000)}, ""},
		{"11 fields", []string{fields(11, -1, 0)}, "must contain less than 11 items [json-pointer:/blocks/0/fields]"},
		{"field 2001", []string{fields(4, 2, 2001)}, "must be less than 2001 characters [json-pointer:/blocks/0/fields/2/text]"},
		{"no type", []string{`{"type":"divider"}`, `{"text":{"type":"mrkdwn","text":"x"}}`}, "missing required field: type [json-pointer:/blocks/1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _, api := slackServe(t)
			_, _, err := api.PostMessage("#alerts", slack.MsgOptionText("fallback", false), rawBlocks(tc.blocks...))
			if tc.want == "" {
				if err != nil || len(f.Messages()) != 1 {
					t.Fatalf("post: %v, %d messages; want it posted", err, len(f.Messages()))
				}
				return
			}
			var resp slack.SlackErrorResponse
			if !errors.As(err, &resp) || resp.Err != "invalid_blocks" {
				t.Fatalf("post: %v, want invalid_blocks", err)
			}
			if len(resp.Errors) != 1 || resp.Errors[0].Message == nil || *resp.Errors[0].Message != tc.want {
				t.Errorf("errors = %+v, want [%q]", resp.Errors, tc.want)
			}
			if !slices.Equal(resp.ResponseMetadata.Messages, []string{"[ERROR] " + tc.want}) {
				t.Errorf("response_metadata.messages = %q, want [\"[ERROR] %s\"]", resp.ResponseMetadata.Messages, tc.want)
			}
			if n := len(f.Messages()); n != 0 {
				t.Errorf("%d messages stored, want none", n)
			}
		})
	}
}

func TestSlackBlocksNotAnArray(t *testing.T) {
	f, srv, _ := slackServe(t)
	resp, err := http.PostForm(srv.URL+"/api/chat.postMessage", url.Values{
		"token": {slackToken}, "channel": {"#alerts"}, "text": {"x"}, "blocks": {`{"type":"divider"}`},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		OK     bool     `json:"ok"`
		Error  string   `json:"error"`
		Errors []string `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || body.OK || body.Error != "invalid_blocks" || !slices.Equal(body.Errors, []string{"must provide an array [json-pointer:/blocks]"}) {
		t.Errorf("answer %d %+v, want 200 invalid_blocks naming /blocks", resp.StatusCode, body)
	}
	if len(f.Messages()) != 0 {
		t.Error("a message was stored")
	}
}

func TestSlackText(t *testing.T) {
	f, _, api := slackServe(t)
	if _, _, err := api.PostMessage("#alerts", slack.MsgOptionText(strings.Repeat("é", 40000), false)); err != nil {
		t.Errorf("40,000 characters: %v, want it posted", err)
	}
	if _, _, err := api.PostMessage("#alerts", slack.MsgOptionText(strings.Repeat("a", 40001), false)); slackCode(err) != "msg_too_long" {
		t.Errorf("40,001 characters: %v, want msg_too_long", err)
	}
	if _, _, err := api.PostMessage("#alerts", slack.MsgOptionText("", false)); slackCode(err) != "no_text" {
		t.Errorf("no text: %v, want no_text", err)
	}
	if _, _, err := api.PostMessage("#alerts", slack.MsgOptionText("", false), rawBlocks(`{"type":"divider"}`)); err != nil {
		t.Errorf("blocks without text: %v, want it posted", err)
	}
	if n := len(f.Messages()); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

func TestSlackFaults(t *testing.T) {
	f, _, api := slackServe(t)
	f.Fail("chat.postMessage", 1, http.StatusTooManyRequests, "", 30*time.Second)
	_, _, err := api.PostMessage("#alerts", slack.MsgOptionText("x", false))
	var limited *slack.RateLimitedError
	if !errors.As(err, &limited) || limited.RetryAfter != 30*time.Second {
		t.Fatalf("rate limited post: %v, want a *slack.RateLimitedError after 30s", err)
	}
	if _, ts, err := api.PostMessage("#alerts", slack.MsgOptionText("x", false)); err != nil || ts != "1700000000.000100" {
		t.Fatalf("post after the fault: %q, %v; want the first ts", ts, err)
	}
	if n := len(f.Calls("chat.postMessage")); n != 2 {
		t.Errorf("%d calls, want 2: the rate limited one counts", n)
	}

	f.Fail("", 2, http.StatusServiceUnavailable, "", 0)
	for range 2 {
		var status slack.StatusCodeError
		if _, _, err := api.PostMessage("#alerts", slack.MsgOptionText("x", false)); !errors.As(err, &status) || status.Code != http.StatusServiceUnavailable {
			t.Errorf("post during 503s: %v, want a 503 StatusCodeError", err)
		}
	}
	f.Fail("reactions.add", 1, 0, "too_many_reactions", 0)
	if _, _, err := api.PostMessage("#alerts", slack.MsgOptionText("x", false)); err != nil {
		t.Errorf("post with a reactions.add fault: %v", err)
	}
	if err := api.AddReaction("eyes", slack.NewRefToMessage("C0000000000", "1.0")); slackCode(err) != "too_many_reactions" {
		t.Errorf("reaction: %v, want the scripted too_many_reactions", err)
	}

	f.FailChannel("#gone", -1, 0, "channel_not_found", 0)
	for range 3 {
		if _, _, err := api.PostMessage("#gone", slack.MsgOptionText("x", false)); slackCode(err) != "channel_not_found" {
			t.Errorf("post to #gone: %v, want channel_not_found", err)
		}
	}
	if _, _, err := api.PostMessage("#alerts", slack.MsgOptionText("x", false)); err != nil {
		t.Errorf("post elsewhere: %v", err)
	}
	alerts := f.Channel("#alerts")
	f.FailChannel("#alerts", -1, http.StatusTooManyRequests, "", time.Second)
	if _, _, err := api.PostMessage(alerts, slack.MsgOptionText("x", false)); !errors.As(err, &limited) || limited.RetryAfter != time.Second {
		t.Errorf("post to #alerts by id: %v, want rate limited, the name's fault matching its id", err)
	}
	f.ClearFaults()
	if _, _, err := api.PostMessage("#gone", slack.MsgOptionText("x", false)); err != nil {
		t.Errorf("post to #gone after ClearFaults: %v", err)
	}
	if n := len(f.Roots("#gone")); n != 1 {
		t.Errorf("#gone has %d messages, want 1", n)
	}
}

func TestSlackAuth(t *testing.T) {
	f, srv, _ := slackServe(t)
	wrong := slack.New("xoxb-wrong", slack.OptionAPIURL(srv.URL+"/api/"))
	if _, _, err := wrong.PostMessage("#alerts", slack.MsgOptionText("x", false)); slackCode(err) != "invalid_auth" {
		t.Errorf("wrong token: %v, want invalid_auth", err)
	}
	bearer := slack.New(slackToken, slack.OptionAPIURL(srv.URL+"/api/"), slack.OptionHTTPClient(headerClient{slackToken}))
	if _, _, err := bearer.PostMessage("#alerts", slack.MsgOptionText("x", false)); err != nil {
		t.Fatalf("token in the header: %v", err)
	}
	badBearer := slack.New(slackToken, slack.OptionAPIURL(srv.URL+"/api/"), slack.OptionHTTPClient(headerClient{"xoxb-wrong"}))
	if _, _, err := badBearer.PostMessage("#alerts", slack.MsgOptionText("x", false)); slackCode(err) != "invalid_auth" {
		t.Errorf("wrong token in the header: %v, want invalid_auth", err)
	}
	resp, err := http.PostForm(srv.URL+"/api/chat.postMessage", url.Values{"channel": {"#alerts"}, "text": {"x"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != `{"error":"not_authed","ok":false}` {
		t.Errorf("no token: %d %s, want 200 not_authed", resp.StatusCode, b)
	}
	calls := f.Calls("chat.postMessage")
	if len(calls) != 4 || calls[1].Form.Has("token") || calls[1].Header.Get("Authorization") != "Bearer "+slackToken {
		t.Errorf("calls = %+v, want the second with the token in the header only", calls)
	}
	if n := len(f.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

func TestSlackJSONBody(t *testing.T) {
	f, srv, _ := slackServe(t)
	post := func(auth, body string) string {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/chat.postMessage", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return out.Error
	}
	body := `{"channel":"#alerts","text":"x","blocks":[{"type":"divider"}],"reply_broadcast":false}`
	if code := post("Bearer "+slackToken, body); code != "" {
		t.Fatalf("JSON post: %s", code)
	}
	if code := post("", `{"token":"`+slackToken+`","channel":"#alerts","text":"x"}`); code != "not_authed" {
		t.Errorf("JSON post with the token in the body: %q, want not_authed", code)
	}
	if msgs := f.Messages(); len(msgs) != 1 || string(msgs[0].Blocks) != `[{"type":"divider"}]` {
		t.Errorf("messages = %+v", msgs)
	}
}

func TestSlackLimits(t *testing.T) {
	f, srv, _ := slackServe(t)
	resp, err := http.PostForm(srv.URL+"/api/chat.postMessage", url.Values{
		"token": {slackToken}, "channel": {"#alerts"}, "text": {strings.Repeat("a", 1<<20)},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over 1 MiB answered %d, want 413", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/api/chat.delete?token=" + slackToken)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown method answered %d, want 404", resp.StatusCode)
	}
	if n := len(f.Messages()); n != 0 {
		t.Errorf("%d messages, want none", n)
	}
}

func TestSlackConcurrentPosts(t *testing.T) {
	f, _, api := slackServe(t)
	const n = 20
	var wg sync.WaitGroup
	tss := make([]string, n)
	for i := range n {
		wg.Go(func() {
			_, ts, err := api.PostMessage(fmt.Sprintf("#c%d", i%3), slack.MsgOptionText("x", false))
			if err != nil {
				t.Error(err)
			}
			tss[i] = ts
		})
	}
	wg.Wait()
	slices.Sort(tss)
	if len(slices.Compact(tss)) != n || len(f.Messages()) != n {
		t.Errorf("ts values %q, %d messages; want %d unique", tss, len(f.Messages()), n)
	}
	if f.Channel("#c0") == f.Channel("#c1") {
		t.Error("two names share a channel id")
	}
}
