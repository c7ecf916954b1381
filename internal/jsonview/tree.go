package jsonview

import (
	"math"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Tree is a body parsed into spans of its text, to write a view's JSON
// from without decoding the body into maps: one allocation for the text,
// none per value. A node is an int32 index; -1 stands for none. Trees
// are pooled: GetTree one, Release it when done.
type Tree struct {
	p       jsonParser // the text, and the lexer's position while parsing
	nodes   []jnode
	members []jmember // scratch: the members of the objects being written
	keys    []string  // scratch: a string map's keys
	// subst, when not -1, is a node written as substJSON, bytes written
	// for it before.
	subst     int32
	substJSON []byte
}

// jnode is one JSON value, or one object key, of a parsed body.
type jnode struct {
	kind  byte // '{', '[', '"' (string or key), '0' (number), 't', 'f', 'n'
	plain bool // a string without escapes, valid UTF-8, needing none on output; a number that is an int written canonically
	start int32
	end   int32 // s[start:end] is the value; for strings and keys, between the quotes
	next  int32 // the next element, or an object key's value, or a value's next key; -1 at the end
	first int32 // a container's first element or key; -1 when empty
}

// jmember is an object member as written: key decoded, value's node.
type jmember struct {
	key string
	val int32
}

var trees = sync.Pool{New: func() any { return new(Tree) }}

// GetTree is a tree from the pool.
func GetTree() *Tree { return trees.Get().(*Tree) }

// Release returns t to the pool, keeping no body alive through it, nor a
// huge tree.
func (t *Tree) Release() {
	t.p = jsonParser{}
	clear(t.members[:cap(t.members)])
	t.members = t.members[:0]
	if cap(t.nodes) <= 1<<14 {
		trees.Put(t)
	}
}

// MaxDepth bounds the nesting a tree takes on; a caller has deeper
// bodies (none that SalesIQ sends) decoded instead.
const MaxDepth = 64

// Parse reads s into the tree; false if it is not JSON, or nests deeper
// than MaxDepth. The root is node 0.
func (t *Tree) Parse(s string) bool {
	if len(s) >= math.MaxInt32 {
		return false
	}
	t.p, t.nodes, t.subst = jsonParser{s: s}, t.nodes[:0], -1
	t.p.skipSpace()
	if !t.value(0) {
		return false
	}
	t.p.skipSpace()
	return t.p.i == len(s)
}

// value parses the value at the lexer's position into a new node.
func (t *Tree) value(depth int) bool {
	p := &t.p
	if p.i >= len(p.s) {
		return false
	}
	n := int32(len(t.nodes))
	t.nodes = append(t.nodes, jnode{start: int32(p.i), next: -1, first: -1})
	switch c := p.s[p.i]; {
	case c == '{' || c == '[':
		return depth < MaxDepth && t.container(n, depth+1)
	case c == '"':
		t.nodes[n].kind = '"'
		return t.str(n)
	case c == '-' || (c >= '0' && c <= '9'):
		t.nodes[n].kind = '0'
		return t.number(n)
	case c == 't' || c == 'f' || c == 'n':
		word := "null"
		switch c {
		case 't':
			word = "true"
		case 'f':
			word = "false"
		}
		if p.literal(word) != nil {
			return false
		}
		t.nodes[n].kind, t.nodes[n].end = c, int32(p.i)
		return true
	}
	return false
}

func (t *Tree) container(n int32, depth int) bool {
	p := &t.p
	open := p.s[p.i]
	closing := byte(']')
	if open == '{' {
		closing = '}'
	}
	t.nodes[n].kind = open
	p.i++
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == closing {
		p.i++
		t.nodes[n].end = int32(p.i)
		return true
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
		if open == '{' {
			if p.i >= len(p.s) || p.s[p.i] != '"' {
				return false
			}
			k := int32(len(t.nodes))
			t.nodes = append(t.nodes, jnode{kind: '"', next: -1, first: -1})
			if !t.str(k) {
				return false
			}
			link(k)
			p.skipSpace()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return false
			}
			p.i++
			p.skipSpace()
		}
		v := int32(len(t.nodes))
		if !t.value(depth) {
			return false
		}
		link(v)
		end, err := p.next(closing, "")
		if err != nil {
			return false
		}
		if end {
			t.nodes[n].end = int32(p.i)
			return true
		}
	}
}

// str scans a string. It is plain when it can be written out as it
// stands: no escapes, valid UTF-8, nothing that encoding escapes (U+2028
// and U+2029 are).
func (t *Tree) str(n int32) bool {
	start, end, escaped, ascii, err := t.p.scanString()
	if err != nil {
		return false
	}
	nd := &t.nodes[n]
	nd.start, nd.end = int32(start), int32(end)
	v := t.p.s[start:end]
	nd.plain = !escaped && (ascii || utf8.ValidString(v) && !strings.ContainsAny(v, "\u2028\u2029"))
	return true
}

// number scans a number. It is plain when it is an integer that decodes
// to an int whose decimal form is the text itself.
func (t *Tree) number(n int32) bool {
	p := &t.p
	start := p.i
	end, integer, fail := scanNumber(p.s, start)
	if fail != "" {
		return false
	}
	p.i = end
	nd := &t.nodes[n]
	nd.end = int32(end)
	text := p.s[start:end]
	// Up to 18 digits always fits an int64; "-0" decodes to 0.
	nd.plain = integer && len(text) <= 18 && text != "-0"
	return true
}

// Kind is node n's kind: '{', '[', '"', '0' (a number), 't', 'f' or 'n';
// 0 for none (-1).
func (t *Tree) Kind(n int32) byte {
	if n < 0 {
		return 0
	}
	return t.nodes[n].kind
}

func (t *Tree) text(n int32) string { return t.p.s[t.nodes[n].start:t.nodes[n].end] }

// decoded is a string node's value as Decode gives it.
func (t *Tree) decoded(n int32) (string, bool) {
	if t.nodes[n].plain {
		return t.text(n), true
	}
	nd := t.nodes[n]
	p := jsonParser{s: t.p.s[nd.start-1 : nd.end+1]}
	v, err := p.str()
	return v, err == nil
}

// Pick sets out[i] to the value of names[i] in object n (the last one,
// as decoding into a map keeps), or -1; names must be sorted. Not an
// object: all -1.
func (t *Tree) Pick(n int32, names []string, out []int32) {
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

// StrOf is Str for the value at node n (-1: absent); false for objects
// and arrays, which str prints with fmt.
func (t *Tree) StrOf(n int32) (string, bool) {
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
		return Str(t.NumberOf(n)), true
	}
	return "", false
}

// NumberOf is the value of number node n, as Decode types it.
func (t *Tree) NumberOf(n int32) any {
	text := t.text(n)
	return numberValue(text, !strings.ContainsAny(text, ".eE"))
}
