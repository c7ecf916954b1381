package rules

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hookroute/hookroute/internal/testkit"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/source"
)

func TestSalesIQDecodeEnvelope(t *testing.T) {
	in := &router.Incoming{Source: "siq", Body: testkit.ReadEvent(t, "conversation-rated-sad.json"), ReceivedAt: time.Unix(1, 0), Headers: map[string]string{}}
	v, err := source.SalesIQ{}.Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	ev := v.Env.(*router.SalesIQEvent)
	if v.ID != "conversation.rated:40526000001808033:1567065865617" || v.Name != "conversation.rated" {
		t.Errorf("id, name = %q, %q", v.ID, v.Name)
	}
	// app_id exceeds 2^53: a float64 would read 40526000000002040 as ...2048.
	if ev.AppID != "40526000000002040" {
		t.Errorf("app_id = %q, want exact 40526000000002040", ev.AppID)
	}
	if ev.Chat.Rating != "sad" || ev.Chat.RatingRaw != 1 || ev.Visitor.Name != "Tricia" || ev.Operator.Name != "Patricia" || ev.Attempt != 1 {
		t.Errorf("view = %+v", ev)
	}
	chat := v.Data()["chat"].(map[string]any)
	if chat["rating"] != "sad" || v.Data()["visitor"].(map[string]any)["name"] != "Tricia" {
		t.Errorf("template view = %v", v.Data())
	}
	out, err := json.Marshal(v.Data())
	if err != nil || !strings.Contains(string(out), `"app_id":"40526000000002040"`) || !strings.Contains(string(out), `40526000000002040`) {
		t.Errorf("view JSON %s, %v", out, err)
	}
}

func TestSalesIQRetryIsSameEvent(t *testing.T) {
	a, err := source.SalesIQ{}.Decode(&router.Incoming{Body: testkit.ReadEvent(t, "conversation-rated-sad.json")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := source.SalesIQ{}.Decode(&router.Incoming{Body: testkit.ReadEvent(t, "conversation-rated-sad-attempt2.json")})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID {
		t.Fatalf("attempt 2 id %q differs from attempt 1 id %q", b.ID, a.ID)
	}
}

func TestSalesIQDecodeBareEntity(t *testing.T) {
	body := testkit.ReadEvent(t, "workflow-bare-rated.json")
	if _, err := (source.SalesIQ{}).Decode(&router.Incoming{Body: body}); err == nil {
		t.Fatal("bare entity without event: setting decoded; want an error (quarantine)")
	}
	v, err := source.SalesIQ{BareEvent: "conversation.rated"}.Decode(&router.Incoming{Body: body})
	if err != nil {
		t.Fatal(err)
	}
	ev := v.Env.(*router.SalesIQEvent)
	if ev.Event != "conversation.rated" || ev.Chat.Rating != "sad" || ev.Chat.RatingRaw != "Sad" || ev.Operator.Type != "bot" {
		t.Fatalf("view = %+v", ev)
	}
	if !strings.HasPrefix(v.ID, "conversation.rated:40526000001808200:") {
		t.Fatalf("id = %q", v.ID)
	}
}

func TestNormalizeRating(t *testing.T) {
	cases := map[any]string{1: "sad", 2: "neutral", 3: "happy", "SAD": "sad", " Happy ": "happy", "neutral": "neutral", "3": "happy", 4: "", nil: "", "great": ""}
	for in, want := range cases {
		if got := source.NormalizeRating(in); got != want {
			t.Errorf("NormalizeRating(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestHeaderMapDropsCredentials(t *testing.T) {
	h := map[string][]string{"Authorization": {"Bearer x"}, "Cookie": {"c"}, "X-Siqsignature": {"sig"},
		"X-Api-Key": {"k"}, "X-Auth-Token": {"t"}, "Proxy-Authorization": {"p"}, "X-Tenant-Secret": {"s"}}
	m := (&Runtime{}).HeaderMap(h)
	if m["x-siqsignature"] != "sig" || m["x-tenant-secret"] != "s" || len(m) != 2 {
		t.Fatalf("HeaderMap = %v, want x-siqsignature and x-tenant-secret only", m)
	}
	m = (&Runtime{dropHeaders: map[string]bool{"x-tenant-secret": true}}).HeaderMap(h)
	if m["x-siqsignature"] != "sig" || len(m) != 1 {
		t.Fatalf("HeaderMap with x-tenant-secret dropped = %v, want x-siqsignature only", m)
	}
}

func TestTemplateEscapesInterpolatedValues(t *testing.T) {
	esc := func(s string) string { return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s) }
	ft, err := compileTemplate("text", `<b>{{ .x }}</b> {{ .x | raw }} {{ .missing }}|{{ if .x }}{{ .x }}{{ end }}`, esc, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ft.Render(map[string]any{"x": "a<b>&"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `<b>a&lt;b&gt;&amp;</b> a<b>& |a&lt;b&gt;&amp;`; got != want {
		t.Fatalf("render = %q, want %q", got, want)
	}
}

func TestTemplateFieldCheck(t *testing.T) {
	schema := reflect.TypeOf(router.SalesIQEvent{})
	ok := []string{`{{ .chat.rating }}`, `{{ .payload.anything.deep }}`, `{{ range .chat.participants }}{{ .whatever }}{{ end }}`, `{{ with .visitor }}{{ .nope }}{{ end }}`, `{{ $.chat.id }}`}
	for _, src := range ok {
		if _, err := compileTemplate("t", src, nil, schema); err != nil {
			t.Errorf("compileTemplate(%q) = %v", src, err)
		}
	}
	bad := []string{`{{ .chat.ratng }}`, `{{ .visiter.name }}`, `{{ if .operator.nmae }}x{{ end }}`, `{{ range .chat.participants }}{{ $.chat.nope }}{{ end }}`}
	for _, src := range bad {
		if _, err := compileTemplate("t", src, nil, schema); err == nil {
			t.Errorf("compileTemplate(%q) succeeded, want a field error", src)
		}
	}
}

func TestTemplateOutputBounded(t *testing.T) {
	ft, err := compileTemplate("t", `{{ range .xs }}{{ . }}{{ end }}`, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	xs := make([]any, maxRendered)
	for i := range xs {
		xs[i] = "ab"
	}
	if _, err := ft.Render(map[string]any{"xs": xs}); err == nil {
		t.Fatal("render of a huge range succeeded, want a size error")
	}
}

// TestSalesIQDataMatchesViewMap: the hand-written template map of a SalesIQ
// view has exactly the names and values that reflection over the expr tags
// gives, so rules and templates keep reading the same names.
func TestSalesIQDataMatchesViewMap(t *testing.T) {
	entries, err := os.ReadDir("../source/testdata/events")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		in := &router.Incoming{Source: "siq", Body: testkit.ReadEvent(t, e.Name()), ReceivedAt: time.Unix(1, 0), Headers: map[string]string{"a": "b"}}
		v, err := source.SalesIQ{BareEvent: "conversation.rated"}.Decode(in)
		if err != nil {
			continue // not a SalesIQ body
		}
		n++
		ev := v.Env.(*router.SalesIQEvent)
		got, _ := json.Marshal(ev.Map())
		want, _ := json.Marshal(source.ViewMap(ev))
		if string(got) != string(want) {
			t.Errorf("%s: Map() and viewMap differ:\n got %s\nwant %s", e.Name(), got, want)
		}
	}
	// Every field set, so that a field Map() forgets shows.
	full := &router.SalesIQEvent{}
	fillStrings(reflect.ValueOf(full).Elem())
	got, _ := json.Marshal(full.Map())
	want, _ := json.Marshal(source.ViewMap(full))
	if string(got) != string(want) {
		t.Errorf("all fields set: Map() and viewMap differ:\n got %s\nwant %s", got, want)
	}
	if n == 0 {
		t.Fatal("no SalesIQ sample decoded")
	}
}

// fillStrings sets every string field of a struct, recursively, to its
// field name.
func fillStrings(v reflect.Value) {
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name)
		case reflect.Int:
			f.SetInt(int64(i + 1))
		case reflect.Struct:
			if f.Type() != reflect.TypeOf(time.Time{}) {
				fillStrings(f)
			}
		}
	}
}
