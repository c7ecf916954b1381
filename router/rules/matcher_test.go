package rules

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
)

func TestCompileMatcher(t *testing.T) {
	rt, _ := mustLoad(t, testkit.BaseConfig, nil)
	m, err := rt.CompileMatcher(`sink == "out" && chat.rating == "sad"`)
	if err != nil {
		t.Fatal(err)
	}
	siq, _ := rt.Source("siq")
	view, err := siq.Decode(&router.Incoming{Source: "siq", Body: testkit.ReadEvent(t, "conversation-rated-sad.json"), ReceivedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for sink, want := range map[string]bool{"out": true, "other": false} {
		if got, err := m.Match("siq", view, "sad", sink); err != nil || got != want {
			t.Errorf("Match(sink %s) = %v, %v; want %v", sink, got, err, want)
		}
	}
	// The generic source compiles the matcher loosely and matches on its
	// own names.
	gen, _ := rt.Source("gen")
	gview, err := gen.Decode(&router.Incoming{Source: "gen", Body: []byte(`{"chat": {"rating": "sad"}}`), ReceivedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m.Match("gen", gview, "r", "out"); err != nil || !got {
		t.Errorf("Match on the generic source = %v, %v; want true", got, err)
	}
	if got, _ := m.Match("nope", gview, "r", "out"); got {
		t.Error("a source the matcher was not compiled for matched")
	}
}

func TestCompileMatcherErrors(t *testing.T) {
	src := strings.Replace(testkit.BaseConfig, "  - name: gen\n    type: none\n", "", 1)
	src = strings.Replace(src, "    source: siq\n", "", 1)
	rt, _ := mustLoad(t, src, nil)
	for expr, want := range map[string]string{
		`chat.ratng == "sad"`: "line 1, column 6: type router.SalesIQChat has no field ratng",
		`sink ==`:             "line 1",
		`chat.rating`:         "expected bool",
	} {
		_, err := rt.CompileMatcher(expr)
		var me *MatcherError
		if !errors.As(err, &me) || !strings.Contains(err.Error(), want) {
			t.Errorf("CompileMatcher(%s) = %v; want a MatcherError with %q", expr, err, want)
		}
	}
}
