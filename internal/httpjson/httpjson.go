// Package httpjson writes JSON answers the way every hookroute endpoint
// does: the ingest's and the admin API's, errors as {"error": "..."}.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Error answers code with {"error": msg}.
func Error(w http.ResponseWriter, code int, msg string) {
	Write(w, code, map[string]string{"error": msg})
}

// Write answers code with v as JSON.
func Write(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
