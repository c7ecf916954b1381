package source

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/hookroute/hookroute/bench/loadgen"
	"github.com/hookroute/hookroute/router"
)

// viewJSONSlow is what an http sink sent before eventJSON, and still sends
// when eventJSON declines: the decoded view's Data, encoded by goccy/go-json
// as the sink encodes it (HTML escaping off, no trailing newline).
func viewJSONSlow(a SalesIQ, in *router.Incoming) ([]byte, error) {
	v, err := a.Decode(in)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := gojson.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v.Data()); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// checkEventJSON holds eventJSON to the long way's bytes, and to
// encoding/json's, which the long way matches; taken reports whether
// eventJSON took the body on.
func checkEventJSON(t *testing.T, a SalesIQ, in *router.Incoming) (taken bool) {
	t.Helper()
	fast, ok := a.EventJSON(in)
	slow, err := viewJSONSlow(a, in)
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("eventJSON took a body that decode refuses (%v):\nbody %q", err, in.Body)
	}
	if !bytes.Equal(fast, slow) {
		t.Fatalf("eventJSON differs from decode+encode\nbody %q\nfast %s\nslow %s", in.Body, fast, slow)
	}
	v, _ := a.Decode(in)
	var std bytes.Buffer
	enc := json.NewEncoder(&std)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v.Data()); err != nil {
		t.Fatal(err)
	}
	if got := bytes.TrimSuffix(std.Bytes(), []byte("\n")); !bytes.Equal(fast, got) {
		t.Fatalf("eventJSON differs from encoding/json\nbody %q\nfast %s\nstd  %s", in.Body, fast, got)
	}
	return true
}

func eventJSONIncoming(body []byte) *router.Incoming {
	return &router.Incoming{Source: "salesiq", Body: body,
		Headers: map[string]string{"content-type": "application/json", "x-siqsignature": "c2ln", "x-note": "a\"b<c>&\u2028\x01\xff\u2029"},
		// Nanoseconds and a zone with an offset: written as RFC 3339.
		ReceivedAt: time.Date(2026, 11, 28, 1, 2, 3, 4500, time.FixedZone("x", 5*3600+1800))}
}

// eventJSONCases are bodies eventJSON must take on and write exactly: the
// corners of strings, numbers and keys, and of the SalesIQ view's fields.
var eventJSONCases = []string{
	`{"event":"conversation.rated","entity_type":"conversation","entity_id":"12","event_time":"1700000000000","org_id":6,"app_id":123456789012345678901234,"attempt":2,"version":"1.0","entity":{"id":"12","rating":1}}`,
	`{"event":"e","entity_id":"1","event_time":"2","entity":{"id":1.5e300,"rating":"Sad ","visitor":{"id":7,"name":"Zoë \"Z\" \\ <b>&amp;</b>","email_id":null,"phone":true},"owner":{"type":"operator","id":-0,"name":"a\u2028b\u2029c"}}}`,
	`{"event":"e","entity_id":"1","event_time":"2","entity":{"rating":3.0,"supervisors":[1,"2",[3],{"b":1,"a":2}],"participants":{},"chat_status":[]},"attempt":1.5}`,
	`{"event":"e","entity_id":"1","event_time":"2","entity":{"rating":"2","chat_status":{"state":"ended","z":{"y":[],"x":{}}},"participants":[]},"attempt":"3"}`,
	`{"b":1,"a":2,"a":3,"event":"x","event":"e","entity_id":"1","event_time":"2","entity":{"c":1,"c":{"d":2}},"entity":{"id":"9","id":"10"}}`,
	`{"event":"e","entity_id":"1","event_time":"2","entity":{"k\u0000ey":"\ud83d\ude00","\u00e9":"\ud800","é":"x","\/":"\b\f\n\r\t\u001f","ascii\u0041":1e-7,"f":1e21,"g":1E+2,"h":-0.0,"i":123456789012345678,"j":1234567890123456789,"k":-9223372036854775808,"l":9223372036854775808,"m":1e400,"n":0.1,"o":1e20,"p":-1.5e-6,"q":2.5e-7,"r":-1e-400}}`,
	"{\"event\":\"e\",\"entity_id\":\"1\",\"event_time\":\"2\",\"entity\":{\"bad\":\"\xff\xfe\",\"\xc3\x28\":\"k\",\"sep\":\"\xe2\x80\xa8\",\"ok\":\"\xe2\x80\xa7\"}}",
	" \n\t{ \"event\" : \"e\" , \"entity_id\" : 1 , \"event_time\" : 2 , \"entity\" : { \"rating\" : null , \"owner\" : [ ] , \"visitor\" : \"v\" } } \r\n",
	`{"event":"e","entity_id":"1","event_time":"2","entity":{},"payload":{"entity":{"nested":true}}}`,
}

// bareEventJSONCases are bodies without an envelope, for a source with an
// event: name.
var bareEventJSONCases = []string{
	`{"id":"42","rating":"happy","visitor":{"name":"V"},"entity":"not an object"}`,
	`{"id":42,"question":"why?"}`,
	`{}`,
}

func TestEventJSONMatchesDecodeAndEncode(t *testing.T) {
	for _, keys := range [][]string{envelopeKeys, entityKeys, salesIQPersonKeys} {
		if !slices.IsSorted(keys) {
			t.Fatalf("pick needs sorted keys: %q", keys)
		}
	}
	env := SalesIQ{}
	bare := SalesIQ{BareEvent: "conversation.rated"}
	for _, c := range eventJSONCases {
		if !checkEventJSON(t, env, eventJSONIncoming([]byte(c))) {
			t.Errorf("eventJSON declined %q", c)
		}
	}
	for _, c := range bareEventJSONCases {
		if !checkEventJSON(t, bare, eventJSONIncoming([]byte(c))) {
			t.Errorf("eventJSON declined bare %q", c)
		}
	}
	files, _ := filepath.Glob("testdata/events/*.json")
	if len(files) == 0 {
		t.Fatal("no example events")
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !checkEventJSON(t, bare, eventJSONIncoming(body)) {
			t.Errorf("eventJSON declined %s", f)
		}
	}
	for i := range 50 {
		if !checkEventJSON(t, env, eventJSONIncoming(loadgen.Body(int64(i), i))) {
			t.Errorf("eventJSON declined benchmark body %d", i)
		}
	}
	// Nil headers are written as null, as a nil map is.
	in := eventJSONIncoming([]byte(eventJSONCases[0]))
	in.Headers = nil
	if !checkEventJSON(t, env, in) {
		t.Error("eventJSON declined nil headers")
	}
}

// TestEventJSONDeclines: what eventJSON leaves to the long way, which then
// either refuses it too or writes it.
func TestEventJSONDeclines(t *testing.T) {
	deep := `{"event":"e","entity_id":"1","event_time":"2","entity":{"d":` + string(bytes.Repeat([]byte("["), 100)) + string(bytes.Repeat([]byte("]"), 100)) + `}}`
	for _, c := range []struct {
		body      string
		decodeErr bool // the long way refuses it too
	}{
		{`[1]`, true},
		{`{"event":"e","entity":{}}`, true}, // no entity_id or event_time
		{`{"id":"1"}`, true},                // bare, and the source names no event
		{`{"event":"e","entity_id":"1","event_time":"2","entity":{}} x`, true},
		{`{"event":"e","entity_id":"1","event_time":"2","entity":{"a":"\x"}}`, true},
		{`{"event":"e","entity_id":"1","event_time":"2","entity":{"a":"\x","a":1}}`, true}, // hidden by a duplicate, still refused
		{`{"event":"e","entity_id":"1","event_time":"2","entity":{"a":01}}`, true},
		{`{"event":{"o":1},"entity_id":"1","event_time":"2","entity":{}}`, true}, // an id part that is an object: quarantined
		{`{"event":"e","entity_id":[1],"event_time":"2","entity":{}}`, true},
		{`{"event":"e","entity_id":"1","event_time":"2","entity":{"id":[1]}}`, false},
		{deep, false},
	} {
		in := eventJSONIncoming([]byte(c.body))
		if _, ok := (SalesIQ{}).EventJSON(in); ok {
			t.Errorf("eventJSON took %q", c.body)
		}
		if _, err := viewJSONSlow(SalesIQ{}, in); (err != nil) != c.decodeErr {
			t.Errorf("decode+encode of %q: err %v, want an error: %v", c.body, err, c.decodeErr)
		}
	}
}

// FuzzEventJSON: on any body, eventJSON writes what decoding the view and
// encoding it writes, or declines. Each input is also tried as the entity
// of an envelope, so that most runs reach the writing.
func FuzzEventJSON(f *testing.F) {
	for _, c := range eventJSONCases {
		f.Add([]byte(c), false)
	}
	for _, c := range bareEventJSONCases {
		f.Add([]byte(c), true)
	}
	for _, c := range []string{`{}`, `[]`, `"x"`, `1e999`, `{"a":1,"a":[2]}`, `"\ud800"`, "{\"\xff\":1}"} {
		f.Add([]byte(c), true)
	}
	f.Add(loadgen.Body(1, 1), false)
	f.Fuzz(func(t *testing.T, body []byte, bare bool) {
		a := SalesIQ{}
		if bare {
			a.BareEvent = "b"
		}
		checkEventJSON(t, a, eventJSONIncoming(body))
		wrapped := append([]byte(`{"event":"e","entity_id":"1","event_time":"2","entity":`), body...)
		checkEventJSON(t, a, eventJSONIncoming(append(wrapped, '}')))
	})
}

// BenchmarkSalesIQEventJSON: the http sink's default body for the
// benchmark's SalesIQ body, straight from the body against decoding the
// view and encoding it.
func BenchmarkSalesIQEventJSON(b *testing.B) {
	in := eventJSONIncoming(loadgen.Body(1, 1))
	b.Run("eventJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := (SalesIQ{}).EventJSON(in); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("decode+encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := viewJSONSlow(SalesIQ{}, in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
