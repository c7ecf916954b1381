package jsonview

import (
	"fmt"
	"strconv"
)

// Str is the string form of a decoded value, as rules and templates see
// it through str: "" for null, numbers in plain decimal, anything else
// as fmt prints it.
func Str(v any) string {
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
