package sinks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Slack's limits on the parts of a message, in characters (code points),
// besides slackMaxText and slackMaxBlock. Over them Slack rejects the
// whole message (invalid_blocks, msg_too_long): a message cut short still
// tells a human what happened, a rejected one tells nobody.
const (
	slackMaxSection = 3000 // a section's text
	slackMaxHeader  = 150  // a header's text
	slackMaxElement = 2000 // a context element's text, a section field's
	slackMaxFields  = 10   // a section's fields
	// slackClusterMax is how far, in code points, a cut backs off to keep
	// a grapheme cluster whole. Real clusters are far shorter (a family
	// emoji is 5–7); a longer run (a pile of combining marks) is cut
	// between code points rather than dropped whole.
	slackClusterMax = 32
)

// fitText cuts s to at most limit code points, marking the cut with "…"
// (one of the limit). s within the limit comes back as it is, byte for
// byte; a limit of 0 or less leaves s whole.
//
// A cut is a prefix of s: it never splits a character, and it backs off
// to before anything it would otherwise split that Slack reads as one
// unit:
//   - an entity of escapeMrkdwn's (&amp; &lt; &gt;), which half-cut would
//     show as a stray "&am";
//   - Slack's markup, <https://x|label>, <@U123>, <!channel>: half of one
//     shows as raw text or a broken link, so the partial one is dropped;
//   - a grapheme cluster (é as e and a combining accent, 👍🏽, 🇩🇪, a ZWJ
//     emoji such as 👨‍👩‍👧): half of one shows as another character, a
//     flag as a letter. Clusters are found by approximating Unicode's
//     rules (UAX #29) for what chat text holds, see clusterStart; the
//     segmentation library it would take (rivo/uniseg) is a dependency
//     out of proportion with a cut that only overlong text meets.
//
// Invalid UTF-8 is counted a byte a code point, as package utf8 does; when
// such text is cut, the bytes kept are repaired with U+FFFD, so that a
// cut never sends Slack invalid UTF-8.
func fitText(s string, limit int) string {
	// A string of at most limit bytes has at most limit code points: the
	// common case needs no counting.
	if limit <= 0 || len(s) <= limit || utf8.RuneCountInString(s) <= limit {
		return s
	}
	cut := 0
	for range limit - 1 {
		_, size := utf8.DecodeRuneInString(s[cut:])
		cut += size
	}
	// Each back-off leaves a position the others may object to (a cluster
	// inside a link's label); repeat until all accept it. Each only ever
	// moves the cut back, and leaves a position it accepts itself.
	for {
		c := markupStart(s, cut)
		c = clusterStart(s, c)
		if c == cut {
			break
		}
		cut = c
	}
	kept := s[:cut]
	if !utf8.ValidString(kept) {
		kept = strings.ToValidUTF8(kept, "\uFFFD")
	}
	return kept + "…"
}

// mrkdwnEntities are what escapeMrkdwn writes, and all Slack decodes.
var mrkdwnEntities = [...]string{"&amp;", "&lt;", "&gt;"}

// markupStart returns cut, or the start of the <…> markup or entity that
// cut falls strictly inside of in s. A '<' counts as markup only when a
// '>' closes it further on, with no '<' between: an unclosed one is text
// (escapeMrkdwn has not run on what the template wrote), and dropping
// from it could throw away most of the message.
func markupStart(s string, cut int) int {
	if cut <= 0 || cut >= len(s) {
		return cut
	}
	if open := strings.LastIndexByte(s[:cut], '<'); open >= 0 && strings.IndexByte(s[open:cut], '>') < 0 {
		if end := strings.IndexAny(s[cut:], "<>"); end >= 0 && s[cut+end] == '>' {
			return open
		}
	}
	// An entity has no '<' or '>', so one inside a link is dropped with
	// the link above; only entities in plain text are left.
	for i := cut - 1; i >= 0 && i > cut-len("&amp;"); i-- {
		if s[i] != '&' {
			continue
		}
		for _, e := range mrkdwnEntities {
			if i+len(e) > cut && strings.HasPrefix(s[i:], e) {
				return i
			}
		}
		break
	}
	return cut
}

// Code points that always stay with the one before them: they modify it.
const (
	zwnj = '\u200c'
	zwj  = '\u200d'
)

// clusterStart returns cut, moved back to the start of the grapheme
// cluster it falls inside of in s. It follows the rules of UAX #29 that
// chat text meets: no break before a combining or spacing mark, a
// variation selector, an emoji modifier (skin tone), a ZWJ, ZWNJ or a tag
// (subdivision flags); none after a ZWJ (emoji sequences); none inside a
// pair of regional indicators (flags); none inside CR LF. It leaves out
// Hangul jamo (text uses precomposed syllables) and prepended marks.
// A cluster longer than slackClusterMax is split between code points.
func clusterStart(s string, cut int) int {
	if cut <= 0 || cut >= len(s) {
		return cut
	}
	at := cut
	for range slackClusterMax {
		next, _ := utf8.DecodeRuneInString(s[at:])
		prev, size := utf8.DecodeLastRuneInString(s[:at])
		if !joined(s[:at], prev, next) {
			return at
		}
		at -= size
		if at == 0 {
			return 0
		}
	}
	return cut
}

// joined reports whether prev, the last code point of before, and next
// belong to one grapheme cluster.
func joined(before string, prev, next rune) bool {
	switch {
	case prev == '\r' && next == '\n', prev == zwj:
		return true
	case extends(next):
		return true
	case regionalIndicator(prev) && regionalIndicator(next):
		// Indicators pair from the start of their run: the cut splits a
		// flag when an odd number of them precede it.
		n := 0
		for rest := before; ; n++ {
			r, size := utf8.DecodeLastRuneInString(rest)
			if !regionalIndicator(r) {
				break
			}
			rest = rest[:len(rest)-size]
		}
		return n%2 == 1
	}
	return false
}

// extends reports whether r joins the code point before it.
func extends(r rune) bool {
	switch {
	case r < 0x300:
		return false // ASCII and Latin-1: the fast path for most text
	case r == zwj, r == zwnj,
		r >= 0x1f3fb && r <= 0x1f3ff, // emoji modifiers (skin tones)
		r >= 0xe0020 && r <= 0xe007f: // tags
		return true
	}
	// Combining and spacing marks include the variation selectors and
	// the keycap (U+20E3).
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Mc)
}

// regionalIndicator reports whether r is one of the letters flags are
// written with, two to a flag.
func regionalIndicator(r rune) bool { return r >= 0x1f1e6 && r <= 0x1f1ff }

// fitBlocks cuts rendered blocks (the blocks field, as parsed into raw
// objects) to Slack's limits: at most slackMaxBlock blocks, a section's
// text to slackMaxSection, a header's to slackMaxHeader, each context
// element's text to slackMaxElement, and a section's fields to
// slackMaxFields of at most slackMaxElement each, each cut by fitText.
//
// A cut rewrites the text's JSON string and nothing else: every other byte
// of the block stays as the template wrote it, fields slack-go does not
// know included, for the same reason rawBlock exists. Blocks within the
// limits come back as they are (the very same slices); raws itself is
// never written to. A block that is not a JSON object is an error, as it
// is to parseBlocks; blocks of other types, and parts of the wrong shape
// (a section whose text is not an object), pass unchanged, for Slack to
// judge.
func fitBlocks(raws []json.RawMessage) ([]json.RawMessage, error) {
	if len(raws) > slackMaxBlock {
		raws = raws[:slackMaxBlock]
	}
	var out []json.RawMessage // a copy of raws, made at the first cut
	for i, r := range raws {
		fit, changed, err := fitBlock(r)
		if err != nil {
			return nil, fmt.Errorf("blocks[%d]: %w", i, err)
		}
		if !changed {
			continue
		}
		if out == nil {
			out = slices.Clone(raws)
		}
		out[i] = fit
	}
	if out == nil {
		return raws, nil
	}
	return out, nil
}

// errNotBlock is a block that is not a JSON object, in parseBlocks' words.
var errNotBlock = errors.New(`want an object with a "type"`)

// fitBlock is fitBlocks for one block.
func fitBlock(b []byte) ([]byte, bool, error) {
	if i := jsonSkipSpace(b, 0); i >= len(b) || b[i] != '{' {
		return nil, false, errNotBlock
	}
	var typ string
	err := jsonEachMember(b, func(key []byte, start, end int) error {
		if jsonKeyIs(key, "type") && b[start] == '"' {
			return json.Unmarshal(b[start:end], &typ)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	textOf := func(limit int) jsonEdit { return editMember("text", fitString(limit)) }
	switch typ {
	case "section":
		return chainEdits(b,
			editMember("text", textOf(slackMaxSection)),
			editMember("fields", editElements(slackMaxFields, textOf(slackMaxElement))))
	case "header":
		return editMember("text", textOf(slackMaxHeader))(b)
	case "context":
		return editMember("elements", editElements(0, textOf(slackMaxElement)))(b)
	}
	return b, false, nil
}

// jsonEdit rewrites a JSON value, reporting whether it changed anything;
// an unchanged value comes back as it was.
type jsonEdit func(val []byte) ([]byte, bool, error)

// chainEdits applies edits one after the other to val.
func chainEdits(val []byte, edits ...jsonEdit) ([]byte, bool, error) {
	changed := false
	for _, e := range edits {
		v, c, err := e(val)
		if err != nil {
			return nil, false, err
		}
		val, changed = v, changed || c
	}
	return val, changed, nil
}

// editMember edits the value of every member named key of an object (a
// duplicate key is rare, but parsers differ on which one wins). A value
// that is not an object passes unchanged.
func editMember(key string, edit jsonEdit) jsonEdit {
	return func(obj []byte) ([]byte, bool, error) {
		if i := jsonSkipSpace(obj, 0); i >= len(obj) || obj[i] != '{' {
			return obj, false, nil
		}
		var out []byte // built at the first change
		last := 0
		err := jsonEachMember(obj, func(k []byte, start, end int) error {
			if !jsonKeyIs(k, key) {
				return nil
			}
			v, changed, err := edit(obj[start:end])
			if err != nil || !changed {
				return err
			}
			out = append(append(out, obj[last:start]...), v...)
			last = end
			return nil
		})
		if err != nil || out == nil {
			return obj, false, err
		}
		return append(out, obj[last:]...), true, nil
	}
}

// editElements edits every element of an array, keeping at most max of
// them (all when max is 0). A value that is not an array passes unchanged.
func editElements(max int, edit jsonEdit) jsonEdit {
	return func(arr []byte) ([]byte, bool, error) {
		i := jsonSkipSpace(arr, 0)
		if i >= len(arr) || arr[i] != '[' {
			return arr, false, nil
		}
		var out []byte // built at the first change
		copied := 0    // out holds arr[:copied], once built
		kept := 0      // the end of the last element kept
		i = jsonSkipSpace(arr, i+1)
		for n := 0; i < len(arr) && arr[i] != ']'; n++ {
			if max > 0 && n == max {
				// The rest is dropped: close the array after the last kept.
				return append(append(out, arr[copied:kept]...), ']'), true, nil
			}
			end, err := jsonValueEnd(arr, i)
			if err != nil {
				return nil, false, err
			}
			v, changed, err := edit(arr[i:end])
			if err != nil {
				return nil, false, err
			}
			if changed {
				out = append(append(out, arr[copied:i]...), v...)
				copied = end
			}
			kept = end
			if i = jsonSkipSpace(arr, end); i < len(arr) && arr[i] == ',' {
				i = jsonSkipSpace(arr, i+1)
			}
		}
		if i >= len(arr) {
			return nil, false, errBadJSON
		}
		if out == nil {
			return arr, false, nil
		}
		return append(out, arr[copied:]...), true, nil
	}
}

// fitString cuts a JSON string value to limit code points with fitText.
// A value that is not a string passes unchanged.
func fitString(limit int) jsonEdit {
	return func(val []byte) ([]byte, bool, error) {
		// A JSON string takes at least a byte a code point between its
		// quotes: a short one needs no decoding.
		if len(val) == 0 || val[0] != '"' || len(val)-2 <= limit {
			return val, false, nil
		}
		var s string
		if err := json.Unmarshal(val, &s); err != nil {
			return nil, false, err
		}
		fit := fitText(s, limit)
		if fit == s {
			return val, false, nil
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // the cut text reads as the template's did
		if err := enc.Encode(fit); err != nil {
			return nil, false, err
		}
		return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), true, nil
	}
}

// errBadJSON is what the JSON scanner below meets where a valid document
// could have nothing. Blocks come from json.Unmarshal, which checked them
// already: this guards fitBlocks called on anything else.
var errBadJSON = errors.New("malformed JSON")

// The scanner below finds where values lie in a document that is valid
// JSON, so that a cut can rewrite one string and keep every other byte:
// decoding into maps and encoding again would reorder keys, respace, and
// rewrite numbers and escapes. It checks structure only as far as it
// needs to never read out of bounds.

// jsonSkipSpace returns the index of the first byte at or after i that is
// not JSON whitespace.
func jsonSkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// jsonStringEnd returns the index just past the string whose opening
// quote is at b[i].
func jsonStringEnd(b []byte, i int) (int, error) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errBadJSON
}

// jsonValueEnd returns the index just past the value that starts at b[i].
func jsonValueEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errBadJSON
	}
	switch b[i] {
	case '"':
		return jsonStringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, err := jsonStringEnd(b, i)
				if err != nil {
					return 0, err
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1, nil
				}
			}
		}
		return 0, errBadJSON
	case ',', ':', '}', ']':
		return 0, errBadJSON
	}
	// A number, true, false or null runs to the next delimiter.
	j := i
	for j < len(b) && !strings.ContainsRune(",:]} \t\r\n", rune(b[j])) {
		j++
	}
	return j, nil
}

// jsonEachMember calls fn with each member of the object in obj: its key,
// quotes and escapes included, and where its value starts and ends.
func jsonEachMember(obj []byte, fn func(key []byte, start, end int) error) error {
	i := jsonSkipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errBadJSON
	}
	if i = jsonSkipSpace(obj, i+1); i < len(obj) && obj[i] == '}' {
		return nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return errBadJSON
		}
		keyEnd, err := jsonStringEnd(obj, i)
		if err != nil {
			return err
		}
		key := obj[i:keyEnd]
		if i = jsonSkipSpace(obj, keyEnd); i >= len(obj) || obj[i] != ':' {
			return errBadJSON
		}
		start := jsonSkipSpace(obj, i+1)
		end, err := jsonValueEnd(obj, start)
		if err != nil {
			return err
		}
		if err := fn(key, start, end); err != nil {
			return err
		}
		if i = jsonSkipSpace(obj, end); i >= len(obj) {
			return errBadJSON
		}
		switch obj[i] {
		case ',':
			i = jsonSkipSpace(obj, i+1)
		case '}':
			return nil
		default:
			return errBadJSON
		}
	}
}

// jsonKeyIs reports whether key, a JSON string with its quotes, reads
// name. A key may be written with escapes ("te\u0078t").
func jsonKeyIs(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') < 0 {
		return len(key) >= 2 && string(key[1:len(key)-1]) == name
	}
	var k string
	return json.Unmarshal(key, &k) == nil && k == name
}
