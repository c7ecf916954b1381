package sinks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/slack-go/slack"

	"github.com/hookroute/hookroute/internal/runes"
	"github.com/hookroute/hookroute/router"
)

// A Slack conversation is one root message per dedup key value, kept up
// to date, with everything else about it in the root's thread:
//
//   - The first delivery for a key posts the root: root_text/root_blocks
//     when the route gives them, else text/blocks. When it gives both,
//     text/blocks go on as the thread's first reply.
//   - Later deliveries edit the root to the newly rendered root_text/
//     root_blocks (chat.update) and post text/blocks as a reply
//     (reply_broadcast: also shown in the channel).
//   - reaction adds an emoji to the root; already_reacted is success.
//   - A root someone deleted is posted again, and the new one recorded in
//     place of the old.
//
// The steps of a delivery run in the order that makes a retry safe: the
// root first (a new root is recorded even when a later step fails, so a
// retry follows up on it instead of posting another), then the edit and
// the reaction, which are idempotent, and the reply last, the one step
// that would show twice.

// slackMessage is one message's content, as rendered and fitted to
// Slack's limits.
type slackMessage struct {
	text   string
	blocks []slack.Block
}

func (m slackMessage) empty() bool { return strings.TrimSpace(m.text) == "" && m.blocks == nil }

// renderedMessage reads a rendered text and blocks field pair; field
// names the blocks field in errors.
func renderedMessage(text, blocks, field string) (slackMessage, error) {
	bs, err := parseBlocks(blocks)
	if err != nil {
		return slackMessage{}, router.Permanent(fmt.Errorf("slack: %s: %w", field, err))
	}
	return slackMessage{text: fitText(text, slackMaxText), blocks: bs}, nil
}

// escapeBlocks escapes a value interpolated into a blocks template: it
// lands inside a JSON string that Slack reads as mrkdwn.
func escapeBlocks(s string) string { return escapeJSONString(escapeMrkdwn(s)) }

var _ router.RouteChecker = (*slackSink)(nil)

// slackRoot is a conversation's root message.
type slackRoot struct {
	channel, ts string
}

// rootGone reports whether err says the conversation's root is no longer
// there to edit, react to or reply under: deleted, or (for chat.update)
// not ours to edit any more.
func rootGone(err error) bool {
	var answer slack.SlackErrorResponse
	if !errors.As(err, &answer) {
		return false
	}
	switch answer.Err {
	case "message_not_found", "cant_update_message", "thread_not_found":
		return true
	}
	return false
}

// converse delivers d to its conversation: see the comment at the top.
func (s *slackSink) converse(ctx context.Context, d *router.Delivery, channel string, msg slackMessage) (router.Result, error) {
	root, err := renderedMessage(d.Fields["root_text"], d.Fields["root_blocks"], "root_blocks")
	if err != nil {
		return router.Result{}, err
	}
	reaction, err := reactionName(d.Fields["reaction"])
	if err != nil {
		return router.Result{}, router.Permanent(err)
	}
	broadcast, err := parseBroadcast(d.Fields["reply_broadcast"])
	if err != nil {
		return router.Result{}, router.Permanent(err)
	}
	// What a new root shows: the root's own content, else the message,
	// which then is not posted again as a reply.
	c := conversation{s: s, channel: channel, first: root, res: router.Result{StatusCode: http.StatusOK, RemoteID: d.RemoteID}}
	if root.empty() {
		c.first, c.firstIsMsg = msg, true
	}
	if d.RemoteID == "" {
		if c.first.empty() {
			return router.Result{}, router.Permanent(errors.New("slack: the conversation has no root yet, and root_text, root_blocks, text and blocks all rendered empty"))
		}
		if err := c.newRoot(ctx); err != nil {
			return c.failed(err)
		}
	} else {
		c.root = slackRoot{channel: d.RemoteLink["channel"], ts: d.RemoteID}
		if c.root.channel == "" {
			// Recorded before links were: the root is where this route
			// posts.
			c.root.channel = orElse(channel, s.conf.Channel)
		}
		if !root.empty() {
			if err := c.edit(ctx, root); err != nil {
				return c.failed(err)
			}
		}
	}
	if reaction != "" {
		if err := c.react(ctx, reaction); err != nil {
			return c.failed(err)
		}
	}
	if !msg.empty() && !(c.posted && c.firstIsMsg) {
		if err := c.reply(ctx, msg, broadcast); err != nil {
			return c.failed(err)
		}
	}
	return c.res, nil
}

// orElse returns a, or b when a is empty.
func orElse(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// conversation is one delivery's work on a conversation.
type conversation struct {
	s       *slackSink
	channel string       // the route's channel, "" for the sink's
	first   slackMessage // what a new root shows
	// firstIsMsg is set when the route gives no root: the message itself
	// is a new root, and no reply besides.
	firstIsMsg bool
	root       slackRoot
	posted     bool // the root was posted by this delivery
	res        router.Result
}

// failed returns the result so far with err: a root posted on the way is
// in it, and is recorded.
func (c *conversation) failed(err error) (router.Result, error) {
	c.res.StatusCode = statusOf(err)
	return c.res, err
}

// newRoot posts the conversation's root and records it, with its
// permalink when Slack gives one (a link without it is still a link).
func (c *conversation) newRoot(ctx context.Context) error {
	if c.posted {
		return errors.New("slack: the root posted by this delivery is gone already")
	}
	ts, id, err := c.s.postMessage(ctx, c.channel, "", c.first, false)
	if err != nil {
		return err
	}
	c.root, c.posted = slackRoot{channel: id, ts: ts}, true
	c.res.RemoteID = ts
	c.res.Link = router.Link{"channel": id, "ts": ts}
	if url, err := c.s.api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: id, Ts: ts}); err == nil {
		c.res.Link["url"] = url
	}
	return nil
}

// edit updates the root to root, posting it anew when it is gone.
func (c *conversation) edit(ctx context.Context, root slackMessage) error {
	opts := []slack.MsgOption{slack.MsgOptionText(root.text, false)}
	if root.blocks != nil {
		opts = append(opts, slack.MsgOptionBlocks(root.blocks...))
	}
	_, _, _, err := c.s.api.UpdateMessageContext(ctx, c.root.channel, c.root.ts, opts...)
	switch {
	case err == nil:
		return nil
	case rootGone(err):
		return c.newRoot(ctx)
	}
	return c.s.failed("update the root message", err)
}

// react adds the reaction to the root; one already there is success.
func (c *conversation) react(ctx context.Context, name string) error {
	err := c.s.api.AddReactionContext(ctx, name, slack.NewRefToMessage(c.root.channel, c.root.ts))
	var answer slack.SlackErrorResponse
	switch {
	case err == nil:
		return nil
	case errors.As(err, &answer) && answer.Err == "already_reacted":
		return nil
	case rootGone(err) && !c.posted:
		if err := c.newRoot(ctx); err != nil {
			return err
		}
		return c.react(ctx, name)
	}
	return c.s.failed("add reaction", err)
}

// reply posts msg in the root's thread. A second message of one delivery
// waits its turn in the channel's budget: the worker paced the first.
func (c *conversation) reply(ctx context.Context, msg slackMessage, broadcast bool) error {
	if c.posted {
		if err := c.s.waitTurn(ctx, c.root.channel); err != nil {
			return err
		}
	}
	_, _, err := c.s.postMessage(ctx, c.root.channel, c.root.ts, msg, broadcast)
	if err == nil || !rootGone(err) || c.posted {
		return err
	}
	if err := c.newRoot(ctx); err != nil {
		return err
	}
	if c.firstIsMsg {
		return nil // the message is the new root
	}
	return c.reply(ctx, msg, broadcast)
}

// emojiName is what Slack takes as a reaction name: lower-case letters,
// digits, '-', '_', '+' and "'", optionally with a skin tone.
var emojiName = regexp.MustCompile(`^[a-z0-9_+'-]+(::skin-tone-[2-6])?$`)

// reactionName reads a rendered reaction: an emoji name, with or without
// the colons people write around it; "" for none.
func reactionName(s string) (string, error) {
	name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), ":"), ":")
	if name == "" || emojiName.MatchString(name) {
		return name, nil
	}
	return "", fmt.Errorf("slack: reaction %q is not an emoji name (such as white_check_mark)", runes.Truncate(s, 64))
}

// parseBroadcast reads a rendered reply_broadcast; empty is false.
func parseBroadcast(s string) (bool, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("slack: reply_broadcast %q is not true or false", runes.Truncate(s, 64))
	}
	return b, nil
}

// conversationKeys are the route keys that need a conversation: a dedup
// key, and a bot token to update and thread with.
var conversationKeys = []string{"root_text", "root_blocks", "reaction", "reply_broadcast"}

// CheckRoute implements router.RouteChecker.
func (s *slackSink) CheckRoute(keys map[string]string) []router.RouteProblem {
	var out []router.RouteProblem
	add := func(key, format string, args ...any) {
		out = append(out, router.RouteProblem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	_, keyed := keys["dedup_key"]
	if s.api == nil {
		for _, k := range append([]string{"dedup_key"}, conversationKeys...) {
			if _, ok := keys[k]; ok {
				add(k, "an incoming webhook cannot update or thread messages: Slack answers it without the message's ts; give the sink token and channel instead of webhook_url")
			}
		}
	}
	for _, k := range conversationKeys {
		if _, ok := keys[k]; ok && !keyed && s.api != nil {
			add(k, "needs dedup_key: the key names the conversation whose root message this is")
		}
	}
	if _, ok := keys["thread_ts"]; ok {
		for _, k := range []string{"root_text", "root_blocks", "reaction"} {
			if _, ok := keys[k]; ok {
				add("thread_ts", "a fixed thread_ts and a conversation's root (%s) exclude each other", k)
				break
			}
		}
	}
	has := func(k string) bool { _, ok := keys[k]; return ok }
	if !has("text") && !has("blocks") && !has("root_text") && !has("root_blocks") {
		add("", "a route to a slack sink needs text, blocks, root_text or root_blocks")
	}
	if v, ok := keys["reply_broadcast"]; ok && !strings.Contains(v, "{{") {
		if _, err := parseBroadcast(v); err != nil {
			add("reply_broadcast", "want true or false")
		}
	}
	if v, ok := keys["reaction"]; ok && !strings.Contains(v, "{{") {
		if _, err := reactionName(v); err != nil || strings.TrimSpace(v) == "" {
			add("reaction", "want an emoji name, such as white_check_mark")
		}
	}
	return out
}

var _ router.Planner = (*slackSink)(nil)

// Plan implements router.Planner.
func (s *slackSink) Plan(fields map[string]string, exists bool) string {
	if s.api == nil {
		return "post a message (an incoming webhook cannot thread)"
	}
	set := func(k string) bool { return strings.TrimSpace(fields[k]) != "" }
	root, msg := set("root_text") || set("root_blocks"), set("text") || set("blocks")
	var steps []string
	switch {
	case !exists && !root && !msg:
		return "nothing: every content field renders empty"
	case !exists:
		steps = append(steps, "post the conversation's root message")
	case root:
		steps = append(steps, "update the root message")
	}
	if name, _ := reactionName(fields["reaction"]); name != "" {
		steps = append(steps, "add :"+name+": to the root")
	}
	if msg && (exists || root) {
		reply := "reply in the root's thread"
		if b, _ := parseBroadcast(fields["reply_broadcast"]); b {
			reply += " (also shown in the channel)"
		}
		steps = append(steps, reply)
	}
	if len(steps) == 0 {
		return "nothing"
	}
	return strings.Join(steps, ", then ")
}
