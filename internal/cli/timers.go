package cli

// hookroute timers list|cancel: the timers of rules with unless:, whose
// deliveries wait until a later event cancels them or their time comes
// (README: Operating), through a running router's admin API. Like
// silences, they need none of the router's secrets: of the config file,
// only where the admin API listens and the admin tokens.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

const timersUsage = `usage:
  hookroute timers list [--json]
  hookroute timers cancel ID [--json]

A rule with unless: stores its deliveries waiting: they are sent when the
timer runs out (unless.within, or a route's delay:), unless a later event
matching unless.when with the same unless.same values cancels them first.
list shows the waiting timers, earliest due first: the rule, the first
event's same values, the event, when the timer started and when it is due,
and the sinks still waiting. cancel cancels one timer now, as such an event
would have: its waiting deliveries are recorded as cancelled by you (the
token's name), and never sent; steps that already fired are left alone.
list needs a token with the read scope, cancel the replay scope.
` + adminUsage

// timersScope is the token scope each subcommand needs.
var timersScope = map[string]string{"list": "read", "cancel": "replay"}

// timer mirrors the API's timer JSON.
type timer struct {
	ID     string            `json:"id"`
	Rule   string            `json:"rule"`
	Values []json.RawMessage `json:"values"`
	Same   []struct {
		Expr  string          `json:"expr"`
		Value json.RawMessage `json:"value"`
	} `json:"same"`
	Uncancellable bool      `json:"uncancellable"`
	Source        string    `json:"source"`
	EventID       string    `json:"event_id"`
	Event         string    `json:"event"`
	StartedAt     time.Time `json:"started_at"`
	DueAt         time.Time `json:"due_at"`
	Deliveries    []struct {
		ID    string    `json:"id"`
		Sink  string    `json:"sink"`
		DueAt time.Time `json:"due_at"`
	} `json:"deliveries"`
	Cancelled int `json:"cancelled"`
}

// sameText is the timer's same values as one cell: expr=value pairs when
// the API paired them with the rule's expressions, else the values.
func (t *timer) sameText() string {
	if t.Uncancellable {
		return "(none: unless.same failed on the event)"
	}
	var parts []string
	if len(t.Same) > 0 {
		for _, s := range t.Same {
			parts = append(parts, s.Expr+"="+string(s.Value))
		}
	} else {
		for _, v := range t.Values {
			parts = append(parts, string(v))
		}
	}
	return strings.Join(parts, " ")
}

// cmdTimers runs `hookroute timers ARGS`. It returns 0 on success, 1
// when the API refused or could not be reached, 2 for a usage error.
func cmdTimers(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, timersUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	if sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(stdout, timersUsage)
		return 0
	}
	af := newAdminFlags("timers "+sub, timersUsage, stderr)
	var asJSON bool
	af.fs.BoolVar(&asJSON, "json", false, "print the API's JSON")
	// Flags may follow the id (hookroute timers cancel t_… -c rules.yaml).
	rest, err := parseInterleaved(af.fs, args)
	if err != nil {
		return 2
	}
	scope, known := timersScope[sub]
	if !known || len(rest) != map[string]int{"cancel": 1}[sub] {
		fmt.Fprint(stderr, timersUsage)
		return 2
	}
	c, _, code := af.connect("hookroute timers", scope, stderr)
	if code != 0 {
		return code
	}
	switch sub {
	case "list":
		err = listTimers(ctx, c, asJSON, stdout)
	case "cancel":
		err = cancelTimer(ctx, c, rest[0], asJSON, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "hookroute timers:", err)
		return 1
	}
	return 0
}

func listTimers(ctx context.Context, c *adminClient, asJSON bool, w io.Writer) error {
	items, printed, err := listPrinting(ctx, c, "/api/timers", asJSON, w)
	if printed || err != nil {
		return err
	}
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "no timers waiting")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRULE\tSAME\tEVENT\tSTARTED\tDUE\tWAITING")
	for _, raw := range items {
		var t timer
		if err := json.Unmarshal(raw, &t); err != nil {
			return err
		}
		sinks := make([]string, 0, len(t.Deliveries))
		for _, d := range t.Deliveries {
			sinks = append(sinks, d.Sink)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, oneLine(t.Rule, 32), oneLine(t.sameText(), 60),
			oneLine(t.Source+"/"+t.EventID, 60), localTime(t.StartedAt), localTime(t.DueAt), oneLine(strings.Join(sinks, ", "), 40))
	}
	return tw.Flush()
}

func cancelTimer(ctx context.Context, c *adminClient, id string, asJSON bool, w io.Writer) error {
	var t timer
	if printed, err := callPrinting(ctx, c, http.MethodDelete, "/api/timers/"+url.PathEscape(id), nil, asJSON, w, &t); printed || err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "cancelled timer %s of rule %s (%s, event %s/%s): %d waiting deliveries will not be sent (hookroute deliveries list --status cancelled)\n",
		t.ID, oneLine(t.Rule, 200), oneLine(t.sameText(), 200), oneLine(t.Source, 200), oneLine(t.EventID, 200), t.Cancelled)
	return err
}
