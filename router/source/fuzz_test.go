package source

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/hookroute/hookroute/router"
)

// FuzzSalesIQDecode feeds arbitrary bodies to the SalesIQ adapter: it must
// never panic, and what it accepts must have an id and a view that
// marshals as JSON (the http sink sends it).
func FuzzSalesIQDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/events/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"event":"x","entity":{},"entity_id":1,"event_time":2}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"entity":"not an object"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, a := range []SalesIQ{{}, {BareEvent: "conversation.rated"}} {
			v, err := a.Decode(&router.Incoming{Source: "s", Body: body, Headers: map[string]string{}})
			if err != nil {
				continue
			}
			if v.ID == "" || v.Name == "" {
				t.Fatalf("accepted body without id or name: %q", body)
			}
			if _, err := json.Marshal(v.Data()); err != nil {
				t.Fatalf("view does not marshal: %v", err)
			}
			if r := v.Env.(*router.SalesIQEvent).Chat.Rating; r != "" && r != "sad" && r != "neutral" && r != "happy" {
				t.Fatalf("rating %q outside the normalised set", r)
			}
		}
	})
}
