package source

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeJSON decodes a JSON document into the values event views hold:
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
func DecodeJSON(data []byte) (any, error) {
	p := jsonParser{data: data, s: string(data)}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i != len(p.data) {
		return nil, p.errorf("trailing data after the JSON value")
	}
	return v, nil
}

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

type jsonParser struct {
	data []byte
	// s is data as one string: keys, values without escapes and number
	// texts are cut from it, one allocation for the document instead of
	// one per string (a tenth less CPU for a SalesIQ view). The values so
	// keep the whole body alive, white space included, for as long as the
	// view lives; its decoded values alone were about the body's size.
	s   string
	i   int
	buf []byte // scratch for strings with escapes
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *jsonParser) skipSpace() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

var errJSONEnd = errors.New("unexpected end of JSON input")

func (p *jsonParser) value(depth int) (any, error) {
	if p.i >= len(p.data) {
		return nil, errJSONEnd
	}
	switch c := p.data[p.i]; {
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

func (p *jsonParser) literal(word string) error {
	if len(p.data)-p.i < len(word) {
		if string(p.data[p.i:]) == word[:len(p.data)-p.i] {
			return errJSONEnd
		}
		return p.errorf("invalid literal")
	}
	if string(p.data[p.i:p.i+len(word)]) != word {
		return p.errorf("invalid literal")
	}
	p.i += len(word)
	return nil
}

func (p *jsonParser) object(depth int) (any, error) {
	p.i++ // {
	m := make(map[string]any)
	p.skipSpace()
	if p.i < len(p.data) && p.data[p.i] == '}' {
		p.i++
		return m, nil
	}
	for {
		if p.i >= len(p.data) {
			return nil, errJSONEnd
		}
		if p.data[p.i] != '"' {
			return nil, p.errorf("invalid character %q looking for beginning of object key string", p.data[p.i])
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.i >= len(p.data) {
			return nil, errJSONEnd
		}
		if p.data[p.i] != ':' {
			return nil, p.errorf("invalid character %q after object key", p.data[p.i])
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

// next consumes what follows a member of an object or array: a comma (and
// the space after it), or the closing byte, which ends it.
func (p *jsonParser) next(closing byte, member string) (end bool, err error) {
	p.skipSpace()
	if p.i >= len(p.data) {
		return false, errJSONEnd
	}
	switch p.data[p.i] {
	case ',':
		p.i++
		p.skipSpace()
		return false, nil
	case closing:
		p.i++
		return true, nil
	}
	return false, p.errorf("invalid character %q after %s", p.data[p.i], member)
}

func (p *jsonParser) array(depth int) (any, error) {
	p.i++ // [
	a := []any{}
	p.skipSpace()
	if p.i < len(p.data) && p.data[p.i] == ']' {
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
	case end >= len(p.data):
		return nil, errJSONEnd
	}
	return nil, p.errorf("invalid character %q %s", p.data[end], fail)
}

// scanNumber scans the number at s[i] by the RFC 8259 grammar and returns
// its end and whether it is an integer (no fraction, no exponent). If the
// grammar breaks, end is the offset of the byte that breaks it (len(s) if
// the text ends too soon) and fail says where, for the error message.
func scanNumber(s string, i int) (end int, integer bool, fail string) {
	if s[i] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - j
	}
	switch {
	case i >= len(s):
		return i, false, "in numeric literal"
	case s[i] == '0':
		i++
	case s[i] >= '1' && s[i] <= '9':
		digits()
	default:
		return i, false, "in numeric literal"
	}
	integer = true
	if i < len(s) && s[i] == '.' {
		integer = false
		i++
		if digits() == 0 {
			return i, false, "after decimal point in numeric literal"
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		integer = false
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return i, false, "in exponent of numeric literal"
		}
	}
	return i, integer, ""
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

// str decodes a string at p.i (on its opening quote).
func (p *jsonParser) str() (string, error) {
	p.i++ // "
	d := p.data
	start := p.i
	// Fast path: no escapes, plain ASCII or valid UTF-8.
	for p.i < len(d) {
		c := d[p.i]
		switch {
		case c == '"':
			s := p.s[start:p.i]
			p.i++
			if utf8.ValidString(s) {
				return s, nil
			}
			p.buf = appendValidUTF8(p.buf[:0], d[start:p.i-1])
			return string(p.buf), nil
		case c == '\\':
			return p.strSlow(start)
		case c < 0x20:
			return "", p.errorf("invalid character %q in string literal", c)
		}
		p.i++
	}
	return "", errJSONEnd
}

// strSlow decodes a string with escapes, from start (after the quote).
func (p *jsonParser) strSlow(start int) (string, error) {
	d := p.data
	b := appendValidUTF8(p.buf[:0], d[start:p.i])
	for p.i < len(d) {
		c := d[p.i]
		switch {
		case c == '"':
			p.i++
			p.buf = b
			return string(b), nil
		case c < 0x20:
			return "", p.errorf("invalid character %q in string literal", c)
		case c != '\\':
			// A run of plain bytes up to the next quote or backslash.
			j := p.i
			for j < len(d) && d[j] != '"' && d[j] != '\\' && d[j] >= 0x20 {
				j++
			}
			b = appendValidUTF8(b, d[p.i:j])
			p.i = j
			continue
		}
		// An escape.
		p.i++
		if p.i >= len(d) {
			return "", errJSONEnd
		}
		switch e := d[p.i]; e {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			b = append(b, unescape[e])
			p.i++
		case 'u':
			p.i++
			r, err := p.hex4()
			if err != nil {
				return "", err
			}
			if utf16.IsSurrogate(r) {
				// A high surrogate followed by an escaped low one is one
				// rune; anything else is U+FFFD, as encoding/json has it.
				if p.i+1 < len(d) && d[p.i] == '\\' && d[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					r2, err := p.hex4()
					if err != nil {
						return "", err
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						b = utf8.AppendRune(b, dec)
						continue
					}
					p.i = save
				}
				r = utf8.RuneError
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", p.errorf("invalid character %q in string escape code", e)
		}
	}
	return "", errJSONEnd
}

// unescape maps the letter of a one-letter escape to the byte it stands for.
var unescape = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

func (p *jsonParser) hex4() (rune, error) {
	if len(p.data)-p.i < 4 {
		for _, c := range p.data[p.i:] {
			if !isHex(c) {
				return 0, p.errorf("invalid character %q in \\u hexadecimal character escape", c)
			}
		}
		return 0, errJSONEnd
	}
	var r rune
	for _, c := range p.data[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, p.errorf("invalid character %q in \\u hexadecimal character escape", c)
		}
	}
	p.i += 4
	return r, nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// appendValidUTF8 appends s with every byte that is not part of valid
// UTF-8 replaced by U+FFFD, one per byte, as encoding/json decodes it.
func appendValidUTF8(b, s []byte) []byte {
	for len(s) > 0 {
		c := s[0]
		if c < utf8.RuneSelf {
			b = append(b, c)
			s = s[1:]
			continue
		}
		r, size := utf8.DecodeRune(s)
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[:size]...)
		}
		s = s[size:]
	}
	return b
}
