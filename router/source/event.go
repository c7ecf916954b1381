package source

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"time"

	"github.com/hookroute/hookroute/internal/jsonview"
)

// scalarString is str for the values an id may be made of, and false for
// objects and lists: they would print as Go's map[…] or […], an id the
// sender never sent, which a sender's string "map[x:1]" would collide
// with.
func ScalarString(v any) (string, bool) {
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map, reflect.Slice, reflect.Array:
		return "", false
	}
	return jsonview.Str(v), true
}

// kindName names v's JSON kind for error messages.
func KindName(v any) string {
	switch reflect.ValueOf(v).Kind() {
	case reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return fmt.Sprintf("a %T", v)
}

func BodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// viewMap turns a typed view (a struct with expr tags) into the map that
// templates see, so that rules and templates read the same names.
func ViewMap(v any) map[string]any {
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
			m[name] = ViewMap(f.Interface())
			continue
		}
		m[name] = f.Interface()
	}
	return m
}
