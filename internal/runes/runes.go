// Package runes cuts text by characters rather than bytes: a limit in
// bytes could split a character in two and leave invalid UTF-8 in a
// message, a log line or a vendor's field. The engine (the template
// function truncate, stored attempt errors) and the sinks (vendor field
// limits) cut the same way.
package runes

import "unicode/utf8"

// Truncate cuts s to at most n runes, marking the cut with "…" (which
// counts as one of the n). An n of 0 or less leaves s whole.
func Truncate(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
