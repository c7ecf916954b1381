package sinks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"golang.org/x/time/rate"

	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/router"
)

func init() {
	register("slack",
		[]router.FieldSpec{
			// Not Required: a route may only update its conversation's
			// root (CheckRoute wants one of the four contents).
			{Name: "text", Escape: escapeMrkdwn},
			// A JSON array of Block Kit blocks: values land inside JSON
			// strings that Slack reads as mrkdwn.
			{Name: "blocks", Escape: escapeBlocks},
			{Name: "thread_ts"},
			// Overrides the sink's channel. Webhooks made by Slack apps
			// ignore it; legacy ones honour it.
			{Name: "channel"},
			// A conversation's root message, on a route with a dedup key
			// (slackthread.go).
			{Name: "root_text", Escape: escapeMrkdwn},
			{Name: "root_blocks", Escape: escapeBlocks},
			{Name: "reaction"},
			{Name: "reply_broadcast"},
		},
		func() slackConfig { return slackConfig{Rate: 1} },
		newSlackSink)
}

// slackConfig configures the Slack sink. Give either token and channel
// (chat.postMessage, which returns the message ts for threading) or
// webhook_url (an incoming webhook, bound to its own channel).
type slackConfig struct {
	// Token is a bot token (xoxb-…) with the chat:write scope, as ${VAR}.
	Token router.Secret `yaml:"token"`
	// Channel is where messages go, with token: a channel ID (C…) is best,
	// "#name" works too. A route may override it with its channel field.
	Channel string `yaml:"channel"`
	// WebhookURL is an incoming webhook URL, as ${VAR}; instead of token.
	WebhookURL router.Secret `yaml:"webhook_url"`
	// APIURL is the Web API base, for proxies and tests; default
	// https://slack.com/api/.
	APIURL string `yaml:"api_url"`
	// Rate is messages per second to this channel (default 1, in bursts
	// of up to 3). Every sink and route posting to the same channel
	// shares it.
	Rate float64 `yaml:"rate"`
	// Username and IconEmoji (":robot_face:") override the bot's name and
	// icon; with a token this needs the chat:write.customize scope.
	Username  string `yaml:"username"`
	IconEmoji string `yaml:"icon_emoji"`
}

const (
	slackAPIURL   = "https://slack.com/api/"
	slackBurst    = 3
	slackMaxText  = 4000 // runes; Slack's advice, well under its 40,000 cut
	slackMaxBlock = 50
	// slackMinPost is what a post is left at least, of its attempt's
	// timeout, after waiting for a route's channel.
	slackMinPost = time.Second
)

func (c *slackConfig) validate() (*url.URL, error) {
	var p configProblems
	var hook *url.URL
	switch {
	case (c.Token == "") == (c.WebhookURL == ""):
		p.add("token", "set exactly one of token (with channel) and webhook_url")
	case c.Token != "":
		if strings.ContainsFunc(c.Token.Reveal(), func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			p.add("token", "must be one word, without spaces") // never quote it
		}
		if c.Channel == "" {
			p.add("channel", "must be set with token")
		}
		if c.APIURL == "" {
			c.APIURL = slackAPIURL
		} else if _, msg := checkURL(c.APIURL); msg != "" {
			p.add("api_url", "%s", msg)
		} else if !strings.HasSuffix(c.APIURL, "/") {
			c.APIURL += "/" // slack-go appends method names as they are
		}
	default:
		var msg string
		if hook, msg = checkURL(c.WebhookURL.Reveal()); msg != "" {
			p.add("webhook_url", "%s", msg)
		}
		if c.Channel != "" {
			p.add("channel", "a webhook posts to the channel it was made for; remove channel")
		}
		if c.APIURL != "" {
			p.add("api_url", "applies to token only, not to webhook_url")
		}
	}
	if !(c.Rate > 0) {
		p.add("rate", "must be more than 0 messages a second")
	}
	return hook, p.err()
}

// slackSink posts to one channel, through the Web API (api set) or an
// incoming webhook (hook set).
type slackSink struct {
	conf    slackConfig
	api     *slack.Client
	hook    string
	shown   string // the webhook URL as errors show it
	client  *http.Client
	red     *redact.Redactor
	limiter *rate.Limiter // a webhook's; a bot's are per channel (channelLimiter)
	reg     *Registry
	scope   string // the workspace a bot posts to: API URL and token, hashed
}

var (
	_ router.Sink  = (*slackSink)(nil)
	_ router.Paced = (*slackSink)(nil)
)

func newSlackSink(r *Registry, _ string, c slackConfig) (*slackSink, error) {
	hook, err := c.validate()
	if err != nil {
		return nil, err
	}
	s := &slackSink{conf: c, client: r.Client, reg: r}
	var l *rate.Limiter
	if hook != nil {
		s.hook, s.shown = hook.String(), showURL(hook)
		s.red = redact.New(s.hook, hook.EscapedPath(), hook.Path, hook.RawQuery)
		s.limiter = r.limiter("slack-webhook\x00"+secretHash(s.hook), rate.Limit(c.Rate), slackBurst)
		l = s.limiter
	} else {
		token := c.Token.Reveal()
		// slack-go's own retries stay off (its default): the router
		// retries, durably, and nested retries would multiply.
		s.api = slack.New(token, slack.OptionHTTPClient(&bearerClient{c: r.Client, token: token}), slack.OptionAPIURL(c.APIURL))
		s.red = redact.New(token)
		s.scope = c.APIURL + "\x00" + secretHash(token)
		l = s.channelLimiter(c.Channel)
	}
	// The limiter outlives a config reload; the newest rate applies.
	l.SetLimit(rate.Limit(c.Rate))
	return s, nil
}

// Pace implements router.Paced: it waits for the sink's channel's budget.
func (s *slackSink) Pace(ctx context.Context) error { return s.Limiter().Wait(ctx) }

// Limiter is the sink's channel's budget: Slack allows about one message a
// second per channel, and a worker that waits before claiming never spends
// an attempt's timeout waiting. It is the limiter of the sink's channel
// (routes that post elsewhere wait in Deliver, see waitChannel).
func (s *slackSink) Limiter() *rate.Limiter {
	if s.api == nil {
		return s.limiter
	}
	return s.channelLimiter(s.conf.Channel)
}

// channelLimiter is the limiter every bot sink of the workspace shares for
// channel. A "#name" shares its channel id's once a post has shown the id
// (chat.postMessage answers with it), so a sink that names the channel and
// one that gives its id do not post twice the rate between them.
func (s *slackSink) channelLimiter(channel string) *rate.Limiter {
	sh := s.reg.shared
	sh.mu.Lock()
	if id, ok := sh.slackIDs[s.scope+"\x00"+channel]; ok {
		channel = id
	}
	sh.mu.Unlock()
	return s.reg.limiter("slack\x00"+s.scope+"\x00"+channel, rate.Limit(s.conf.Rate), slackBurst)
}

// learnChannelID records that channel, as a route or the config named it,
// is the channel Slack calls id.
func (s *slackSink) learnChannelID(channel, id string) {
	if id == "" || id == channel {
		return
	}
	sh := s.reg.shared
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.slackIDs[s.scope+"\x00"+channel] = id
}

// waitChannel paces a message that a route sends to another channel than
// the sink's: the worker waited for the sink's channel before it claimed,
// and the other channel has its own budget, shared with every sink that
// posts there. A wait that would outlast the attempt is not begun: the
// delivery is retried once the channel has room.
func (s *slackSink) waitChannel(ctx context.Context, channel string) error {
	if s.channelLimiter(channel) == s.Limiter() {
		return nil // the same channel, by another name: already waited for
	}
	return s.waitTurn(ctx, channel)
}

// waitTurn waits for channel's message budget within the attempt's time,
// or asks for the delivery to be retried once it has room.
func (s *slackSink) waitTurn(ctx context.Context, channel string) error {
	r := s.channelLimiter(channel).Reserve()
	d := r.Delay()
	if d == 0 {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d+slackMinPost {
		r.Cancel()
		return &router.RetryAfterError{Err: fmt.Errorf("slack: channel %s is at its rate limit", channel), After: d, Local: true}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	}
}

// Deliver posts the message. Slack's configuration errors (channel not
// found, bad token, invalid blocks) are permanent; rate limits, server
// errors and network failures are retried.
func (s *slackSink) Deliver(ctx context.Context, d *router.Delivery) (router.Result, error) {
	msg, err := renderedMessage(d.Fields["text"], d.Fields["blocks"], "blocks")
	if err != nil {
		return router.Result{}, err
	}
	threadTS, channel := strings.TrimSpace(d.Fields["thread_ts"]), strings.TrimSpace(d.Fields["channel"])
	if s.api == nil {
		if msg.empty() {
			return router.Result{}, router.Permanent(errors.New("slack: text rendered empty and there are no blocks"))
		}
		hook := &slack.WebhookMessage{Text: msg.text, ThreadTimestamp: threadTS, Channel: channel, Username: s.conf.Username, IconEmoji: s.conf.IconEmoji}
		if msg.blocks != nil {
			hook.Blocks = &slack.Blocks{BlockSet: msg.blocks}
		}
		return s.postWebhook(ctx, hook)
	}
	// A route with a root is a conversation even without a key (a trial
	// takes keys off): its first delivery posts the root.
	if threadTS == "" && (d.DedupKey != "" || d.Fields["root_text"] != "" || d.Fields["root_blocks"] != "") {
		return s.converse(ctx, d, channel, msg)
	}
	if msg.empty() {
		return router.Result{}, router.Permanent(errors.New("slack: text rendered empty and there are no blocks"))
	}
	ts, _, err := s.postMessage(ctx, channel, threadTS, msg, false)
	if err != nil {
		return router.Result{StatusCode: statusOf(err)}, err
	}
	if threadTS != "" {
		ts = threadTS // the thread stays what the route names
	}
	return router.Result{StatusCode: http.StatusOK, RemoteID: ts}, nil
}

// postMessage posts msg with the Web API (chat.postMessage) to channel,
// the sink's own when empty, in the thread threadTS when set, and returns
// its ts and the channel's id. Its errors are classified (see classify).
func (s *slackSink) postMessage(ctx context.Context, channel, threadTS string, msg slackMessage, broadcast bool) (ts, channelID string, err error) {
	if channel == "" {
		channel = s.conf.Channel
	} else if err := s.waitChannel(ctx, channel); err != nil {
		return "", "", err
	}
	opts := []slack.MsgOption{slack.MsgOptionText(msg.text, false)}
	if msg.blocks != nil {
		opts = append(opts, slack.MsgOptionBlocks(msg.blocks...))
	}
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
		if broadcast {
			opts = append(opts, slack.MsgOptionBroadcast())
		}
	}
	if s.conf.Username != "" {
		opts = append(opts, slack.MsgOptionUsername(s.conf.Username))
	}
	if s.conf.IconEmoji != "" {
		opts = append(opts, slack.MsgOptionIconEmoji(s.conf.IconEmoji))
	}
	id, ts, err := s.api.PostMessageContext(ctx, channel, opts...)
	if err != nil {
		return "", "", s.failed("post message", err)
	}
	s.learnChannelID(channel, id)
	return ts, id, nil
}

// failed wraps a Web API call's error, classified, with what was being
// done.
func (s *slackSink) failed(what string, err error) error {
	code, err := s.classify(err)
	return &slackError{op: what, code: code, err: err}
}

// slackError is a failed Web API call: what was being done, the HTTP
// status guessed from the answer, and the classified error.
type slackError struct {
	op   string
	code int
	err  error
}

func (e *slackError) Error() string { return "slack: " + e.op + ": " + e.err.Error() }
func (e *slackError) Unwrap() error { return e.err }

// statusOf is the HTTP status a Web API call's error carries, 0 if none.
func statusOf(err error) int {
	var se *slackError
	if errors.As(err, &se) {
		return se.code
	}
	return 0
}

// slackRetryable are the ok:false codes worth another try. Every other
// code is a problem with the token, channel or message that retrying
// cannot fix (channel_not_found, invalid_auth, invalid_blocks, …).
var slackRetryable = map[string]bool{
	"ratelimited": true, "rate_limited": true, "internal_error": true,
	"fatal_error": true, "service_unavailable": true, "request_timeout": true,
}

// classify maps slack-go's errors to ours and guesses the HTTP status.
func (s *slackSink) classify(err error) (int, error) {
	var (
		limited *slack.RateLimitedError
		answer  slack.SlackErrorResponse
		status  slack.StatusCodeError
		badWait *strconv.NumError
	)
	switch {
	case errors.As(err, &limited):
		return http.StatusTooManyRequests, &router.RetryAfterError{Err: errors.New("rate limited"), After: limited.RetryAfter}
	case errors.As(err, &answer):
		err = s.explain(err, answer)
		if slackRetryable[answer.Err] {
			return http.StatusOK, err
		}
		if answer.Needed != "" {
			err = fmt.Errorf("%w (needs scope %s, token has %s)", err, answer.Needed, answer.Provided)
		}
		return http.StatusOK, router.Permanent(err)
	case errors.As(err, &status):
		if status.Retryable() {
			return status.Code, err
		}
		return status.Code, router.Permanent(err)
	case errors.As(err, &badWait): // slack-go's answer to a 429 whose Retry-After is not a number
		return http.StatusTooManyRequests, errors.New("rate limited")
	}
	return 0, s.red.Err(err, s.conf.APIURL+"chat.postMessage")
}

// postWebhook sends msg with our own request rather than slack-go's
// PostWebhook, which throws away the error body ("channel_is_archived")
// that tells a human what to fix.
func (s *slackSink) postWebhook(ctx context.Context, msg *slack.WebhookMessage) (router.Result, error) {
	body, err := json.Marshal(msg)
	if err != nil {
		return router.Result{}, router.Permanent(fmt.Errorf("slack: encode webhook message: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.hook, bytes.NewReader(body))
	if err != nil {
		return router.Result{}, router.Permanent(fmt.Errorf("slack: webhook: %w", s.red.Err(err, s.shown)))
	}
	req.Header.Set("Content-Type", "application/json")
	code, _, err := send(s.client, req, s.red, s.shown)
	if err != nil {
		return router.Result{StatusCode: code}, fmt.Errorf("slack: webhook: %w", err)
	}
	return router.Result{StatusCode: code}, nil
}

// rawBlock is a Block Kit block passed on exactly as the template wrote
// it: slack-go's typed blocks would drop fields it does not know.
type rawBlock struct {
	typ, id string
	raw     json.RawMessage
}

// BlockType implements slack.Block.
func (b rawBlock) BlockType() slack.MessageBlockType { return slack.MessageBlockType(b.typ) }

// ID implements slack.Block.
func (b rawBlock) ID() string { return b.id }

// MarshalJSON returns the block as written.
func (b rawBlock) MarshalJSON() ([]byte, error) { return b.raw, nil }

// parseBlocks reads a rendered blocks field: a JSON array of objects with
// a "type", fitted to Slack's limits (fitBlocks). Empty means no blocks.
func parseBlocks(src string) ([]slack.Block, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal([]byte(src), &raws); err != nil {
		return nil, fmt.Errorf("blocks: not a JSON array of blocks: %v", err)
	}
	if len(raws) == 0 {
		return nil, nil
	}
	raws, err := fitBlocks(raws)
	if err != nil {
		return nil, err
	}
	blocks := make([]slack.Block, 0, len(raws))
	for i, r := range raws {
		var head struct {
			Type    string `json:"type"`
			BlockID string `json:"block_id"`
		}
		if err := json.Unmarshal(r, &head); err != nil || head.Type == "" {
			return nil, fmt.Errorf("blocks[%d]: want an object with a \"type\"", i)
		}
		blocks = append(blocks, rawBlock{typ: head.Type, id: head.BlockID, raw: r})
	}
	return blocks, nil
}

var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// escapeMrkdwn keeps visitor text from forming Slack links and mentions
// (<!channel>, <https://…|click>).
func escapeMrkdwn(s string) string { return mrkdwnEscaper.Replace(s) }

// bearerClient sends the token in the Authorization header, as Slack
// recommends, rather than in the form body where slack-go v0.35.0 puts
// it: bodies are what proxies and debug dumps print.
type bearerClient struct {
	c     *http.Client
	token string
}

// Do moves the token from the form into the header and sends req.
func (b *bearerClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Header.Get("Content-Type") == "application/x-www-form-urlencoded" {
		raw, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, err
		}
		form.Del("token")
		body := form.Encode()
		req.Body = io.NopCloser(strings.NewReader(body))
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("User-Agent", userAgent)
	return b.c.Do(req)
}

// secretHash keys limiters by credential without keeping the credential there.
func secretHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
