package source

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hookroute/hookroute/router"
)

// This file builds a SalesIQ event's view as JSON straight from its stored
// body: the bytes that encoding the view's Data map gives (sorted keys, no
// HTML escaping, numbers as decodeJSON types them), without the map tree.
// It is what an http sink sends by default, once per delivery; decoding the
// view and encoding it again cost about two and a half times the CPU and
// twenty times the allocations (BenchmarkSalesIQEventJSON). Whatever it is
// not sure to write exactly as the decode-and-encode path would, it leaves
// to that path: FuzzEventJSON holds the two to the same bytes.

// jnode is one JSON value, or one object key, of a parsed body.
type jnode struct {
	kind  byte // '{', '[', '"' (string or key), '0' (number), 't', 'f', 'n'
	plain bool // a string without escapes, valid UTF-8, needing none on output; a number that is an int written canonically
	start int32
	end   int32 // s[start:end] is the value; for strings and keys, between the quotes
	next  int32 // the next element, or an object key's value, or a value's next key; -1 at the end
	first int32 // a container's first element or key; -1 when empty
}

// jsonTree is a body parsed into spans of its text: one allocation for
// the text, none per value. Trees are pooled.
type jsonTree struct {
	s       string
	nodes   []jnode
	members []jmember // scratch: the members of the objects being written
	keys    []string  // scratch: header names
	// subst, when not -1, is a node written as substJSON, bytes written
	// for it before.
	subst     int32
	substJSON []byte
}

// jmember is an object member as written: key decoded, value's node.
type jmember struct {
	key string
	val int32
}

var jsonTrees = sync.Pool{New: func() any { return new(jsonTree) }}

// maxEventJSONDepth bounds the nesting this path takes on; deeper bodies
// (none that SalesIQ sends) go the decode-and-encode way.
const maxEventJSONDepth = 64

// parse reads s; false if it is not JSON this path takes on.
func (t *jsonTree) parse(s string) bool {
	if len(s) >= math.MaxInt32 {
		return false
	}
	t.s, t.nodes, t.subst = s, t.nodes[:0], -1
	i := skipSpaceString(s, 0)
	i, ok := t.value(i, 0)
	return ok && skipSpaceString(s, i) == len(s)
}

func skipSpaceString(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// value parses the value at s[i:] into a new node and returns the offset
// after it.
func (t *jsonTree) value(i, depth int) (int, bool) {
	s := t.s
	if i >= len(s) {
		return i, false
	}
	n := int32(len(t.nodes))
	t.nodes = append(t.nodes, jnode{start: int32(i), next: -1, first: -1})
	switch c := s[i]; {
	case c == '{' || c == '[':
		if depth >= maxEventJSONDepth {
			return i, false
		}
		return t.container(n, i, depth+1)
	case c == '"':
		t.nodes[n].kind = '"'
		return t.str(n, i)
	case c == '-' || (c >= '0' && c <= '9'):
		t.nodes[n].kind = '0'
		return t.number(n, i)
	case c == 't' || c == 'f' || c == 'n':
		word := "null"
		switch c {
		case 't':
			word = "true"
		case 'f':
			word = "false"
		}
		if len(s)-i < len(word) || s[i:i+len(word)] != word {
			return i, false
		}
		t.nodes[n].kind, t.nodes[n].end = c, int32(i+len(word))
		return i + len(word), true
	}
	return i, false
}

func (t *jsonTree) container(n int32, i, depth int) (int, bool) {
	s := t.s
	open := s[i]
	closing := byte(']')
	if open == '{' {
		closing = '}'
	}
	t.nodes[n].kind = open
	i = skipSpaceString(s, i+1)
	if i < len(s) && s[i] == closing {
		t.nodes[n].end = int32(i + 1)
		return i + 1, true
	}
	prev := int32(-1)
	link := func(m int32) {
		if prev < 0 {
			t.nodes[n].first = m
		} else {
			t.nodes[prev].next = m
		}
		prev = m
	}
	for {
		var ok bool
		if open == '{' {
			if i >= len(s) || s[i] != '"' {
				return i, false
			}
			k := int32(len(t.nodes))
			t.nodes = append(t.nodes, jnode{kind: '"', start: int32(i), next: -1, first: -1})
			if i, ok = t.str(k, i); !ok {
				return i, false
			}
			link(k)
			i = skipSpaceString(s, i)
			if i >= len(s) || s[i] != ':' {
				return i, false
			}
			i = skipSpaceString(s, i+1)
		}
		v := int32(len(t.nodes))
		if i, ok = t.value(i, depth); !ok {
			return i, false
		}
		link(v)
		i = skipSpaceString(s, i)
		if i >= len(s) {
			return i, false
		}
		switch s[i] {
		case ',':
			i = skipSpaceString(s, i+1)
		case closing:
			t.nodes[n].end = int32(i + 1)
			return i + 1, true
		default:
			return i, false
		}
	}
}

// str scans the string whose quote is at s[i]. It is plain when it can be
// written out as it stands: no escapes, valid UTF-8, nothing that encoding
// escapes (U+2028 and U+2029 are).
func (t *jsonTree) str(n int32, i int) (int, bool) {
	s := t.s
	start := i + 1
	plain, ascii := true, true
	for j := start; j < len(s); j++ {
		c := s[j]
		if plainASCII[c] {
			continue
		}
		switch {
		case c >= utf8.RuneSelf:
			ascii = false
		case c == '"':
			nd := &t.nodes[n]
			nd.start, nd.end = int32(start), int32(j)
			nd.plain = plain && (ascii || utf8.ValidString(s[start:j]) && !strings.ContainsAny(s[start:j], "\u2028\u2029"))
			return j + 1, true
		case c == '\\':
			// Checked here, so that decoding it later cannot fail, and a
			// bad escape in a value that a later duplicate key hides is
			// refused as decodeJSON refuses it.
			plain = false
			j++
			if j >= len(s) {
				return j, false
			}
			switch s[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(s) || !isHex(s[j+1]) || !isHex(s[j+2]) || !isHex(s[j+3]) || !isHex(s[j+4]) {
					return j, false
				}
				j += 4
			default:
				return j, false
			}
		case c < 0x20:
			return j, false
		}
	}
	return len(s), false
}

// plainASCII marks the bytes a JSON string holds and writes as they are.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// number scans a number. It is plain when it is an integer that decodes
// to an int whose decimal form is the text itself.
func (t *jsonTree) number(n int32, i int) (int, bool) {
	end, integer, fail := scanNumber(t.s, i)
	if fail != "" {
		return end, false
	}
	nd := &t.nodes[n]
	nd.end = int32(end)
	text := t.s[i:end]
	// Up to 18 digits always fits an int64; "-0" decodes to 0.
	nd.plain = integer && len(text) <= 18 && text != "-0"
	return end, true
}

// text is a node's span.
func (t *jsonTree) text(n int32) string { return t.s[t.nodes[n].start:t.nodes[n].end] }

// decoded is a string node's value as decodeJSON gives it.
func (t *jsonTree) decoded(n int32) (string, bool) {
	if t.nodes[n].plain {
		return t.text(n), true
	}
	nd := t.nodes[n]
	p := jsonParser{data: []byte(t.s[nd.start-1 : nd.end+1]), s: t.s[nd.start-1 : nd.end+1]}
	v, err := p.str()
	return v, err == nil
}

// pick sets out[i] to the value of names[i] in object n (the last one,
// as decoding into a map keeps), or -1; names must be sorted. Not an
// object: all -1.
func (t *jsonTree) pick(n int32, names []string, out []int32) {
	for i := range out {
		out[i] = -1
	}
	if n < 0 || t.nodes[n].kind != '{' {
		return
	}
	for k := t.nodes[n].first; k >= 0; k = t.nodes[t.nodes[k].next].next {
		name, ok := t.decoded(k)
		if !ok {
			continue
		}
		if i, found := slices.BinarySearch(names, name); found {
			out[i] = t.nodes[k].next
		}
	}
}

// strOf is str(v) for the value at node n (-1: absent); false for objects
// and arrays, which str prints with fmt.
func (t *jsonTree) strOf(n int32) (string, bool) {
	if n < 0 {
		return "", true
	}
	switch t.nodes[n].kind {
	case '"':
		return t.decoded(n)
	case 'n':
		return "", true
	case 't':
		return "true", true
	case 'f':
		return "false", true
	case '0':
		if t.nodes[n].plain {
			return t.text(n), true
		}
		return Str(t.numberOf(n)), true
	}
	return "", false
}

// numberOf is the value of number node n, as decodeJSON types it.
func (t *jsonTree) numberOf(n int32) any {
	text := t.text(n)
	return numberValue(text, !strings.ContainsAny(text, ".eE"))
}

// appendValue writes node n as encoding its decoded value writes it.
func (t *jsonTree) appendValue(b []byte, n int32) ([]byte, bool) {
	if n == t.subst {
		return append(b, t.substJSON...), true
	}
	nd := &t.nodes[n]
	switch nd.kind {
	case '"':
		if nd.plain {
			b = append(b, '"')
			b = append(b, t.s[nd.start:nd.end]...)
			return append(b, '"'), true
		}
		v, ok := t.decoded(n)
		return appendJSONString(b, v), ok
	case '0':
		if nd.plain {
			return append(b, t.s[nd.start:nd.end]...), true
		}
		switch v := t.numberOf(n).(type) {
		case int:
			return strconv.AppendInt(b, int64(v), 10), true
		case float64:
			return appendJSONFloat(b, v), true
		case string:
			return appendJSONString(b, v), true
		}
		return b, false
	case 't', 'f', 'n':
		return append(b, t.s[nd.start:nd.end]...), true
	case '[':
		b = append(b, '[')
		for e := nd.first; e >= 0; e = t.nodes[e].next {
			if e != nd.first {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = t.appendValue(b, e); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	case '{':
		return t.appendObject(b, n)
	}
	return b, false
}

// appendObject writes object n with its keys sorted and, of keys met
// twice, the last value kept, as a decoded map is written.
func (t *jsonTree) appendObject(b []byte, n int32) ([]byte, bool) {
	base := len(t.members)
	defer func() { t.members = t.members[:base] }()
	for k := t.nodes[n].first; k >= 0; k = t.nodes[t.nodes[k].next].next {
		name, ok := t.decoded(k)
		if !ok {
			return b, false
		}
		t.members = append(t.members, jmember{key: name, val: t.nodes[k].next})
	}
	ms := t.members[base:]
	slices.SortStableFunc(ms, func(x, y jmember) int { return strings.Compare(x.key, y.key) })
	b = append(b, '{')
	wrote := false
	for i := range ms {
		if i+1 < len(ms) && ms[i+1].key == ms[i].key {
			continue // a later value for this key follows
		}
		if wrote {
			b = append(b, ',')
		}
		wrote = true
		b = appendJSONString(b, ms[i].key)
		b = append(b, ':')
		var ok bool
		// Nested objects append to t.members past ms and cut it back;
		// ms itself is left as it was, even if t.members moves.
		if b, ok = t.appendValue(b, ms[i].val); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// appendJSONString writes s as a JSON string the way encoding/json does
// with HTML escaping off.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if plainASCII[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSONFloat writes f as encoding/json writes a float64.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// eventJSON writes a SalesIQ event's view (the map View.Data gives) as
// JSON, from in's body, without decoding it into maps. False when the
// body is one this path does not take on, or one that decode refuses:
// the caller then decodes the view and encodes it.
func (a SalesIQ) EventJSON(in *router.Incoming) ([]byte, bool) {
	t := jsonTrees.Get().(*jsonTree)
	defer func() {
		// Keep no body alive through the pool, nor a huge tree.
		t.s = ""
		clear(t.members[:cap(t.members)])
		t.members = t.members[:0]
		if cap(t.nodes) <= 1<<14 {
			jsonTrees.Put(t)
		}
	}()
	if !t.parse(string(in.Body)) || t.nodes[0].kind != '{' {
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
	t.pick(root, envelopeKeys, top[:])
	if n := top[rootEntity]; n >= 0 && t.nodes[n].kind == '{' {
		w.readEnvelope(&ev, &top)
		if !w.ok || ev.event == "" || ev.entityID == "" || ev.eventTime == "" {
			return ev, false
		}
		ev.id = ev.event + ":" + ev.entityID + ":" + ev.eventTime
		t.pick(ev.entity, entityKeys, ev.fields[:])
		return ev, true
	}
	if a.BareEvent == "" {
		return ev, false
	}
	ev.entity = root
	ev.event = a.BareEvent
	t.pick(ev.entity, entityKeys, ev.fields[:])
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
		w.b, ok = w.t.appendRootWithEntity(w.b, root, ev.entity, ev.entityJSON)
		w.ok = w.ok && ok
	}
}

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
	t  *jsonTree
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
	v, ok := w.t.strOf(n)
	w.ok = w.ok && ok
	return v
}

// value writes node n, or null when n is absent or not of kind (0:
// any), as a failed type assertion leaves a nil map or slice.
func (w *eventWriter) value(n int32, kind byte) {
	if n < 0 || (kind != 0 && w.t.nodes[n].kind != kind) {
		w.b = append(w.b, "null"...)
		return
	}
	var ok bool
	w.b, ok = w.t.appendValue(w.b, n)
	w.ok = w.ok && ok
}

// intOf is a number node's value as an int, as a type assertion on the
// decoded value gives it: 0 when absent, not a number, or not an int.
func (w *eventWriter) intOf(n int32) int {
	if n < 0 || w.t.nodes[n].kind != '0' {
		return 0
	}
	i, _ := w.t.numberOf(n).(int)
	return i
}

// appendRootWithEntity writes the root object as appendObject would,
// copying the entity member's value, already written once, instead of
// writing it again.
func (t *jsonTree) appendRootWithEntity(b []byte, root, entity int32, entityJSON []byte) ([]byte, bool) {
	t.subst, t.substJSON = entity, entityJSON
	defer func() { t.subst, t.substJSON = -1, nil }()
	return t.appendObject(b, root)
}

// appendHeaders writes a header map with its names sorted; null for nil,
// as a nil map is written.
func (t *jsonTree) appendHeaders(b []byte, h map[string]string) []byte {
	if h == nil {
		return append(b, "null"...)
	}
	t.keys = t.keys[:0]
	for k := range h {
		t.keys = append(t.keys, k)
	}
	slices.Sort(t.keys)
	b = append(b, '{')
	for i, k := range t.keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, h[k])
	}
	clear(t.keys)
	return append(b, '}')
}
