package cli

// hookroute silences add|list|expire: silences, which mute the deliveries
// their matcher selects for a while (README: Operating), through a running
// router's admin API. Like deliveries and keys, they need none of the
// router's secrets: of the config file, only where the admin API listens
// and the admin tokens.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/hookroute/hookroute/router/config"
)

const silencesUsage = `usage:
  hookroute silences add --matcher EXPR (--duration D | --ends-at T) [--starts-at T] [--comment C] [--json]
  hookroute silences list [--state active|pending|expired] [--json]
  hookroute silences expire ID [--json]

A silence mutes the deliveries its matcher selects, from --starts-at (default
now) until --ends-at, or for --duration (30m, 2h, 1d): they are recorded as
silenced, not sent. The matcher is an expression over the event, as a rule's
when:, with rule, sink and source besides:
  hookroute silences add --matcher 'sink == "support-slack" && chat.rating == "sad"' --duration 2h --comment "deploy"
T is an RFC 3339 time such as 2026-12-07T14:00:00Z.
expire ends a silence now. What it silenced stays silenced: replay it with
hookroute deliveries replay (a replay while the silence is active is
silenced again).
list needs a token with the read scope, add and expire the silence scope.
` + adminUsage

// silencesScope is the token scope each subcommand needs.
var silencesScope = map[string]string{"add": "silence", "list": "read", "expire": "silence"}

// silenceStates are the states list --state takes (the API's).
var silenceStates = []string{"active", "pending", "expired"}

// silence mirrors the API's silence JSON.
type silence struct {
	ID        string    `json:"id"`
	Matcher   string    `json:"matcher"`
	Comment   string    `json:"comment"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	State     string    `json:"state"`
}

// silenceOpts are the flags of a silences subcommand besides the admin
// API's.
type silenceOpts struct {
	matcher, duration, startsAt, endsAt, comment, state string
	asJSON                                              bool
}

// cmdSilences runs `hookroute silences ARGS`. It returns 0 on success, 1
// when the API refused or could not be reached, 2 for a usage error.
func cmdSilences(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, silencesUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	if sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(stdout, silencesUsage)
		return 0
	}
	af := newAdminFlags("silences "+sub, silencesUsage, stderr)
	o := &silenceOpts{}
	fs := af.fs
	fs.BoolVar(&o.asJSON, "json", false, "print the API's JSON")
	switch sub {
	case "add":
		fs.StringVar(&o.matcher, "matcher", "", "the `EXPR` selecting the deliveries to mute")
		fs.StringVar(&o.duration, "duration", "", "how long it lasts from its start, `D` (2h, 1d)")
		fs.StringVar(&o.endsAt, "ends-at", "", "when it ends, `T` (RFC 3339)")
		fs.StringVar(&o.startsAt, "starts-at", "", "when it starts, `T` (RFC 3339; default now)")
		fs.StringVar(&o.comment, "comment", "", "why, shown with every delivery it silences")
	case "list":
		fs.StringVar(&o.state, "state", "", "active, pending or expired (default all)")
	}
	// Flags may follow the id (hookroute silences expire s_… -c rules.yaml).
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	scope, known := silencesScope[sub]
	if !known || len(rest) != map[string]int{"expire": 1}[sub] {
		fmt.Fprint(stderr, silencesUsage)
		return 2
	}
	if msg := o.check(sub); msg != "" {
		fmt.Fprintf(stderr, "hookroute silences %s: %s\n", sub, msg)
		return 2
	}
	c, _, code := af.connect("hookroute silences", scope, stderr)
	if code != 0 {
		return code
	}
	switch sub {
	case "add":
		err = addSilence(ctx, c, o, stdout)
	case "list":
		err = listSilences(ctx, c, o.state, o.asJSON, stdout)
	case "expire":
		err = expireSilence(ctx, c, rest[0], o.asJSON, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "hookroute silences:", err)
		if sub == "add" {
			fmt.Fprint(stderr, matcherCaret(err, o.matcher))
		}
		return 1
	}
	return 0
}

// check returns what is wrong with the flags of sub, "" if nothing. The
// API would refuse the same with a 400, but a usage error says so before
// a token or a router is needed, with exit code 2.
func (o *silenceOpts) check(sub string) string {
	switch sub {
	case "list":
		if o.state != "" && !slices.Contains(silenceStates, o.state) {
			return "--state: want " + strings.Join(silenceStates, ", ")
		}
		return ""
	case "add":
	default:
		return ""
	}
	switch {
	case strings.TrimSpace(o.matcher) == "":
		return `--matcher is required: an expression over the event, rule, sink and source, such as 'sink == "support-slack"'`
	case o.duration == "" && o.endsAt == "":
		return "say when the silence ends: --duration D or --ends-at T (a silence always ends)"
	case o.duration != "" && o.endsAt != "":
		return "give --duration or --ends-at, not both"
	}
	if o.duration != "" {
		if d, err := config.ParseDuration(o.duration); err != nil || d <= 0 {
			return fmt.Sprintf("--duration %q: want a positive duration such as 30m, 2h or 1d", o.duration)
		}
	}
	for _, t := range []struct{ flag, v string }{{"--starts-at", o.startsAt}, {"--ends-at", o.endsAt}} {
		if t.v == "" {
			continue
		}
		if _, err := time.Parse(time.RFC3339, t.v); err != nil {
			return fmt.Sprintf("%s %q: want an RFC 3339 time such as 2026-12-07T14:00:00Z", t.flag, t.v)
		}
	}
	return ""
}

func addSilence(ctx context.Context, c *adminClient, o *silenceOpts, w io.Writer) error {
	// The API takes the times and the duration as text, as written here:
	// it parses them itself (durations in days too).
	body := map[string]string{"matcher": o.matcher, "comment": o.comment}
	for k, v := range map[string]string{"duration": o.duration, "starts_at": o.startsAt, "ends_at": o.endsAt} {
		if v != "" {
			body[k] = v
		}
	}
	var s silence
	if printed, err := callPrinting(ctx, c, http.MethodPost, "/api/silences", body, o.asJSON, w, &s); printed || err != nil {
		return err
	}
	when := "until " + localTime(s.EndsAt)
	if s.State == "pending" {
		when = "from " + localTime(s.StartsAt) + " " + when
	}
	_, err := fmt.Fprintf(w, "created silence %s (%s %s)\n", s.ID, s.State, when)
	return err
}

func listSilences(ctx context.Context, c *adminClient, state string, asJSON bool, w io.Writer) error {
	path := "/api/silences"
	if state != "" {
		path += "?" + url.Values{"state": {state}}.Encode()
	}
	items, printed, err := listPrinting(ctx, c, path, asJSON, w)
	if printed || err != nil {
		return err
	}
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, strings.Join(strings.Fields("no "+state+" silences"), " "))
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tUNTIL\tCREATED BY\tMATCHER\tCOMMENT")
	for _, raw := range items {
		var s silence
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		st := s.State
		if st == "pending" {
			// Without its start a pending silence reads as if it muted
			// already.
			st += " from " + localTime(s.StartsAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, st, localTime(s.EndsAt), oneLine(s.CreatedBy, 24),
			oneLine(s.Matcher, 60), oneLine(s.Comment, 40))
	}
	return tw.Flush()
}

func expireSilence(ctx context.Context, c *adminClient, id string, asJSON bool, w io.Writer) error {
	var s silence
	if printed, err := callPrinting(ctx, c, http.MethodDelete, "/api/silences/"+url.PathEscape(id), nil, asJSON, w, &s); printed || err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "expired silence %s at %s; the deliveries it silenced stay silenced until replayed (hookroute deliveries list --status silenced)\n",
		s.ID, localTime(s.EndsAt))
	return err
}

func localTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }

// oneLine makes text from the API one table cell: control characters (a
// tab would shift the columns, an escape sequence would reach the
// terminal) become spaces, and it is cut to n runes.
func oneLine(s string, n int) string {
	return cut(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s), n)
}

// matcherPos finds the position the API gives for a matcher that does
// not compile ("matcher: line 1, column 6: ...", 1-based, in runes).
var matcherPos = regexp.MustCompile(`matcher: line (\d+), column (\d+): `)

// matcherCaret returns the matcher's line that err points into with a
// caret under the column, or "" when err gives no position in it.
func matcherCaret(err error, matcher string) string {
	m := matcherPos.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	lines := strings.Split(matcher, "\n")
	if line < 1 || line > len(lines) || col < 1 {
		return ""
	}
	text := []rune(oneLine(lines[line-1], 1<<20)) // a tab is one column, as the caret counts
	if col > len(text)+1 {
		return ""
	}
	return "  " + string(text) + "\n  " + strings.Repeat(" ", col-1) + "^\n"
}
