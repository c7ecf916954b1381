package fakeapi

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Slack fakes the Slack Web API methods hookroute's Slack sink calls, from
// Slack's documentation (docs.slack.dev/reference/methods):
//
//   - Every method lives at /api/{method}, takes its arguments as a query
//     string (GET) or as a form or JSON body (POST), and answers JSON: HTTP
//     200 with "ok": true, or HTTP 200 with "ok": false and an "error" code.
//     An unknown method answers 404 {"ok":false,"error":"unknown_method"}.
//   - Auth is "Authorization: Bearer {token}", or the token as the form's
//     or query's "token" argument (JSON bodies need the header). No token
//     answers not_authed, another token invalid_auth.
//   - chat.postMessage (channel, text, blocks, thread_ts, reply_broadcast,
//     username, icon_emoji) answers {"ok":true,"channel":"C…","ts":"…",
//     "message":{…}}. A channel is an id or a name ("#alerts" or "alerts");
//     the fake keeps one id per name and creates channels on first use. A
//     thread_ts naming no message, or a deleted one, answers
//     thread_not_found; a thread_ts naming a reply files the message under
//     that reply's root.
//   - chat.update (channel, ts, text, blocks) answers {"ok":true,"channel",
//     "ts","text","message"}; an unknown or deleted ts answers
//     message_not_found, a message someone else posted (PostAsUser)
//     cant_update_message. Text or blocks left out are kept; blocks "[]"
//     removes them.
//   - reactions.add (channel, timestamp, name) answers {"ok":true}; the
//     same name twice answers already_reacted.
//   - chat.getPermalink (channel, message_ts) answers {"ok":true,"channel",
//     "permalink":"https://fake.slack.com/archives/C…/p1700000000000100"},
//     with "?thread_ts={root}&cid={channel}" for a reply, as Slack's example
//     shows.
//   - chat.update, reactions.add and chat.getPermalink want the channel's
//     id: a name or an id the fake never saw answers channel_not_found.
//     Slack documents name lookup for chat.postMessage only.
//   - Text over 40,000 characters answers msg_too_long; neither text nor
//     blocks answers no_text. Blocks are checked against Block Kit's limits
//     (see slackBlockErrors) and answer invalid_blocks with Slack's detail:
//     "errors" and "response_metadata.messages", each naming a JSON pointer.
//
// Where Slack's documentation and this fake differ, or the documentation
// is silent, the fake follows what hookroute's tests need: Slack documents
// neither thread_not_found nor msg_too_long for chat.postMessage (it
// truncates text over 40,000 characters with a message_truncated warning,
// and slack-go notes that a reply to a deleted parent may be posted
// unthreaded), and it documents invalid_blocks_format for blocks that are
// not Block Kit JSON. Guessed, not documented: the wording of the detail
// for too many blocks or items, a missing type or a non-object; the 404
// for an unknown method; invalid_json for a JSON body that is not an
// object; the 413 request_too_large for a body over 1 MiB. Ids, user ids
// and timestamps are deterministic, not Slack's.
type Slack struct {
	token string

	mu       sync.Mutex
	names    map[string]string // channel name, without '#', to id
	channels map[string]bool   // ids of the channels that exist
	nextChan int
	nextTS   int64
	messages []*SlackMessage          // in post order
	byKey    map[string]*SlackMessage // by slackKey(channel id, ts)
	calls    []SlackCall
	faults   []*slackFault
}

// SlackMessage is a message the fake holds.
type SlackMessage struct {
	Channel string // the channel's id
	TS      string
	// ThreadTS is the root's ts for a reply, empty for a root.
	ThreadTS       string
	ReplyBroadcast bool
	// User is who posted: SlackBotUser for messages posted through the
	// API, the user given to PostAsUser otherwise.
	User      string
	Text      string
	Blocks    json.RawMessage // as sent; nil without blocks
	Username  string
	IconEmoji string
	// Updates is the text of each chat.update, oldest first.
	Updates []string
	// Reactions are the names added with reactions.add, oldest first.
	Reactions []string
	// Deleted is set by DeleteMessage; the message stays, as Slack keeps a
	// deleted root's thread.
	Deleted bool
}

// SlackCall is a request the fake received.
type SlackCall struct {
	Method     string // the Web API method, "chat.postMessage"
	HTTPMethod string
	// Form holds the arguments: the query's, then the body's. A JSON
	// body's arrays and objects (blocks) are kept as their JSON text,
	// as a form would carry them.
	Form   url.Values
	Header http.Header
}

// slackFault is one entry of the fault script.
type slackFault struct {
	method, channel string // empty matches any
	n               int    // calls left; negative: every call
	status          int
	code            string
	retryAfter      time.Duration
}

// SlackBotUser is the user id of the token's bot, the author of the
// messages posted through the API.
const SlackBotUser = "U0FAKEBOT1"

const (
	slackBotID       = "B0FAKEBOT1"
	slackPermalink   = "https://fake.slack.com/archives/"
	slackFirstSecond = 1700000000
	slackMaxRequest  = 1 << 20
	slackMaxText     = 40000
	slackMaxBlocks   = 50
	slackMaxSection  = 3000
	slackMaxHeader   = 150
	slackMaxContext  = 2000
	slackMaxElements = 10
	slackMaxFields   = 10
	slackMaxField    = 2000
)

// slackChannelID is the shape of a conversation id: public (C), private
// (G) or direct (D). Channel names are lowercase, so they never match.
var slackChannelID = regexp.MustCompile(`^[CGD][A-Z0-9]{8,}$`)

// NewSlack returns a fake workspace whose bot has token.
func NewSlack(token string) *Slack {
	return &Slack{token: token, names: map[string]string{}, channels: map[string]bool{}, byKey: map[string]*SlackMessage{}}
}

// Channel returns the id of the channel named name ("#alerts" or
// "alerts"), creating the channel if need be, so that a test knows the id
// chat.postMessage will answer. An id is returned as it is.
func (s *Slack) Channel(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ensureChannel(name)
}

// PostAsUser posts text to channel as user, as a person would in Slack,
// and returns its ts. The bot cannot update such a message.
func (s *Slack) PostAsUser(channel, user, text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &SlackMessage{Channel: s.ensureChannel(channel), TS: s.newTS(), User: user, Text: text}
	s.store(m)
	return m.TS
}

// DeleteMessage deletes the message ts of channel (an id or a name), as a
// person deleting it in Slack would, and reports whether there was one.
func (s *Slack) DeleteMessage(channel, ts string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.byKey[slackKey(s.lookupChannel(channel), ts)]
	if m == nil || m.Deleted {
		return false
	}
	m.Deleted = true
	return true
}

// Fail makes the next n calls of method (any method when empty) fail; a
// negative n makes every call fail until ClearFaults. A call fails before
// any other check, with HTTP status (200 when 0) and the body
// {"ok":false,"error":errCode}; errCode defaults to "ratelimited" for 429
// and "internal_error" otherwise. A positive retryAfter is sent as
// Retry-After, in whole seconds rounded up; without it slack-go reads a
// 429 as a plain status error, not a *slack.RateLimitedError.
func (s *Slack) Fail(method string, n, status int, errCode string, retryAfter time.Duration) {
	s.script(&slackFault{method: method, n: n, status: status, code: errCode, retryAfter: retryAfter})
}

// FailChannel is Fail for the calls naming channel (an id or a name, as
// either matches once chat.postMessage made the channel), whatever their
// method: FailChannel("#gone", -1, 0, "channel_not_found", 0) makes a
// channel that does not exist.
func (s *Slack) FailChannel(channel string, n, status int, errCode string, retryAfter time.Duration) {
	s.script(&slackFault{channel: channel, n: n, status: status, code: errCode, retryAfter: retryAfter})
}

// ClearFaults drops the fault script.
func (s *Slack) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (s *Slack) script(f *slackFault) {
	if f.n == 0 {
		return
	}
	if f.code == "" {
		f.code = "internal_error"
		if f.status == http.StatusTooManyRequests {
			f.code = "ratelimited"
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// Messages returns copies of every message, deleted ones included, in
// post order.
func (s *Slack) Messages() []SlackMessage {
	return s.copies(func(*SlackMessage) bool { return true })
}

// Roots returns copies of the messages of channel (an id or a name) that
// are not replies, deleted ones included, in post order.
func (s *Slack) Roots(channel string) []SlackMessage {
	s.mu.Lock()
	id := s.lookupChannel(channel)
	s.mu.Unlock()
	return s.copies(func(m *SlackMessage) bool { return m.Channel == id && m.ThreadTS == "" })
}

// Replies returns copies of the replies to rootTS in channel (an id or a
// name), broadcast ones included, in post order.
func (s *Slack) Replies(channel, rootTS string) []SlackMessage {
	s.mu.Lock()
	id := s.lookupChannel(channel)
	s.mu.Unlock()
	return s.copies(func(m *SlackMessage) bool { return m.Channel == id && m.ThreadTS == rootTS })
}

func (s *Slack) copies(keep func(*SlackMessage) bool) []SlackMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SlackMessage
	for _, m := range s.messages {
		if keep(m) {
			c := *m
			c.Blocks = bytes.Clone(m.Blocks)
			c.Updates, c.Reactions = slices.Clone(m.Updates), slices.Clone(m.Reactions)
			out = append(out, c)
		}
	}
	return out
}

// Calls returns copies of the calls of method received, every call when
// method is empty, oldest first. Failed and unauthorized calls count.
func (s *Slack) Calls(method string) []SlackCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SlackCall
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, SlackCall{Method: c.Method, HTTPMethod: c.HTTPMethod, Form: slackCloneValues(c.Form), Header: c.Header.Clone()})
		}
	}
	return out
}

func slackCloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// ServeHTTP implements http.Handler.
func (s *Slack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method, _ := strings.CutPrefix(r.URL.Path, "/api/")
	args, jsonBody, status, errCode := slackArgs(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, SlackCall{Method: method, HTTPMethod: r.Method, Form: args, Header: r.Header.Clone()})
	if s.fault(w, method, args.Get("channel")) {
		return
	}
	if errCode != "" {
		if status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", "GET, POST")
		}
		slackWrite(w, status, map[string]any{"ok": false, "error": errCode})
		return
	}
	if code := s.auth(r, args, jsonBody); code != "" {
		slackError(w, code)
		return
	}
	switch method {
	case "chat.postMessage":
		s.postMessage(w, args)
	case "chat.update":
		s.update(w, args)
	case "reactions.add":
		s.react(w, args)
	case "chat.getPermalink":
		s.permalink(w, args)
	default:
		slackWrite(w, http.StatusNotFound, map[string]any{"ok": false, "error": "unknown_method", "req_method": method})
	}
}

// slackArgs reads a call's arguments: the query's, overridden by a POST's
// form or JSON body. A request Slack would refuse gets its HTTP status and
// error code, still with what arguments could be read, so that Calls and
// the fault script see them.
func slackArgs(r *http.Request) (args url.Values, jsonBody bool, status int, errCode string) {
	args = r.URL.Query()
	if r.Method == http.MethodGet {
		return args, false, 0, ""
	}
	if r.Method != http.MethodPost {
		return args, false, http.StatusMethodNotAllowed, "invalid_post_type"
	}
	// Read one byte more than the limit, so that a body of exactly the
	// limit passes and a longer one is caught without reading it all.
	body, err := io.ReadAll(io.LimitReader(r.Body, slackMaxRequest+1))
	switch {
	case err != nil:
		return args, false, http.StatusOK, "request_timeout"
	case len(body) > slackMaxRequest:
		return args, false, http.StatusRequestEntityTooLarge, "request_too_large"
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case len(body) == 0:
		return args, false, 0, ""
	case err != nil:
		return args, false, http.StatusOK, "invalid_post_type"
	case mt == "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return args, false, http.StatusOK, "invalid_form_data"
		}
		maps.Copy(args, form)
		return args, false, 0, ""
	case mt == "application/json":
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			return args, true, http.StatusOK, "invalid_json"
		}
		for k, raw := range fields {
			var str string
			if json.Unmarshal(raw, &str) == nil {
				args.Set(k, str)
			} else if string(raw) != "null" {
				args.Set(k, string(raw))
			}
		}
		return args, true, 0, ""
	default:
		return args, false, http.StatusOK, "invalid_post_type"
	}
}

// fault plays the fault script for a call, and reports whether it
// answered.
func (s *Slack) fault(w http.ResponseWriter, method, channel string) bool {
	for i, f := range s.faults {
		if f.method != "" && f.method != method {
			continue
		}
		if f.channel != "" && (channel == "" || s.channelKey(f.channel) != s.channelKey(channel)) {
			continue
		}
		if f.n > 0 {
			if f.n--; f.n == 0 {
				s.faults = slices.Delete(s.faults, i, i+1)
			}
		}
		if f.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(f.retryAfter.Seconds())), 10))
		}
		slackWrite(w, cmp.Or(f.status, http.StatusOK), map[string]any{"ok": false, "error": f.code})
		return true
	}
	return false
}

// auth checks the call's token and returns Slack's error code, or "".
func (s *Slack) auth(r *http.Request, args url.Values, jsonBody bool) string {
	token, header := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !header && !jsonBody {
		token = args.Get("token")
	}
	switch {
	case token == "":
		return "not_authed"
	case token != s.token || s.token == "":
		return "invalid_auth"
	}
	return ""
}

func (s *Slack) postMessage(w http.ResponseWriter, args url.Values) {
	channel := args.Get("channel")
	if channel == "" {
		slackError(w, "channel_not_found")
		return
	}
	text, blocks, ok := slackContent(w, args)
	if !ok {
		return
	}
	if text == "" && blocks == nil {
		slackError(w, "no_text")
		return
	}
	id := s.ensureChannel(channel)
	m := &SlackMessage{Channel: id, User: SlackBotUser, Text: text, Blocks: blocks,
		Username: args.Get("username"), IconEmoji: args.Get("icon_emoji")}
	if thread := args.Get("thread_ts"); thread != "" {
		named := s.byKey[slackKey(id, thread)]
		var root *SlackMessage
		if named != nil {
			root = s.byKey[slackKey(id, cmp.Or(named.ThreadTS, named.TS))]
		}
		if named == nil || named.Deleted || root.Deleted {
			slackError(w, "thread_not_found")
			return
		}
		m.ThreadTS = root.TS
		m.ReplyBroadcast = slackBool(args.Get("reply_broadcast"))
	}
	m.TS = s.newTS()
	s.store(m)
	slackWrite(w, http.StatusOK, map[string]any{"ok": true, "channel": id, "ts": m.TS, "message": m.view()})
}

// slackContent reads and checks a message's text and blocks, answering
// when they are not valid. blocks is nil when the call had none (or "[]",
// which chat.update reads as "remove them").
func slackContent(w http.ResponseWriter, args url.Values) (text string, blocks json.RawMessage, ok bool) {
	text = args.Get("text")
	if utf8.RuneCountInString(text) > slackMaxText {
		slackError(w, "msg_too_long")
		return "", nil, false
	}
	if !args.Has("blocks") || strings.TrimSpace(args.Get("blocks")) == "" {
		return text, nil, true
	}
	raw := json.RawMessage(args.Get("blocks"))
	list, errs := slackBlockErrors(raw)
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = "[ERROR] " + e
		}
		slackWrite(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_blocks", "errors": errs,
			"response_metadata": map[string]any{"messages": msgs}})
		return "", nil, false
	}
	if len(list) == 0 {
		return text, nil, true
	}
	return text, raw, true
}

// slackBlockErrors checks blocks against the Block Kit limits Slack
// documents for messages and returns the blocks, and Slack's detail for
// each problem: "{what} [json-pointer:{where}]".
//
// Lengths are counted in Unicode code points: Slack's documentation says
// "characters" without saying how it counts them, and code points are what
// a person counts for text without emoji sequences.
func slackBlockErrors(raw json.RawMessage) ([]json.RawMessage, []string) {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, []string{"must provide an array [json-pointer:/blocks]"}
	}
	var errs []string
	add := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if len(list) > slackMaxBlocks {
		add("must contain less than %d items [json-pointer:/blocks]", slackMaxBlocks+1)
	}
	for i, b := range list {
		at := fmt.Sprintf("/blocks/%d", i)
		var block map[string]json.RawMessage
		if json.Unmarshal(b, &block) != nil || block == nil {
			add("must provide an object [json-pointer:%s]", at)
			continue
		}
		var typ string
		if json.Unmarshal(block["type"], &typ) != nil || typ == "" {
			add("missing required field: type [json-pointer:%s]", at)
			continue
		}
		// checkText checks the text object at where: an object whose
		// "text", if any, is a string of at most max characters.
		checkText := func(raw json.RawMessage, where string, max int) {
			var obj map[string]json.RawMessage
			if json.Unmarshal(raw, &obj) != nil || obj == nil {
				add("must provide an object [json-pointer:%s]", where)
				return
			}
			t, ok := obj["text"]
			if !ok {
				return
			}
			var str string
			if json.Unmarshal(t, &str) != nil {
				add("must provide a string [json-pointer:%s/text]", where)
			} else if utf8.RuneCountInString(str) > max {
				add("must be less than %d characters [json-pointer:%s/text]", max+1, where)
			}
		}
		checkList := func(field string, max, maxText int) {
			raw, ok := block[field]
			if !ok {
				return
			}
			var items []json.RawMessage
			if json.Unmarshal(raw, &items) != nil {
				add("must provide an array [json-pointer:%s/%s]", at, field)
				return
			}
			if len(items) > max {
				add("must contain less than %d items [json-pointer:%s/%s]", max+1, at, field)
			}
			for j, it := range items {
				checkText(it, fmt.Sprintf("%s/%s/%d", at, field, j), maxText)
			}
		}
		switch typ {
		case "section":
			if t, ok := block["text"]; ok {
				checkText(t, at+"/text", slackMaxSection)
			}
			checkList("fields", slackMaxFields, slackMaxField)
		case "header":
			if t, ok := block["text"]; ok {
				checkText(t, at+"/text", slackMaxHeader)
			}
		case "context":
			checkList("elements", slackMaxElements, slackMaxContext)
		}
	}
	return list, errs
}

func (s *Slack) update(w http.ResponseWriter, args url.Values) {
	m, ok := s.target(w, args, "ts")
	if !ok {
		return
	}
	if m.User != SlackBotUser {
		slackError(w, "cant_update_message")
		return
	}
	text, blocks, ok := slackContent(w, args)
	if !ok {
		return
	}
	// Slack documents that blocks left out are kept and "[]" removes them;
	// text left out is kept too, so that an update of blocks alone does
	// not blank the notification text.
	newText, newBlocks := m.Text, m.Blocks
	if args.Has("text") {
		newText = text
	}
	if args.Has("blocks") && strings.TrimSpace(args.Get("blocks")) != "" {
		newBlocks = blocks
	}
	if newText == "" && newBlocks == nil {
		slackError(w, "no_text")
		return
	}
	m.Text, m.Blocks = newText, newBlocks
	m.Updates = append(m.Updates, text)
	slackWrite(w, http.StatusOK, map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS, "text": m.Text, "message": m.view()})
}

// slackSkinTone is the suffix Slack's reaction names carry for a skin
// tone, the one place a name holds colons.
var slackSkinTone = regexp.MustCompile(`::skin-tone-[2-6]$`)

func (s *Slack) react(w http.ResponseWriter, args url.Values) {
	if args.Get("channel") == "" || args.Get("timestamp") == "" {
		slackError(w, "no_item_specified")
		return
	}
	m, ok := s.target(w, args, "timestamp")
	if !ok {
		return
	}
	name := args.Get("name")
	if base := slackSkinTone.ReplaceAllString(name, ""); base == "" || strings.ContainsFunc(base, func(r rune) bool { return r == ':' || unicode.IsSpace(r) }) {
		slackError(w, "invalid_name")
		return
	}
	if slices.Contains(m.Reactions, name) {
		slackError(w, "already_reacted")
		return
	}
	m.Reactions = append(m.Reactions, name)
	slackWrite(w, http.StatusOK, map[string]any{"ok": true})
}

func (s *Slack) permalink(w http.ResponseWriter, args url.Values) {
	m, ok := s.target(w, args, "message_ts")
	if !ok {
		return
	}
	link := slackPermalink + m.Channel + "/p" + strings.Replace(m.TS, ".", "", 1)
	if m.ThreadTS != "" {
		// In the order of Slack's example; url.Values would sort them.
		link += "?thread_ts=" + url.QueryEscape(m.ThreadTS) + "&cid=" + url.QueryEscape(m.Channel)
	}
	slackWrite(w, http.StatusOK, map[string]any{"ok": true, "channel": m.Channel, "permalink": link})
}

// target finds the message a call names by its channel id and its tsArg,
// answering when there is none.
func (s *Slack) target(w http.ResponseWriter, args url.Values, tsArg string) (*SlackMessage, bool) {
	id := args.Get("channel")
	if !s.channels[id] {
		slackError(w, "channel_not_found")
		return nil, false
	}
	m := s.byKey[slackKey(id, args.Get(tsArg))]
	if m == nil || m.Deleted {
		slackError(w, "message_not_found")
		return nil, false
	}
	return m, true
}

// view is the message as Slack's answers show it.
func (m *SlackMessage) view() map[string]any {
	v := map[string]any{"type": "message", "user": m.User, "text": m.Text, "ts": m.TS}
	if m.User == SlackBotUser {
		v["bot_id"] = slackBotID
	}
	if m.ThreadTS != "" {
		v["thread_ts"] = m.ThreadTS
	}
	if m.Blocks != nil {
		v["blocks"] = m.Blocks
	}
	if m.Username != "" {
		v["username"] = m.Username
	}
	if m.IconEmoji != "" {
		v["icons"] = map[string]string{"emoji": m.IconEmoji}
	}
	return v
}

// ensureChannel returns the id of channel, an id or a name, creating the
// channel if need be. The lock is held.
func (s *Slack) ensureChannel(channel string) string {
	if slackChannelID.MatchString(channel) {
		s.channels[channel] = true
		return channel
	}
	name := strings.TrimPrefix(channel, "#")
	if id, ok := s.names[name]; ok {
		return id
	}
	s.nextChan++
	id := fmt.Sprintf("C%010d", 1000000+s.nextChan)
	s.names[name], s.channels[id] = id, true
	return id
}

// lookupChannel is ensureChannel without creating: the id of a known
// name, anything else as it is. The lock is held.
func (s *Slack) lookupChannel(channel string) string {
	if id, ok := s.names[strings.TrimPrefix(channel, "#")]; ok && !slackChannelID.MatchString(channel) {
		return id
	}
	return channel
}

// channelKey makes a name and its channel's id compare equal, and a name
// not yet used equal to itself with or without '#'. The lock is held.
func (s *Slack) channelKey(channel string) string {
	if id := s.lookupChannel(channel); id != channel || slackChannelID.MatchString(channel) {
		return id
	}
	return "#" + strings.TrimPrefix(channel, "#")
}

// newTS returns the next message timestamp: unique and increasing across
// the workspace, 100µs apart, from 1700000000.000100. The lock is held.
func (s *Slack) newTS() string {
	s.nextTS++
	micro := s.nextTS * 100
	return fmt.Sprintf("%d.%06d", slackFirstSecond+micro/1e6, micro%1e6)
}

// store adds m. The lock is held.
func (s *Slack) store(m *SlackMessage) {
	s.messages = append(s.messages, m)
	s.byKey[slackKey(m.Channel, m.TS)] = m
}

func slackKey(channel, ts string) string { return channel + "\x00" + ts }

// slackBool reads a boolean argument as Slack does: "true" or "1".
func slackBool(v string) bool { return v == "true" || v == "1" }

func slackError(w http.ResponseWriter, code string) {
	slackWrite(w, http.StatusOK, map[string]any{"ok": false, "error": code})
}

func slackWrite(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
