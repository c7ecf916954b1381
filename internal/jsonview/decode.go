// Package jsonview is the JSON of event views, fast: Decode turns a body
// into the values views hold, and Tree writes a view's JSON straight from
// a stored body. Both read JSON through one lexer (lex.go) and write
// strings through one escaper (AppendString), and each is held to
// encoding/json's answers by its fuzz test.
package jsonview

import (
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Decode decodes a JSON document into the values event views hold:
// map[string]any, []any, string, bool, nil, and numbers exact: int when
// the integer fits (so expr can compare it with literals), its exact
// digits as a string when it does not, float64 otherwise.
//
// It gives what encoding/json with UseNumber followed by normalizeNumbers
// gave (FuzzDecodeJSONMatchesEncodingJSON holds it to that, errors
// included) in one pass, without reflection or the intermediate
// json.Number tree: decoding ran twice per delivered event (at ingest, and
// at delivery when the view was no longer cached) and was a seventh of the
// router's CPU. Strict like encoding/json: RFC 8259 grammar, no control
// characters in strings, nesting at most 10000 deep, nothing but white
// space after the value; invalid UTF-8 and lone surrogates become U+FFFD.
func Decode(data []byte) (any, error) {
	p := jsonParser{s: string(data)}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return nil, p.errorf("trailing data after the JSON value")
	}
	return v, nil
}

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

func (p *jsonParser) value(depth int) (any, error) {
	if p.i >= len(p.s) {
		return nil, errJSONEnd
	}
	switch c := p.s[p.i]; {
	case c == '{':
		if depth >= maxJSONDepth {
			return nil, p.errorf("exceeded max depth")
		}
		return p.object(depth + 1)
	case c == '[':
		if depth >= maxJSONDepth {
			return nil, p.errorf("exceeded max depth")
		}
		return p.array(depth + 1)
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	default:
		return nil, p.errorf("invalid character %q looking for beginning of value", c)
	}
}

func (p *jsonParser) object(depth int) (any, error) {
	p.i++ // {
	m := make(map[string]any)
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return m, nil
	}
	for {
		if p.i >= len(p.s) {
			return nil, errJSONEnd
		}
		if p.s[p.i] != '"' {
			return nil, p.errorf("invalid character %q looking for beginning of object key string", p.s[p.i])
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.i >= len(p.s) {
			return nil, errJSONEnd
		}
		if p.s[p.i] != ':' {
			return nil, p.errorf("invalid character %q after object key", p.s[p.i])
		}
		p.i++
		p.skipSpace()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		m[k] = v
		if end, err := p.next('}', "object key:value pair"); end || err != nil {
			return m, err
		}
	}
}

func (p *jsonParser) array(depth int) (any, error) {
	p.i++ // [
	a := []any{}
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return a, nil
	}
	for {
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		if end, err := p.next(']', "array element"); end || err != nil {
			return a, err
		}
	}
}

// number scans a number by the RFC 8259 grammar, then types it as
// normalizeNumbers does.
func (p *jsonParser) number() (any, error) {
	start := p.i
	end, integer, fail := scanNumber(p.s, p.i)
	p.i = end
	switch {
	case fail == "":
		return numberValue(p.s[start:end], integer), nil
	case end >= len(p.s):
		return nil, errJSONEnd
	}
	return nil, p.errorf("invalid character %q %s", p.s[end], fail)
}

// numberValue types a number's text (an integer: no fraction or exponent)
// as normalizeNumbers does.
func numberValue(text string, integer bool) any {
	if integer {
		if i, err := strconv.ParseInt(text, 10, 64); err == nil && i >= math.MinInt && i <= math.MaxInt {
			return int(i)
		}
		return text // beyond int64: keep every digit
	}
	if f, err := strconv.ParseFloat(text, 64); err == nil {
		return f
	}
	return text // out of float64's range: as normalizeNumbers keeps it
}

// str decodes the string at p.i (on its opening quote).
func (p *jsonParser) str() (string, error) {
	start, end, escaped, ascii, err := p.scanString()
	if err != nil {
		return "", err
	}
	if v := p.s[start:end]; !escaped && (ascii || utf8.ValidString(v)) {
		return v, nil
	}
	p.buf = appendUnescaped(p.buf[:0], p.s[start:end])
	return string(p.buf), nil
}

// appendUnescaped appends s, the text of a string scanString has checked,
// with its escapes decoded and invalid UTF-8 replaced as encoding/json
// replaces it.
func appendUnescaped(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			j := i
			for j < len(s) && s[j] != '\\' {
				j++
			}
			b = appendValidUTF8(b, s[i:j])
			i = j
			continue
		}
		e := s[i+1]
		if e != 'u' {
			b = append(b, unescape[e])
			i += 2
			continue
		}
		r := hexRune(s[i+2 : i+6])
		i += 6
		if utf16.IsSurrogate(r) {
			// A high surrogate followed by an escaped low one is one
			// rune; anything else is U+FFFD, as encoding/json has it.
			if i+5 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
				if dec := utf16.DecodeRune(r, hexRune(s[i+2:i+6])); dec != utf8.RuneError {
					b = utf8.AppendRune(b, dec)
					i += 6
					continue
				}
			}
			r = utf8.RuneError
		}
		b = utf8.AppendRune(b, r)
	}
	return b
}

// hexRune is the value of four hex digits that scanString has checked.
func hexRune(h string) rune {
	var r rune
	for _, c := range []byte(h) {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		default:
			r = r<<4 | rune(c-'A'+10)
		}
	}
	return r
}

// unescape maps the letter of a one-letter escape to the byte it stands for.
var unescape = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// appendValidUTF8 appends s with every byte that is not part of valid
// UTF-8 replaced by U+FFFD, one per byte, as encoding/json decodes it.
func appendValidUTF8(b []byte, s string) []byte {
	for len(s) > 0 {
		c := s[0]
		if c < utf8.RuneSelf {
			b = append(b, c)
			s = s[1:]
			continue
		}
		r, size := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[:size]...)
		}
		s = s[size:]
	}
	return b
}
