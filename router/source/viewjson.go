package source

import (
	"strconv"
	"time"

	"github.com/hookroute/hookroute/internal/jsonview"
	"github.com/hookroute/hookroute/router"
)

// This file builds a SalesIQ event's view as JSON straight from its stored
// body: the bytes that encoding the view's Data map gives (sorted keys, no
// HTML escaping, numbers as jsonview.Decode types them), without the map tree.
// It is what an http sink sends by default, once per delivery; decoding the
// view and encoding it again cost about two and a half times the CPU and
// twenty times the allocations (BenchmarkSalesIQEventJSON). Whatever it is
// not sure to write exactly as the decode-and-encode path would, it leaves
// to that path: FuzzEventJSON holds the two to the same bytes.

// eventJSON writes a SalesIQ event's view (the map View.Data gives) as
// JSON, from in's body, without decoding it into maps. False when the
// body is one this path does not take on, or one that decode refuses:
// the caller then decodes the view and encodes it.
func (a SalesIQ) EventJSON(in *router.Incoming) ([]byte, bool) {
	t := jsonview.GetTree()
	defer t.Release()
	if !t.Parse(string(in.Body)) || t.Kind(0) != '{' {
		return nil, false
	}
	w := eventWriter{t: t, ok: true}
	ev, ok := a.envelope(&w, in.Body)
	if !ok {
		return nil, false
	}
	// The view's map written with its keys in sorted order. The entity
	// is written within the chat's fields and the payload too, from the
	// same body: room for the body three times over is enough.
	w.b = make([]byte, 0, 3*len(in.Body)+1024)
	w.view(in, &ev)
	if !w.ok {
		return nil, false
	}
	return w.b, true
}

// envelope reads the envelope's fields from the parsed body, or names the
// bare entity's event from the source's config, and finds the entity's
// fields. ok is false for what the long way must decide.
func (a SalesIQ) envelope(w *eventWriter, body []byte) (ev envelope, ok bool) {
	t := w.t
	const root = 0
	var top [rootKeys]int32
	t.Pick(root, envelopeKeys, top[:])
	if n := top[rootEntity]; t.Kind(n) == '{' {
		w.readEnvelope(&ev, &top)
		if !w.ok || ev.event == "" || ev.entityID == "" || ev.eventTime == "" {
			return ev, false
		}
		ev.id = ev.event + ":" + ev.entityID + ":" + ev.eventTime
		t.Pick(ev.entity, entityKeys, ev.fields[:])
		return ev, true
	}
	if a.BareEvent == "" {
		return ev, false
	}
	ev.entity = root
	ev.event = a.BareEvent
	t.Pick(ev.entity, entityKeys, ev.fields[:])
	ev.entityID = w.strOf(ev.fields[entID])
	ev.id = ev.event + ":" + ev.entityID + ":" + BodyHash(body)[:16]
	return ev, w.ok
}

// entity writes the entity, and keeps the bytes for the payload.
func (w *eventWriter) entity(ev *envelope) {
	at := len(w.b)
	w.value(ev.entity, '{')
	ev.entityJSON = w.b[at:len(w.b):len(w.b)]
}

// payload writes the body, the entity in it as entity wrote it (it is
// written first: "entity" sorts before "payload").
func (w *eventWriter) payload(ev *envelope) {
	const root = 0
	switch {
	case ev.entityJSON == nil:
		w.ok = false
	case ev.entity == root:
		w.b = append(w.b, ev.entityJSON...)
	default:
		var ok bool
		w.b, ok = w.t.AppendValueWith(w.b, root, ev.entity, ev.entityJSON)
		w.ok = w.ok && ok
	}
}

// string writes s as a JSON string.
func (w *eventWriter) string(s string) { w.b = jsonview.AppendString(w.b, s) }

// int writes i.
func (w *eventWriter) int(i int) { w.b = strconv.AppendInt(w.b, int64(i), 10) }

// headers writes a header map, its names sorted.
func (w *eventWriter) headers(h map[string]string) { w.b = w.t.AppendStringMap(w.b, h) }

// time writes t as a time.Time encodes.
func (w *eventWriter) time(t time.Time) {
	w.b = append(w.b, '"')
	var err error
	w.b, err = t.AppendText(w.b)
	w.b = append(w.b, '"')
	w.ok = w.ok && err == nil
}

// eventWriter writes a view's JSON; ok turns false, for good, at the
// first value that cannot be written as the long way would.
type eventWriter struct {
	t  *jsonview.Tree
	b  []byte
	ok bool
}

// name writes "name": (names here need no escaping).
func (w *eventWriter) name(name string) {
	w.b = append(w.b, '"')
	w.b = append(w.b, name...)
	w.b = append(w.b, '"', ':')
}

// key writes ,"name": after an earlier member.
func (w *eventWriter) key(name string) {
	w.comma()
	w.name(name)
}

func (w *eventWriter) comma() { w.b = append(w.b, ',') }

// strOf is the tree's strOf, failing the writer for what it cannot do.
func (w *eventWriter) strOf(n int32) string {
	v, ok := w.t.StrOf(n)
	w.ok = w.ok && ok
	return v
}

// value writes node n, or null when n is absent or not of kind (0:
// any), as a failed type assertion leaves a nil map or slice.
func (w *eventWriter) value(n int32, kind byte) {
	if n < 0 || (kind != 0 && w.t.Kind(n) != kind) {
		w.b = append(w.b, "null"...)
		return
	}
	var ok bool
	w.b, ok = w.t.AppendValue(w.b, n)
	w.ok = w.ok && ok
}

// intOf is a number node's value as an int, as a type assertion on the
// decoded value gives it: 0 when absent, not a number, or not an int.
func (w *eventWriter) intOf(n int32) int {
	if w.t.Kind(n) != '0' {
		return 0
	}
	i, _ := w.t.NumberOf(n).(int)
	return i
}
