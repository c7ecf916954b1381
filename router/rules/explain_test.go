package rules

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/source"
)

// salesiqView decodes a test event as a salesiq source does.
func salesiqView(t *testing.T, name string) *router.View {
	t.Helper()
	v, err := source.SalesIQ{}.Decode(&router.Incoming{Source: "siq", Body: testkit.ReadEvent(t, name), ReceivedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func genericView(t *testing.T, body string) *router.View {
	t.Helper()
	v, err := source.Generic{}.Decode(&router.Incoming{Source: "gen", Body: []byte(body), ReceivedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// explain compiles and runs when on view like a rule, then explains it.
func explain(t *testing.T, when string, env any, view *router.View) []string {
	t.Helper()
	p, err := compileWhen(when, env)
	if err != nil {
		t.Fatalf("compile %s: %v", when, err)
	}
	out, err := expr.Run(p, view.Env)
	return ExplainWhen(when, env, view.Env, out, err)
}

func TestExplainWhen(t *testing.T) {
	happy := salesiqView(t, "conversation-rated-happy.json")
	gen := genericView(t, `{"kind": "order.created", "total": 120, "tags": ["vip", "eu"], "user": null}`)
	cases := []struct {
		when string
		env  any
		view *router.View
		want []string
	}{
		{`chat.rating == "sad"`, router.SalesIQEvent{}, happy, []string{
			`chat.rating == "sad" → "happy" == "sad" → false`,
		}},
		{`chat.rating != "happy"`, router.SalesIQEvent{}, happy, []string{
			`chat.rating != "happy" → "happy" != "happy" → false`,
		}},
		{`attempt < 1`, router.SalesIQEvent{}, happy, []string{
			`attempt < 1 → 1 < 1 → false`,
		}},
		{`chat.rating in ["sad", "neutral"]`, router.SalesIQEvent{}, happy, []string{
			`chat.rating in ["sad", "neutral"] → "happy" in ["sad","neutral"] → false`,
		}},
		{`event == "conversation.rated" && chat.rating == "sad"`, router.SalesIQEvent{}, happy, []string{
			`event == "conversation.rated" → "conversation.rated" == "conversation.rated" → true`,
			`chat.rating == "sad" → "happy" == "sad" → false`,
			`event == "conversation.rated" && chat.rating == "sad" → false: the left side is true, so the right side (false) decides`,
		}},
		{`event == "conversation.missed" && chat.rating == "sad"`, router.SalesIQEvent{}, happy, []string{
			`event == "conversation.missed" → "conversation.rated" == "conversation.missed" → false`,
			`event == "conversation.missed" && chat.rating == "sad" → false: the left side is false, so the right side is not evaluated`,
		}},
		{`chat.rating == "sad" || chat.rating == "neutral"`, router.SalesIQEvent{}, happy, []string{
			`chat.rating == "sad" → "happy" == "sad" → false`,
			`chat.rating == "neutral" → "happy" == "neutral" → false`,
			`chat.rating == "sad" || chat.rating == "neutral" → false: the left side is false, so the right side (false) decides`,
		}},
		{`chat.rating == "happy" or chat.feedback == ""`, router.SalesIQEvent{}, happy, []string{
			`chat.rating == "happy" → "happy" == "happy" → true`,
			`chat.rating == "happy" or chat.feedback == "" → true: the left side is true, so the right side is not evaluated`,
		}},
		{`!(chat.feedback startsWith "Quick")`, router.SalesIQEvent{}, happy, []string{
			`chat.feedback startsWith "Quick" → "Quick and friendly, thanks!" startsWith "Quick" → true`,
			`!(chat.feedback startsWith "Quick") → false`,
		}},
		{`chat.rating not in ["happy"]`, router.SalesIQEvent{}, happy, []string{
			`chat.rating in ["happy"] → "happy" in ["happy"] → true`,
			`not (chat.rating in ["happy"]) → false`,
		}},
		{`len(chat.feedback) > 100`, router.SalesIQEvent{}, happy, []string{
			`len(chat.feedback) > 100 → 27 > 100 → false`,
		}},
		{`hasPrefix(chat.question, "refund")`, router.SalesIQEvent{}, happy, []string{
			`hasPrefix(chat.question, "refund") → hasPrefix("", "refund") → false`,
		}},
		{`kind startsWith "order." && total >= 100`, source.GenericEnv(), gen, []string{
			`kind startsWith "order." → "order.created" startsWith "order." → true`,
			`total >= 100 → 120 >= 100 → true`,
			`kind startsWith "order." && total >= 100 → true: the left side is true, so the right side (true) decides`,
		}},
		{`payload?.customer?.name == "Tricia"`, source.GenericEnv(), gen, []string{
			`payload?.customer?.name == "Tricia" → nil == "Tricia" → false`,
		}},
		{`"vip" in tags`, source.GenericEnv(), gen, []string{
			`"vip" in tags → "vip" in ["vip","eu"] → true`,
		}},
		{`any(tags, # startsWith "v")`, source.GenericEnv(), gen, []string{
			`any(tags, # startsWith "v") → true`,
		}},
		{`user.name == "x"`, source.GenericEnv(), gen, []string{
			`user.name == "x" → (error: cannot fetch name from <nil>) == "x" → error: cannot fetch name from <nil>`,
		}},
		{`total > 100 ? kind == "order.created" : false`, source.GenericEnv(), gen, []string{
			`total > 100 → 120 > 100 → true`,
			`kind == "order.created" → "order.created" == "order.created" → true`,
			`total > 100 ? kind == "order.created" : false → true`,
		}},
	}
	for _, c := range cases {
		t.Run(c.when, func(t *testing.T) {
			got := explain(t, c.when, c.env, c.view)
			if !slices.Equal(got, c.want) {
				t.Errorf("explanation:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(c.want, "\n      "))
			}
		})
	}
}

func TestExplainFallsBackToTheResult(t *testing.T) {
	// Not parseable by itself: the overall result is all there is to say.
	got := ExplainWhen("chat.rating ==", router.SalesIQEvent{}, &router.SalesIQEvent{}, false, nil)
	if want := []string{"chat.rating == → false"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// A sub-expression that does not compile on its own (the env given
	// here lacks chat): fall back, not half an explanation.
	got = ExplainWhen(`chat.rating == "sad" && true`, struct{}{}, &router.SalesIQEvent{}, nil, fmt.Errorf("boom"))
	if want := []string{`chat.rating == "sad" && true → error: boom`}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestExplainIsBounded(t *testing.T) {
	when := strings.Repeat(`chat.rating == "sad" || `, 200) + "false"
	view := salesiqView(t, "conversation-rated-happy.json")
	got := explain(t, when, router.SalesIQEvent{}, view)
	if len(got) > maxExplainLines+1 || !strings.Contains(got[len(got)-1], "cut short") {
		t.Errorf("%d lines, last %q", len(got), got[len(got)-1])
	}
}
