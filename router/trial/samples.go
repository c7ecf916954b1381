package trial

// Sample payloads for the trial run (GET /api/trial/samples): a realistic
// one per known event of each source type, embedded, and, once traffic has
// arrived, the most recent real event of each name.

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hookroute/hookroute/internal/redact"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/rules"
	"github.com/hookroute/hookroute/router/source"
)

//go:embed samples/*.json
var sampleFiles embed.FS

// Sample is one sample payload for a source.
type Sample struct {
	Source string `json:"source"`
	Type   string `json:"type"` // the source's type
	Event  string `json:"event"`
	Label  string `json:"label"`
	// Payload is the JSON body as the sender posts it.
	Payload json.RawMessage `json:"payload"`
	// Real is true for an event that arrived (the latest of its name),
	// false for an embedded example.
	Real bool `json:"real"`
}

// genericSample is offered for a source of a kind without samples of its
// own, whose events are whatever its sender posts.
var genericSample = source.Sample{Label: "generic JSON event", File: "generic-event.json"}

// trialSamples are the embedded samples offered for a source of the kind.
func trialSamples(k *source.Kind, sc *config.SourceConfig) []source.Sample {
	if k.Samples == nil {
		return []source.Sample{genericSample}
	}
	return k.Samples(sc)
}

// maxRealNames bounds the real events offered per source; maxScan is how
// many recent events are looked at to find them.
const (
	maxRealNames = 50
	maxScan      = 500
	// maxRealBody skips real events too large to edit by hand in a form.
	maxRealBody = 256 << 10
)

// Samples returns the embedded samples of every configured source
// and, from the store, the most recent real event of each name, with
// credential-like fields blanked out (signatures live in headers, which
// are not included). A store that cannot be read yields the embedded
// samples alone.
func Samples(ctx context.Context, rt *rules.Runtime, events router.History, onError func(error)) []Sample {
	out := []Sample{}
	for _, src := range rt.Sources {
		real, order := realSamples(ctx, events, src, onError)
		known := trialSamples(src.Kind, src.SourceConfig())
		done := map[string]bool{}
		for i, k := range known {
			out = append(out, embedded(src, k))
			// The real one goes after the last sample of its name.
			if last := i+1 == len(known) || known[i+1].Event != k.Event; last && k.Event != "" {
				if s, ok := real[k.Event]; ok && !done[k.Event] {
					out = append(out, s)
					done[k.Event] = true
				}
			}
		}
		for _, name := range order {
			if !done[name] {
				out = append(out, real[name])
			}
		}
	}
	return out
}

func embedded(src *rules.Source, k source.Sample) Sample {
	b, err := sampleFiles.ReadFile("samples/" + k.File)
	if err != nil {
		panic("trial: embedded sample missing: " + k.File) // a build mistake, caught by the tests
	}
	return Sample{Source: src.Name, Type: src.Type, Event: k.Event, Label: k.Label, Payload: compactJSON(b)}
}

func compactJSON(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

// realSamples returns the latest stored event of each name for src, and
// the names newest first.
func realSamples(ctx context.Context, events router.History, src *rules.Source, onError func(error)) (map[string]Sample, []string) {
	out := map[string]Sample{}
	var order []string
	evs, err := events.ListEvents(ctx, router.EventFilter{Source: src.Name, Limit: maxScan})
	if err != nil {
		onError(fmt.Errorf("trial samples: list events: %w", err))
		return out, nil
	}
	for _, e := range evs {
		if e.Quarantined || e.Name == "" || len(order) >= maxRealNames {
			continue
		}
		if _, seen := out[e.Name]; seen {
			continue
		}
		full, err := events.GetEvent(ctx, e.Source, e.ID)
		if err != nil || len(full.Body) > maxRealBody {
			continue
		}
		payload, ok := stripCredentials(full.Body)
		if !ok {
			continue
		}
		out[e.Name] = Sample{Source: src.Name, Type: src.Type, Event: e.Name, Real: true, Payload: payload,
			Label: fmt.Sprintf("latest real %s (received %s)", e.Name, e.ReceivedAt.UTC().Format("2006-01-02 15:04:05 MST"))}
		order = append(order, e.Name)
	}
	return out, order
}

// stripCredentials blanks the values of fields whose names say they hold
// a credential, at any depth, keeping numbers exact.
func stripCredentials(body []byte) (json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(scrubCredentials(v)); err != nil {
		return nil, false
	}
	return bytes.TrimSpace(buf.Bytes()), true
}

func scrubCredentials(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if credentialKey(k) {
				if x != nil && x != "" {
					t[k] = redact.Placeholder
				}
				continue
			}
			t[k] = scrubCredentials(x)
		}
	case []any:
		for i, x := range t {
			t[i] = scrubCredentials(x)
		}
	}
	return v
}

// credentialKey reports whether a field name says it holds a credential.
func credentialKey(k string) bool {
	k = strings.ToLower(strings.ReplaceAll(k, "-", "_"))
	switch k {
	case "token", "secret", "password", "passwd", "signature", "authorization", "api_key", "apikey", "private_key", "cookie":
		return true
	}
	for _, suffix := range []string{"_token", "_secret", "_password", "_signature", "_api_key", "_private_key"} {
		if strings.HasSuffix(k, suffix) {
			return true
		}
	}
	return false
}
