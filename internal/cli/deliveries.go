package cli

// hookroute deliveries list|show|replay: the delivery log through the
// admin API. It talks HTTP to a running router, so it works against any
// replica and needs none of the router's secrets: of the config file, only
// where the admin API listens and the admin tokens.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

const deliveriesUsage = `usage:
  hookroute deliveries list [--status S] [--sink S] [--rule R] [--source S] [--since T] [--until T] [--limit N] [--all] [--json]
  hookroute deliveries show ID [--json]
  hookroute deliveries replay ID...
  hookroute deliveries replay --status S --sink S [--rule R] [--source S] [--since T] [--until T] [--dry-run] [--yes]
  hookroute deliveries replay --all [--status S] [--rule R] [--source S] [--since T] [--until T] [--dry-run] [--yes]

T is an RFC 3339 time or a duration back from now (24h, 7d).
A replay by filter names a status and a sink, or says --all for every sink
(status dead unless given). Above 10 deliveries it asks for confirmation on
standard input; --yes replays without asking.
list and show need a token with the read scope, replay the replay scope.
` + adminUsage

// confirmAbove is how many deliveries a replay by filter sends without
// asking first: a few are a fix being tried, more may be a filter gone
// wrong.
const confirmAbove = 10

// deliveriesScope is the token scope each subcommand needs.
var deliveriesScope = map[string]string{"list": "read", "show": "read", "replay": "replay"}

// deliveriesOpts are the flags of a deliveries subcommand besides the
// admin API's.
type deliveriesOpts struct {
	filters
	limit                    int
	all, asJSON, dryRun, yes bool
}

func deliveriesFlags(sub string, stderr io.Writer) (*adminFlags, *deliveriesOpts) {
	af := newAdminFlags("deliveries "+sub, deliveriesUsage, stderr)
	fs, o := af.fs, &deliveriesOpts{}
	fs.BoolVar(&o.asJSON, "json", false, "print JSON")
	if sub == "list" || sub == "replay" {
		fs.StringVar(&o.status, "status", "", "pending, delivered, dead, suppressed, silenced or grouped")
		fs.StringVar(&o.sink, "sink", "", "sink name")
		fs.StringVar(&o.rule, "rule", "", "rule name")
		fs.StringVar(&o.source, "source", "", "source name")
		fs.StringVar(&o.since, "since", "", "created at or after `T`")
		fs.StringVar(&o.until, "until", "", "created before `T`")
	}
	fs.IntVar(&o.limit, "limit", 50, "deliveries per page (list)")
	fs.BoolVar(&o.all, "all", false, "list: follow every page; replay: every sink's deliveries matching the other filters")
	fs.BoolVar(&o.dryRun, "dry-run", false, "count what would be replayed (replay by filter)")
	fs.BoolVar(&o.yes, "yes", false, "replay without asking for confirmation (replay by filter)")
	return af, o
}

// cmdDeliveries runs `hookroute deliveries ARGS`. A replay by filter that
// matches more than confirmAbove deliveries reads its confirmation from
// stdin.
func cmdDeliveries(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, deliveriesUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	af, o := deliveriesFlags(sub, stderr)
	if err := af.fs.Parse(args); err != nil {
		return 2
	}
	scope, known := deliveriesScope[sub]
	if !known || sub == "show" && af.fs.NArg() != 1 {
		fmt.Fprint(stderr, deliveriesUsage)
		return 2
	}
	if sub == "replay" && !o.replayTargetOK(af.fs.NArg(), stderr) {
		return 2
	}
	c, _, code := af.connect("hookroute deliveries", scope, stderr)
	if code != 0 {
		return code
	}
	var err error
	switch {
	case sub == "list":
		err = listDeliveries(ctx, c, o.filters, o.limit, o.all, o.asJSON, stdout)
	case sub == "show":
		err = showDelivery(ctx, c, af.fs.Arg(0), o.asJSON, stdout)
	case af.fs.NArg() > 0:
		err = replayIDs(ctx, c, af.fs.Args(), o.asJSON, stdout)
	default:
		err = replayFilter(ctx, c, o.filters, o.dryRun, o.yes, o.asJSON, stdin, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "hookroute deliveries:", err)
		return 1
	}
	return 0
}

// replayTargetOK reports whether a replay says what it replays (ids, or a
// filter), saying what is wrong when it does not.
func (o *deliveriesOpts) replayTargetOK(ids int, stderr io.Writer) bool {
	switch {
	case ids > 0 && (o.all || o.filters != filters{}):
		fmt.Fprintln(stderr, "hookroute deliveries replay: give delivery IDs or a filter, not both")
		return false
	case ids == 0 && !o.all && (o.status == "" || o.sink == ""):
		// A bare replay used to replay every dead delivery of every
		// sink: the whole set is now something to ask for.
		fmt.Fprint(stderr, `hookroute deliveries replay: say what to replay:
  one or more delivery IDs                     hookroute deliveries replay ID...
  a status and a sink, with any other filter   hookroute deliveries replay --status dead --sink NAME [--since 24h]
  every sink, with any other filter            hookroute deliveries replay --all [--status dead] [--since 24h]
Nothing was replayed.
`)
		return false
	}
	return true
}

type filters struct{ status, sink, rule, source, since, until string }

func (f filters) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"status": f.status, "sink": f.sink, "rule": f.rule, "source": f.source, "since": f.since, "until": f.until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// delivery mirrors the API's delivery JSON.
type delivery struct {
	ID            string     `json:"id"`
	Source        string     `json:"source"`
	EventID       string     `json:"event_id"`
	Rule          string     `json:"rule"`
	Sink          string     `json:"sink"`
	Status        string     `json:"status"`
	InFlight      bool       `json:"in_flight"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	LastError     string     `json:"last_error"`
	RemoteID      string     `json:"remote_id"`
	Replays       int        `json:"replays"`
	ReplayedBy    string     `json:"replayed_by"`
	AttemptLog    []struct {
		At         time.Time `json:"at"`
		DurationMS float64   `json:"duration_ms"`
		Outcome    string    `json:"outcome"`
		StatusCode int       `json:"status_code"`
		Error      string    `json:"error"`
	} `json:"attempt_log"`
}

func listDeliveries(ctx context.Context, c *adminClient, f filters, limit int, all, asJSON bool, w io.Writer) error {
	q := f.query()
	q.Set("limit", fmt.Sprint(limit))
	var items []json.RawMessage
	for {
		var page struct {
			Items      []json.RawMessage `json:"items"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := c.Do(ctx, http.MethodGet, "/api/deliveries?"+q.Encode(), nil, &page); err != nil {
			return err
		}
		items = append(items, page.Items...)
		if !all || page.NextCursor == "" {
			break
		}
		q.Set("cursor", page.NextCursor)
	}
	if asJSON {
		return json.NewEncoder(w).Encode(items)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tSINK\tRULE\tATTEMPTS\tUPDATED\tLAST ERROR")
	for _, raw := range items {
		var d delivery
		if err := json.Unmarshal(raw, &d); err != nil {
			return err
		}
		status := d.Status
		if d.InFlight {
			status += "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, status, d.Sink, d.Rule, d.Attempts,
			d.UpdatedAt.Local().Format("2006-01-02 15:04:05"), cut(d.LastError, 60))
	}
	return tw.Flush()
}

func showDelivery(ctx context.Context, c *adminClient, id string, asJSON bool, w io.Writer) error {
	var raw json.RawMessage
	if err := c.Do(ctx, http.MethodGet, "/api/deliveries/"+url.PathEscape(id), nil, &raw); err != nil {
		return err
	}
	if asJSON {
		_, err := fmt.Fprintln(w, string(raw))
		return err
	}
	var d delivery
	if err := json.Unmarshal(raw, &d); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("id", d.ID)
	row("status", d.Status+map[bool]string{true: " (in flight)", false: ""}[d.InFlight])
	row("sink", d.Sink)
	row("rule", d.Rule)
	row("event", d.Source+" "+d.EventID)
	row("attempts", d.Attempts)
	if d.NextAttemptAt != nil {
		row("next attempt", d.NextAttemptAt.Local().Format(time.RFC3339))
	}
	if d.RemoteID != "" {
		row("remote id", d.RemoteID)
	}
	if d.Replays > 0 {
		row("replays", fmt.Sprintf("%d (last by %s)", d.Replays, d.ReplayedBy))
	}
	if d.LastError != "" {
		row("last error", d.LastError)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "#\tAT\tDURATION\tOUTCOME\tSTATUS\tERROR")
	for i, a := range d.AttemptLog {
		code := "-"
		if a.StatusCode != 0 {
			code = fmt.Sprint(a.StatusCode)
		}
		fmt.Fprintf(tw, "%d\t%s\t%.0fms\t%s\t%s\t%s\n", i+1, a.At.Local().Format("2006-01-02 15:04:05"), a.DurationMS, a.Outcome, code, cut(a.Error, 80))
	}
	return tw.Flush()
}

func replayIDs(ctx context.Context, c *adminClient, ids []string, asJSON bool, w io.Writer) error {
	var failed error
	for _, id := range ids {
		var d delivery
		if err := c.Do(ctx, http.MethodPost, "/api/deliveries/"+url.PathEscape(id)+"/replay", struct{}{}, &d); err != nil {
			fmt.Fprintf(w, "%s: %v\n", id, err)
			failed = errors.New("some replays failed")
			continue
		}
		if asJSON {
			json.NewEncoder(w).Encode(d)
		} else {
			fmt.Fprintf(w, "%s: replayed (%s, due %s)\n", d.ID, d.Status, d.NextAttemptAt.Local().Format(time.RFC3339))
		}
	}
	return failed
}

// errNotConfirmed ends a replay that was not confirmed.
var errNotConfirmed = errors.New("not confirmed: nothing replayed")

// replayFilter counts what f matches (a dry run of the same call), asks
// for confirmation above confirmAbove unless yes, and replays at most the
// number confirmed: deliveries that match only after the count are left
// for another run.
func replayFilter(ctx context.Context, c *adminClient, f filters, dry, yes, asJSON bool, stdin io.Reader, stdout, stderr io.Writer) error {
	if f.status == "" {
		f.status = "dead"
	}
	body := map[string]any{"status": f.status, "sink": f.sink, "rule": f.rule, "source": f.source, "since": f.since, "until": f.until, "dry_run": true}
	var res struct {
		Matched  int `json:"matched"`
		Replayed int `json:"replayed"`
		Busy     int `json:"busy"`
	}
	if err := c.Do(ctx, http.MethodPost, "/api/deliveries/replay", body, &res); err != nil {
		return err
	}
	switch {
	case dry && asJSON:
		return json.NewEncoder(stdout).Encode(res)
	case dry:
		_, err := fmt.Fprintf(stdout, "%d deliveries would be replayed\n", res.Matched)
		return err
	case res.Matched == 0:
		if asJSON {
			return json.NewEncoder(stdout).Encode(res)
		}
		_, err := fmt.Fprintln(stdout, "no delivery matches: nothing replayed")
		return err
	case res.Matched > confirmAbove && !yes:
		if err := confirm(stdin, stderr, fmt.Sprintf("Replay %d %s deliveries of %s? [y/N] ", res.Matched, f.status, f.sinkText())); err != nil {
			return err
		}
	}
	body["dry_run"] = false
	body["max"] = res.Matched
	if err := c.Do(ctx, http.MethodPost, "/api/deliveries/replay", body, &res); err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	_, err := fmt.Fprintf(stdout, "%d matched, %d replayed, %d in flight (left alone)\n", res.Matched, res.Replayed, res.Busy)
	return err
}

// sinkText names the sink a filter replays to, for the question.
func (f filters) sinkText() string {
	if f.sink == "" {
		return "every sink"
	}
	return "sink " + f.sink
}

// confirm asks question on w and reads the answer from r: only y or yes
// goes on. No answer (standard input closed, or not a terminal and
// empty, as under cron) refuses: a script means it with --yes.
func confirm(r io.Reader, w io.Writer, question string) error {
	fmt.Fprint(w, question)
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(w)
		return fmt.Errorf("%w (no answer on standard input; --yes replays without asking)", errNotConfirmed)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return errNotConfirmed
}

func cut(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
