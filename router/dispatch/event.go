package dispatch

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// droppedHeaders are the request headers never stored, shown or put in an
// event view, whatever the config: they carry the sender's credentials,
// not event data, and an event is read by everyone with the read scope.
// server.drop_headers adds to them.
var droppedHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true,
	"x-api-key": true, "api-key": true, "x-auth-token": true, "x-access-token": true, "x-amz-security-token": true,
}

// dropsHeader reports whether a request header (lower-cased) is left out
// of what is stored and shown.
func (rt *Runtime) dropsHeader(name string) bool {
	return droppedHeaders[name] || rt.dropHeaders[name]
}

// HeaderMap lower-cases header names, keeps the first value of each and
// drops credentials (droppedHeaders and server.drop_headers). It runs on
// a request that has been verified already: a signature is checked over
// the raw request, whose headers this leaves alone.
func (rt *Runtime) HeaderMap(h http.Header) map[string]string {
	m := make(map[string]string, len(h))
	for k, vs := range h {
		k = strings.ToLower(k)
		if len(vs) == 0 || rt.dropsHeader(k) {
			continue
		}
		m[k] = vs[0]
	}
	return m
}

// str renders a JSON scalar as the string SalesIQ would have sent.
func str(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case int:
		return strconv.Itoa(t)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(t)
	}
	return fmt.Sprint(v)
}

// scalarString is str for the values an id may be made of, and false for
// objects and lists: they would print as Go's map[…] or […], an id the
// sender never sent, which a sender's string "map[x:1]" would collide
// with.
func scalarString(v any) (string, bool) {
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map, reflect.Slice, reflect.Array:
		return "", false
	}
	return str(v), true
}

// kindName names v's JSON kind for error messages.
func kindName(v any) string {
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return fmt.Sprintf("a %T", v)
}

func bodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// viewMap turns a typed view (a struct with expr tags) into the map that
// templates see, so that rules and templates read the same names.
func viewMap(v any) map[string]any {
	rv := reflect.Indirect(reflect.ValueOf(v))
	m := make(map[string]any, rv.NumField())
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		name := rt.Field(i).Tag.Get("expr")
		if name == "" || name == "-" {
			continue
		}
		f := rv.Field(i)
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(time.Time{}) {
			m[name] = viewMap(f.Interface())
			continue
		}
		m[name] = f.Interface()
	}
	return m
}
