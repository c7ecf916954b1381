package sinks

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"
)

func TestFitText(t *testing.T) {
	a8 := strings.Repeat("a", 8)
	tests := []struct {
		name, s string
		limit   int
		want    string
	}{
		{"within", "héllo", 5, "héllo"},
		{"no limit", "héllo", 0, "héllo"},
		{"negative limit", "héllo", -1, "héllo"},
		{"limit 1", "héllo", 1, "…"},
		{"plain", "héllo wörld", 5, "héll…"},

		// Multi-byte characters at the cut: the 9th code point kept or not.
		{"é kept", a8 + "ébc", 10, a8 + "é…"},
		{"é dropped", a8 + "ébc", 9, a8 + "…"},
		{"👍 kept", a8 + "👍bc", 10, a8 + "👍…"},
		{"👍 dropped", a8 + "👍bc", 9, a8 + "…"},
		// Grapheme clusters stay whole: a cut inside one drops all of it.
		{"e and a combining accent", a8 + "e\u0301bc", 10, a8 + "…"},
		{"e and a combining accent, whole", a8 + "e\u0301bc", 11, a8 + "e\u0301…"},
		{"skin tone", a8 + "👍🏽bc", 10, a8 + "…"},
		{"skin tone, whole", a8 + "👍🏽bc", 11, a8 + "👍🏽…"},
		{"flag", a8 + "🇩🇪bc", 10, a8 + "…"},
		{"flag, whole", a8 + "🇩🇪bc", 11, a8 + "🇩🇪…"},
		{"second flag", "🇩🇪🇫🇷x", 4, "🇩🇪…"},
		{"flags whole", "🇩🇪🇫🇷xy", 5, "🇩🇪🇫🇷…"},
		{"ZWJ family, after the ZWJ", "ab👨\u200d👩\u200d👧cd", 5, "ab…"},
		{"ZWJ family, before the ZWJ", "ab👨\u200d👩\u200d👧cd", 4, "ab…"},
		{"ZWJ family, whole", "ab👨\u200d👩\u200d👧cd", 8, "ab👨\u200d👩\u200d👧…"},
		{"keycap", "ab1\ufe0f\u20e3cd", 5, "ab…"},
		{"emoji and its variation selector", "ab❤\ufe0fcd", 4, "ab…"},
		{"subdivision flag", "ab🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007fcd", 6, "ab…"},
		{"CR LF", "ab\r\ncd", 4, "ab…"},
		// A run of marks longer than any real cluster is cut between code
		// points rather than dropped whole.
		{"overlong cluster", "ab" + "e" + strings.Repeat("\u0301", 40), 40, "ab" + "e" + strings.Repeat("\u0301", 36) + "…"},

		// Entities stay whole.
		{"entity before", "aaaa&amp;bbbb", 5, "aaaa…"},
		{"entity whole", "aaaa&amp;bbbb", 10, "aaaa&amp;…"},
		{"&lt; whole", "aaaa&lt;bbbb", 9, "aaaa&lt;…"},
		{"&lt; split", "aaaa&lt;bbbb", 8, "aaaa…"},
		{"&gt; split", "aaaa&gt;bbbb", 6, "aaaa…"},
		{"not an entity", "aaaa&ampbbbb", 8, "aaaa&am…"},
		{"a lone ampersand", "a & b & c", 6, "a & b…"},

		// Slack's markup stays whole or goes.
		{"link whole", "see <https://example.com|link> now", 32, "see <https://example.com|link> …"},
		{"link's end", "see <https://example.com|link> now", 30, "see …"},
		{"mention", "hi <@U123> there", 9, "hi …"},
		{"channel", "hi <!channel> there", 12, "hi …"},
		{"entity in a link", "x <https://a.example/?a=1&amp;b=2|q> y", 28, "x …"},
		{"an unclosed < is text", "a < b and more text", 8, "a < b a…"},
		{"a < closed by another <", "a < b <@U1> c", 9, "a < b …"},
		{"a > alone", "a > b and more", 6, "a > b…"},
		{"cluster in a link's label", "<https://x|👍🏽> y", 14, "…"},

		{"invalid UTF-8 is repaired when cut", "ab\xffcdef", 4, "ab\ufffd…"},
		{"invalid UTF-8 is kept when not cut", "ab\xffc", 4, "ab\xffc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fitText(tt.s, tt.limit)
			if got != tt.want {
				t.Errorf("fitText(%q, %d) = %q, want %q", tt.s, tt.limit, got, tt.want)
			}
			checkFit(t, tt.s, tt.limit, got)
		})
	}
}

// TestFitTextEveryCut moves the limit across an entity, a link and the
// clusters in it, and checks each result against the rules.
func TestFitTextEveryCut(t *testing.T) {
	s := "Ann: slow &amp; rude &lt;3 <https://example.com/c?a=1&amp;b=2|chat 42> é 👍🏽 🇩🇪 <@U123> <!channel> end"
	for limit := 1; limit <= utf8.RuneCountInString(s)+1; limit++ {
		checkFit(t, s, limit, fitText(s, limit))
	}
}

func TestFitTextWithinIsTheSameString(t *testing.T) {
	s := strings.Repeat("é", 3000)
	if got := fitText(s, slackMaxSection); unsafe.StringData(got) != unsafe.StringData(s) {
		t.Error("text within the limit was copied")
	}
}

// checkFit checks what fitText(s, limit) returned, got, against its
// contract without repeating its logic: within the limit, valid UTF-8, s
// itself when s fits, else a prefix of s and "…" that splits no entity
// and no <…> markup of s.
func checkFit(t *testing.T, s string, limit int, got string) {
	t.Helper()
	if limit <= 0 || utf8.RuneCountInString(s) <= limit {
		if got != s {
			t.Fatalf("fitText(%q, %d) = %q, want it unchanged", s, limit, got)
		}
		return
	}
	if n := utf8.RuneCountInString(got); n > limit {
		t.Fatalf("fitText(%q, %d) = %q: %d code points", s, limit, got, n)
	}
	if !utf8.ValidString(got) {
		t.Fatalf("fitText(%q, %d) = %q: invalid UTF-8", s, limit, got)
	}
	kept, ok := strings.CutSuffix(got, "…")
	if !ok {
		t.Fatalf("fitText(%q, %d) = %q: no … at the cut", s, limit, got)
	}
	if !utf8.ValidString(s) {
		if !strings.HasPrefix(strings.ToValidUTF8(s, "\ufffd"), kept) {
			t.Fatalf("fitText(%q, %d) = %q: not a prefix of the input, repaired", s, limit, got)
		}
		return
	}
	if !strings.HasPrefix(s, kept) {
		t.Fatalf("fitText(%q, %d) = %q: not a prefix of the input", s, limit, got)
	}
	cut := len(kept)
	for _, e := range []string{"&amp;", "&lt;", "&gt;"} {
		for i := max(0, cut-len(e)+1); i < cut; i++ {
			if strings.HasPrefix(s[i:], e) {
				t.Fatalf("fitText(%q, %d) = %q: splits %s", s, limit, got, e)
			}
		}
	}
	for i := 0; i < cut; i++ {
		if s[i] != '<' {
			continue
		}
		if end := strings.IndexAny(s[i+1:], "<>"); end >= 0 && s[i+1+end] == '>' && i+1+end >= cut {
			t.Fatalf("fitText(%q, %d) = %q: splits %s", s, limit, got, s[i:i+2+end])
		}
	}
}

// FuzzFitText checks fitText's contract on any text and limit.
func FuzzFitText(f *testing.F) {
	for _, s := range []string{
		"héllo wörld", "aaaa&amp;bbbb", "a &lt;b&gt; c", "see <https://example.com|link> now",
		"hi <@U123> <!channel>", "e\u0301\u0301x", "👍🏽🇩🇪🇫🇷", "ab👨\u200d👩\u200d👧cd", "ab\xffcd\xfe", "<<>>&&;;",
	} {
		for _, limit := range []int{0, 1, 3, 5, 8} {
			f.Add(s, limit)
		}
	}
	f.Fuzz(func(t *testing.T, s string, limit int) {
		limit %= 1 << 12
		checkFit(t, s, limit, fitText(s, limit))
	})
}

// feedback is a visitor's long comment as the blocks field carries it.
func feedback(n int) string {
	return strings.Repeat("The chat took ages and nobody answered. ", n/40+1)[:n]
}

func TestFitBlocksSection(t *testing.T) {
	long := feedback(3500)
	// Odd spacing, a number as written, an escape, fields slack-go does not
	// know, and an accessory whose text is not ours to cut: all kept.
	head := `{ "type" : "section", "block_id":"b1",  "text": {"type":"mrkdwn", "text": `
	tail := ` , "verbatim":false},` + "\n\t" + `"future_field":{"kept":[1,2.50,"\u00e9"]}, "accessory":{"type":"button","text":{"type":"plain_text","text":"` + feedback(3100) + `"}}}`
	out, err := fitBlocks([]json.RawMessage{json.RawMessage(head + `"` + long + `"` + tail)})
	if err != nil {
		t.Fatal(err)
	}
	cut := long[:slackMaxSection-1] + "…"
	if got, want := string(out[0]), head+`"`+cut+`"`+tail; got != want {
		t.Errorf("section\n got %s\nwant %s", got, want)
	}
	var b struct{ Text struct{ Text string } }
	if err := json.Unmarshal(out[0], &b); err != nil {
		t.Fatal(err)
	}
	if n := utf8.RuneCountInString(b.Text.Text); n != slackMaxSection || !strings.HasSuffix(b.Text.Text, "…") {
		t.Errorf("section text is %d code points, ends %q", n, b.Text.Text[len(b.Text.Text)-10:])
	}
}

func TestFitBlocksHeader(t *testing.T) {
	title := strings.Repeat("Sad chat! ", 20) // 200
	out, err := fitBlocks([]json.RawMessage{json.RawMessage(`{"type":"header","text":{"type":"plain_text","text":"` + title + `","emoji":true}}`)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"header","text":{"type":"plain_text","text":"` + title[:slackMaxHeader-1] + `…","emoji":true}}`
	if string(out[0]) != want {
		t.Errorf("header\n got %s\nwant %s", out[0], want)
	}
}

func TestFitBlocksContext(t *testing.T) {
	image := `{"type":"image","image_url":"https://example.com/a.png","alt_text":"avatar"}`
	short := `{"type":"plain_text","text":"rated 1/5","emoji":true}`
	exact := `{"type":"mrkdwn","text":"` + feedback(slackMaxElement) + `"}`
	long := feedback(2500)
	block := `{"type":"context","elements":[` + image + `, {"type":"mrkdwn","text":"` + long + `","verbatim":true},` + short + `,` + exact + `]}`
	out, err := fitBlocks([]json.RawMessage{json.RawMessage(block)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"context","elements":[` + image + `, {"type":"mrkdwn","text":"` + long[:slackMaxElement-1] + `…","verbatim":true},` + short + `,` + exact + `]}`
	if string(out[0]) != want {
		t.Errorf("context\n got %s\nwant %s", out[0], want)
	}
}

func TestFitBlocksSectionFields(t *testing.T) {
	var fields []string
	for i := range 12 {
		text := fmt.Sprintf("*Field %d*", i)
		if i == 2 {
			text = feedback(2100)
		}
		fields = append(fields, fmt.Sprintf(`{"type":"mrkdwn","text":"%s","x_%d":%d}`, text, i, i))
	}
	block := `{"type":"section","fields":[` + strings.Join(fields, ", ") + ` ],"x":1}`
	out, err := fitBlocks([]json.RawMessage{json.RawMessage(block)})
	if err != nil {
		t.Fatal(err)
	}
	fields[2] = fmt.Sprintf(`{"type":"mrkdwn","text":"%s…","x_2":2}`, feedback(slackMaxElement-1))
	want := `{"type":"section","fields":[` + strings.Join(fields[:slackMaxFields], ", ") + `],"x":1}`
	if string(out[0]) != want {
		t.Errorf("fields\n got %s\nwant %s", out[0], want)
	}
	// Too many fields and none too long: the first ten, as written.
	short := `{"type":"section","fields":[` + strings.Repeat(`{"type":"plain_text","text":"f"}, `, 11) + `{"type":"plain_text","text":"f"}]}`
	out, err = fitBlocks([]json.RawMessage{json.RawMessage(short)})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"section","fields":[` + strings.Repeat(`{"type":"plain_text","text":"f"}, `, 9) + `{"type":"plain_text","text":"f"}]}`; string(out[0]) != want {
		t.Errorf("fields\n got %s\nwant %s", out[0], want)
	}
}

func TestFitBlocksCount(t *testing.T) {
	var raws []json.RawMessage
	for i := range 60 {
		raws = append(raws, json.RawMessage(fmt.Sprintf(`{"type":"divider","block_id":"d%d"}`, i)))
	}
	out, err := fitBlocks(raws)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != slackMaxBlock || string(out[slackMaxBlock-1]) != `{"type":"divider","block_id":"d49"}` {
		t.Errorf("%d blocks, the last %s", len(out), out[len(out)-1])
	}
}

// TestFitBlocksKeepsWhatFits: blocks within the limits come back as the
// very same bytes, and the caller's slice is never written to.
func TestFitBlocksKeepsWhatFits(t *testing.T) {
	fits := []string{
		`{"type":"section","text":{"type":"mrkdwn","text":"` + strings.Repeat("é", slackMaxSection) + `"},"future":{"kept":true}}`,
		`{"type":"header","text":{"type":"plain_text","text":"` + strings.Repeat("x", slackMaxHeader) + `"}}`,
		`{"type":"markdown","text":"` + feedback(5000) + `"}`,                // not ours to cut
		`{"type":"rich_text","elements":[{"type":"rich_text_section"}]}`,     // neither
		`{"type":"section","text":"` + feedback(4000) + `"}`,                 // the wrong shape: Slack will say so
		`{"type":"section","fields":{"text":"` + feedback(4000) + `"}}`,      // likewise
		`{"type":"context","elements":[1,"` + feedback(4000) + `",null,[]]}`, // likewise
		`{"text":{"text":"` + feedback(4000) + `"}}`,                         // no type: parseBlocks' to refuse
	}
	long := `{"type":"header","text":{"type":"plain_text","text":"` + feedback(200) + `"}}`
	var raws []json.RawMessage
	for _, s := range append(fits, long) {
		raws = append(raws, json.RawMessage(s))
	}
	out, err := fitBlocks(raws)
	if err != nil {
		t.Fatal(err)
	}
	for i := range fits {
		if &out[i][0] != &raws[i][0] || len(out[i]) != len(raws[i]) {
			t.Errorf("block %d was rewritten: %.80s", i, out[i])
		}
	}
	if string(raws[len(fits)]) != long {
		t.Error("the caller's slice was written to")
	}
	if string(out[len(fits)]) == long {
		t.Error("the long header was not cut")
	}
	out, err = fitBlocks(raws[:len(fits)])
	if err != nil || &out[0] != &raws[0] {
		t.Errorf("all blocks fit, yet a new slice came back (%v)", err)
	}
}

// TestFitBlocksCutsWhatSlackReads: escaped keys and duplicate keys are read
// as a JSON parser reads them; the cut text is valid JSON, whatever it holds.
func TestFitBlocksCutsWhatSlackReads(t *testing.T) {
	text := `\"quoted\" \\ \u00e9 \ud83d\udc4d line\nbreak ` + strings.Repeat(`&amp;`, 40)
	block := `{"type":"header","te\u0078t":{"text":"` + text + `"},"text":{"text":"` + text + `"}}`
	out, err := fitBlocks([]json.RawMessage{json.RawMessage(block)})
	if err != nil {
		t.Fatal(err)
	}
	var b struct{ Text struct{ Text string } }
	if err := json.Unmarshal(out[0], &b); err != nil {
		t.Fatalf("%v: %s", err, out[0])
	}
	got := b.Text.Text
	// 26 code points before the entities, 149 kept: 24 entities whole,
	// and none cut in half.
	if want := "\"quoted\" \\ é 👍 line\nbreak " + strings.Repeat("&amp;", 24) + "…"; got != want {
		t.Errorf("header text %q, want %q", got, want)
	}
	if n := strings.Count(string(out[0]), "…"); n != 2 {
		t.Errorf("%d of the two text members cut: %s", n, out[0])
	}
}

func TestFitBlocksErrors(t *testing.T) {
	for _, raw := range []string{`"divider"`, `[{"type":"section"}]`, `  `, `{"type":"section","text":{"text":"abc`, `{"type":"section","text":{"text":x}`, `{"type":"context","elements":[{"text":"a"}`} {
		_, err := fitBlocks([]json.RawMessage{json.RawMessage(`{"type":"divider"}`), json.RawMessage(raw)})
		if err == nil || !strings.HasPrefix(err.Error(), "blocks[1]: ") {
			t.Errorf("%s: got %v, want an error about blocks[1]", raw, err)
		}
	}
}

// FuzzFitBlocks: whatever blocks a template renders, fitBlocks does not
// panic, keeps them JSON, and what it returns fits (so a second pass
// changes nothing).
func FuzzFitBlocks(f *testing.F) {
	f.Add(`[{"type":"section","text":{"type":"mrkdwn","text":"hello &amp; <@U1>"},"fields":[{"text":"a"},{"text":"b"}]}]`)
	f.Add(`[{"type":"header","text":{"text":"` + feedback(300) + `"}},{"type":"context","elements":[{"text":"x"},{"type":"image"}]}]`)
	f.Add(`[{"type":"section","fields":[` + strings.Repeat(`{"text":"f"},`, 12) + `{}]}]`)
	f.Add(`[{"type" : "context" , "elements" : [ "a" , { "text" : "\u00e9\n" } ] }, 1, "x"]`)
	f.Fuzz(func(t *testing.T, src string) {
		var raws []json.RawMessage
		if json.Unmarshal([]byte(src), &raws) != nil {
			return
		}
		out, err := fitBlocks(raws)
		if err != nil {
			for _, r := range raws[:min(len(raws), slackMaxBlock)] {
				if strings.HasPrefix(strings.TrimSpace(string(r)), "{") {
					continue
				}
				return // a block that is not an object: the error is right
			}
			t.Fatalf("fitBlocks(%s): %v", src, err)
		}
		if len(out) != min(len(raws), slackMaxBlock) {
			t.Fatalf("%d blocks out of %d", len(out), len(raws))
		}
		for i, b := range out {
			if !json.Valid(b) {
				t.Fatalf("block %d is not JSON: %s", i, b)
			}
		}
		again, err := fitBlocks(out)
		if err != nil {
			t.Fatal(err)
		}
		for i := range out {
			if string(again[i]) != string(out[i]) {
				t.Fatalf("a second pass changed block %d: %s to %s", i, out[i], again[i])
			}
		}
	})
}
