package jsonview

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// The lexer both Decode and Tree read JSON with: white space, literals,
// numbers, strings and the punctuation between members, checked by RFC
// 8259 as encoding/json checks them, with its error messages.

// jsonParser is a position in a JSON text.
type jsonParser struct {
	// s is the text, one string: keys, values without escapes and number
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
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

var errJSONEnd = errors.New("unexpected end of JSON input")

func (p *jsonParser) literal(word string) error {
	if len(p.s)-p.i < len(word) {
		if string(p.s[p.i:]) == word[:len(p.s)-p.i] {
			return errJSONEnd
		}
		return p.errorf("invalid literal")
	}
	if string(p.s[p.i:p.i+len(word)]) != word {
		return p.errorf("invalid literal")
	}
	p.i += len(word)
	return nil
}

// next consumes what follows a member of an object or array: a comma (and
// the space after it), or the closing byte, which ends it.
func (p *jsonParser) next(closing byte, member string) (end bool, err error) {
	p.skipSpace()
	if p.i >= len(p.s) {
		return false, errJSONEnd
	}
	switch p.s[p.i] {
	case ',':
		p.i++
		p.skipSpace()
		return false, nil
	case closing:
		p.i++
		return true, nil
	}
	return false, p.errorf("invalid character %q after %s", p.s[p.i], member)
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

// scanString checks the string whose opening quote is at p.i and moves
// p.i past its closing quote. s[start:end] is its text between the
// quotes; escaped says it holds escapes (all of them valid), ascii that
// every byte is ASCII.
func (p *jsonParser) scanString() (start, end int, escaped, ascii bool, err error) {
	s := p.s
	start, ascii = p.i+1, true
	for j := start; j < len(s); j++ {
		c := s[j]
		if plainASCII[c] {
			continue
		}
		switch {
		case c >= utf8.RuneSelf:
			ascii = false
		case c == '"':
			p.i = j + 1
			return start, j, escaped, ascii, nil
		case c == '\\':
			escaped = true
			if j++; j >= len(s) {
				p.i = j
				return start, j, escaped, ascii, errJSONEnd
			}
			switch s[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				p.i = j + 1
				if err := p.hex4(); err != nil {
					return start, j, escaped, ascii, err
				}
				j = p.i - 1
			default:
				p.i = j
				return start, j, escaped, ascii, p.errorf("invalid character %q in string escape code", s[j])
			}
		case c < 0x20:
			p.i = j
			return start, j, escaped, ascii, p.errorf("invalid character %q in string literal", c)
		}
	}
	p.i = len(s)
	return start, len(s), escaped, ascii, errJSONEnd
}

// plainASCII marks the bytes a JSON string holds and writes as they are.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hex4 checks the four hex digits of a \u escape at p.i and moves past
// them.
func (p *jsonParser) hex4() error {
	n := min(4, len(p.s)-p.i)
	for _, c := range []byte(p.s[p.i : p.i+n]) {
		if !isHex(c) {
			return p.errorf("invalid character %q in \\u hexadecimal character escape", c)
		}
	}
	if n < 4 {
		return errJSONEnd
	}
	p.i += 4
	return nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
