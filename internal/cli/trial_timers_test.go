package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hookroute/hookroute/router/trial"
)

// TestPrintTrialTimers: a waiting route says when it fires and what
// cancels it; the timers an event would cancel are listed, also when it
// matches no rule, with or without a store to ask.
func TestPrintTrialTimers(t *testing.T) {
	const key = `["missed-unanswered","7"]`
	res := &trial.Result{Source: "siq", EventName: "conversation.attender.updated", EventID: "x",
		Rules: []trial.RuleOutcome{{Name: "missed-unanswered", Explanation: []string{"false"}}},
		Cancels: []trial.TimerCancel{
			{Rule: "missed-unanswered", Key: key, Same: `entity_id = "7"`, Deliveries: []string{"d1", "d2"}},
			{Rule: "missed-other", Key: key, Same: `entity_id = "7"`, Deliveries: []string{}},
			{Rule: "missed-offline", Key: key, Same: `entity_id = "7"`, Note: "no store was asked: a running router would cancel every delivery waiting under timer key " + key},
			{Rule: "missed-broken", Error: "the event matches unless.when, but unless.same fails on it (boom): it cancels nothing"},
		}}
	var b bytes.Buffer
	printTrial(&b, res, false)
	want := `timers this event would cancel (a trial cancels nothing):
  missed-unanswered, same entity_id = "7"
      would cancel 2 waiting: d1, d2
  missed-other, same entity_id = "7"
      no delivery waits under timer key ["missed-unanswered","7"]
  missed-offline, same entity_id = "7"
      no store was asked: a running router would cancel every delivery waiting under timer key ["missed-unanswered","7"]
  missed-broken
      error: the event matches unless.when, but unless.same fails on it (boom): it cancels nothing

routes: none (no rule matched)
`
	if out := b.String(); !strings.HasSuffix(out, want) {
		t.Errorf("output:\n%s\nwant it to end with\n%s", out, want)
	}

	res = &trial.Result{Source: "siq", EventName: "conversation.missed", Cancels: []trial.TimerCancel{},
		Routes: []trial.RouteOutcome{{Rule: "missed-unanswered", Sink: "slack", Kind: "fake", Outcome: "waiting", Why: `fires at +5m0s (2026-12-07T10:05:00Z) unless a later event matches unless.when with the same entity_id = "7"`}}}
	b.Reset()
	printTrial(&b, res, false)
	if out := b.String(); strings.Contains(out, "would cancel") || !strings.Contains(out, `      outcome: waiting: fires at +5m0s (2026-12-07T10:05:00Z) unless a later event matches unless.when with the same entity_id = "7"`) {
		t.Errorf("output:\n%s", out)
	}
}
