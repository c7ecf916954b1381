package sinks

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/rules"
)

// stdEncodeEvent is what encodeEvent replaced: the reference it must match.
func stdEncodeEvent(t testing.TB, ev map[string]any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// TestEncodeEventMatchesEncodingJSON: every kind of value an event view
// holds, with the strings most likely to be escaped differently.
func TestEncodeEventMatchesEncodingJSON(t *testing.T) {
	ev := map[string]any{
		"source": "salesiq", "event": "conversation.rated", "id": "conversation.rated:1:2",
		"received_at": time.Date(2026, 11, 27, 16, 5, 7, 123456789, time.FixedZone("x", 5*3600+1800)),
		"headers":     map[string]string{"content-type": "application/json", "x-siqsignature": "a+b/c=="},
		"payload": map[string]any{
			"app_id": "2782000000002013", "attempt": 2, "big": "123456789012345678901234567890",
			"float": 3.25, "tiny": 1e-7, "huge": 1e21, "neg": -0.5, "maxint": math.MaxInt64,
			"null": nil, "yes": true, "no": false, "empty": map[string]any{}, "list": []any{},
			"entity": map[string]any{
				"feedback":     "<b>bad</b> & \"worse\" \\ \n\t\r\x00\x1f \u2028\u2029 é 😀 \xff\xfe",
				"participants": []any{map[string]any{"id": 1, "name": "Zoë"}, "x", 2.5, nil},
			},
		},
		"chat":     map[string]any{"rating": "sad", "rating_raw": 1, "supervisors": []any(nil), "chat_status": map[string]any(nil)},
		"visitor":  map[string]any{"name": "", "email_id": "v@example.com"},
		"z-order":  map[string]any{"b": 1, "a": 2, "A": 3, "_": 4, "ä": 5, "": 6},
		"typed":    []string{"a", "b"},
		"typedmap": map[string]int{"b": 2, "a": 1},
	}
	got, err := encodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	if want := stdEncodeEvent(t, ev); !bytes.Equal(got, want) {
		t.Errorf("encodeEvent differs from encoding/json:\n got %s\nwant %s", got, want)
	}
}

// FuzzEncodeEvent compares encodeEvent with encoding/json on arbitrary keys,
// strings and numbers.
func FuzzEncodeEvent(f *testing.F) {
	f.Add("feedback", "<script>&</script>", int64(1), 0.1, true)
	f.Add("\u2028", "\xff\x00\"\\", int64(-1<<63), 1e-9, false)
	f.Add("", "😀 é", int64(1<<53+1), 1e300, true)
	f.Fuzz(func(t *testing.T, key, s string, i int64, fl float64, b bool) {
		if math.IsNaN(fl) || math.IsInf(fl, 0) {
			return // not JSON: both refuse, differently worded
		}
		ev := map[string]any{
			key: s, "s": s, "i": int(i), "f": fl, "b": b,
			"nested": map[string]any{key: []any{s, int(i), fl, nil, map[string]any{s: key}}},
			"h":      map[string]string{key: s},
		}
		got, err := encodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		if want := stdEncodeEvent(t, ev); !bytes.Equal(got, want) {
			t.Errorf("encodeEvent differs from encoding/json:\n got %q\nwant %q", got, want)
		}
	})
}

// exampleView decodes the example event file (under examples/events) into
// the view the SalesIQ source builds from it.
func exampleView(tb testing.TB, file string) *router.View {
	tb.Helper()
	const conf = `sources:
  - name: salesiq
    type: salesiq
    event: conversation.rated
    public_keys: [{file: ../examples/keys/demo-salesiq-public.pem}]
sinks:
  - {name: console, type: log}
rules:
  - {name: all, when: "true", to: [{sink: console}]}
`
	rt, err := rules.Load("rules.yaml", []byte(conf), NewRegistry(), func(string) (string, bool) { return "", false })
	if err != nil {
		tb.Fatal(err)
	}
	src, _ := rt.Source("salesiq")
	body, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	view, err := src.Decode(&router.Incoming{Source: "salesiq", Body: body,
		Headers:    map[string]string{"content-type": "application/json", "x-siqsignature": "c2ln"},
		ReceivedAt: time.Date(2026, 11, 27, 23, 59, 1, 2, time.UTC)})
	if err != nil {
		tb.Fatalf("%s: %v", file, err)
	}
	return view
}

// TestEncodeEventSalesIQViews: the views the SalesIQ source builds from
// the example events (every kind of value the decoder and the adapter
// put there) encode as encoding/json encodes them.
func TestEncodeEventSalesIQViews(t *testing.T) {
	files, err := filepath.Glob("../examples/events/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("example events: %v (%d files)", err, len(files))
	}
	for _, f := range files {
		ev := exampleView(t, f).Data()
		got, err := encodeEvent(ev)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if want := stdEncodeEvent(t, ev); !bytes.Equal(got, want) {
			t.Errorf("%s: encodeEvent differs from encoding/json:\n got %s\nwant %s", f, got, want)
		}
	}
}

// BenchmarkEncodeEvent encodes the view of the example sad rating, as the
// http sink does for its default body.
func BenchmarkEncodeEvent(b *testing.B) {
	ev := exampleView(b, "../examples/events/conversation-rated-sad.json").Data()
	b.Run("encodeEvent", func(b *testing.B) {
		for b.Loop() {
			if _, err := encodeEvent(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			stdEncodeEvent(b, ev)
		}
	})
}
