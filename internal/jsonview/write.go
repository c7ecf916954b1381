package jsonview

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Writing: the bytes encoding/json writes for the decoded values, with
// HTML escaping off.

// AppendValue writes node n as encoding its decoded value writes it.
func (t *Tree) AppendValue(b []byte, n int32) ([]byte, bool) {
	if n == t.subst {
		return append(b, t.substJSON...), true
	}
	nd := &t.nodes[n]
	switch nd.kind {
	case '"':
		if nd.plain {
			b = append(b, '"')
			b = append(b, t.p.s[nd.start:nd.end]...)
			return append(b, '"'), true
		}
		v, ok := t.decoded(n)
		return AppendString(b, v), ok
	case '0':
		if nd.plain {
			return append(b, t.p.s[nd.start:nd.end]...), true
		}
		switch v := t.NumberOf(n).(type) {
		case int:
			return strconv.AppendInt(b, int64(v), 10), true
		case float64:
			return appendFloat(b, v), true
		case string:
			return AppendString(b, v), true
		}
		return b, false
	case 't', 'f', 'n':
		return append(b, t.p.s[nd.start:nd.end]...), true
	case '[':
		b = append(b, '[')
		for e := nd.first; e >= 0; e = t.nodes[e].next {
			if e != nd.first {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = t.AppendValue(b, e); !ok {
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
func (t *Tree) appendObject(b []byte, n int32) ([]byte, bool) {
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
		b = AppendString(b, ms[i].key)
		b = append(b, ':')
		var ok bool
		// Nested objects append to t.members past ms and cut it back;
		// ms itself is left as it was, even if t.members moves.
		if b, ok = t.AppendValue(b, ms[i].val); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// AppendString writes s as a JSON string the way encoding/json does
// with HTML escaping off.
func AppendString(b []byte, s string) []byte {
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

// appendFloat writes f as encoding/json writes a float64.
func appendFloat(b []byte, f float64) []byte {
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

// AppendValueWith writes node n as AppendValue does, but node sub within
// it as subJSON: bytes written for sub before, not written again.
func (t *Tree) AppendValueWith(b []byte, n, sub int32, subJSON []byte) ([]byte, bool) {
	t.subst, t.substJSON = sub, subJSON
	defer func() { t.subst, t.substJSON = -1, nil }()
	return t.AppendValue(b, n)
}

// AppendStringMap writes h with its keys sorted; null for nil, as a nil
// map is written.
func (t *Tree) AppendStringMap(b []byte, h map[string]string) []byte {
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
		b = AppendString(b, k)
		b = append(b, ':')
		b = AppendString(b, h[k])
	}
	clear(t.keys)
	return append(b, '}')
}
