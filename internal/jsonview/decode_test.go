package jsonview

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// stdDecodeJSON is the reference decodeJSON must match: encoding/json with
// UseNumber, then normalizeNumbers, one value and nothing after it.
func stdDecodeJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return normalizeNumbers(v), nil
}

// normalizeNumbers is what decodeJSON did to encoding/json's numbers.
func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normalizeNumbers(x)
		}
	case []any:
		for i, x := range t {
			t[i] = normalizeNumbers(x)
		}
	case json.Number:
		if i, err := t.Int64(); err == nil && i >= math.MinInt && i <= math.MaxInt {
			return int(i)
		}
		if !strings.ContainsAny(string(t), ".eE") {
			return string(t) // an integer beyond int64: keep every digit
		}
		if f, err := t.Float64(); err == nil {
			return f
		}
		return string(t)
	}
	return v
}

var decodeJSONCases = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1`, `-1`, `12345678901234567890`,
	`-9223372036854775808`, `9223372036854775807`, `9223372036854775808`, `1.5`, `-1.5e10`,
	`1E+2`, `1e-400`, `1e999`, `-1e999`, `0.1`, `2.5E-3`, `"plain"`, `""`,
	`"esc \" \\ \/ \b \f \n \r \t \u00e9 \u2028 \ud83d\ude00"`,
	`"lone \ud800 x"`, `"lone \udc00"`, `"pair bad \ud800\u0041"`, `"\ud800\ud800\udc00"`,
	"\"bad utf8 \xff\xfe \xed\xa0\x80 ok é\"", "\"\xef\xbf\xbd\"",
	`{"a":1,"a":2}`, `{"a":[1,{"b":null}],"c":{"d":"e"}}`, " \t\r\n{ \"k\" : [ 1 , 2 ] } \n",
	// errors
	``, ` `, `{`, `[`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `[1 2]`, `01`, `1.`, `.5`, `-`,
	`1e`, `1e+`, `+1`, `NaN`, `Infinity`, `nul`, `tru`, `truex`, `"unterminated`, "\"ctl \x01\"",
	`"bad \x escape"`, `"\u12"`, `"\u12G4"`, `"\ud800\u12G4"`, `{} {}`, `{} x`, `[1]]`, "\xef\xbb\xbf{}",
	`{"a":}`, `{,}`, `[,1]`, `"\`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
}

func checkDecodeJSON(t *testing.T, in []byte) {
	t.Helper()
	got, gotErr := Decode(in)
	want, wantErr := stdDecodeJSON(in)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("decodeJSON(%.80q): error %v, encoding/json: error %v", in, gotErr, wantErr)
	}
	if gotErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeJSON(%.80q) = %#v\nencoding/json gives %#v", in, got, want)
	}
}

func TestDecodeJSONMatchesEncodingJSON(t *testing.T) {
	for _, c := range decodeJSONCases {
		checkDecodeJSON(t, []byte(c))
	}
	files, _ := filepath.Glob("../../router/source/testdata/events/*.json")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkDecodeJSON(t, b)
	}
}

// FuzzDecodeJSONMatchesEncodingJSON: on any input, decodeJSON decodes to
// what encoding/json gives, or both refuse it.
func FuzzDecodeJSONMatchesEncodingJSON(f *testing.F) {
	for _, c := range decodeJSONCases {
		if len(c) < 1000 {
			f.Add([]byte(c))
		}
	}
	if b, err := os.ReadFile("../../router/source/testdata/events/conversation-rated-sad.json"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkDecodeJSON(t, in) })
}

func BenchmarkDecodeJSON(b *testing.B) {
	body, err := os.ReadFile("../../router/source/testdata/events/conversation-rated-sad.json")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decodeJSON", func(b *testing.B) {
		for b.Loop() {
			if _, err := Decode(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := stdDecodeJSON(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestDecodeNumbers(t *testing.T) {
	v, err := Decode([]byte(`{"small": 3, "big": 40526000000002040, "huge": 123456789012345678901234567890, "f": 1.5}`))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["small"] != 3 || m["big"] != 40526000000002040 || m["huge"] != "123456789012345678901234567890" || m["f"] != 1.5 {
		t.Fatalf("decoded %#v", m)
	}
	for _, bad := range []string{`{"a":1} {"b":2}`, `{`, strings.Repeat("[", 20000) + strings.Repeat("]", 20000)} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("decodeJSON(%.20q…) succeeded", bad)
		}
	}
}
