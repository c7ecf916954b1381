// Package ui is the web console (README: Web console, GET /ui/): recent events,
// deliveries and their attempts, dead letters with replay, sinks, the
// trial run, and silences. It is plain HTML, CSS and JavaScript embedded in the binary —
// no build step and nothing loaded from anywhere else — and it talks to the
// admin API with the bearer token the operator types in, so the pages
// themselves need no authentication and hold nothing secret.
package ui

import (
	"embed"
	"net/http"
	"strings"
)

//go:embed index.html app.js app.css
var files embed.FS

// ContentSecurityPolicy is sent with every file: only our own scripts,
// styles and API; no inline script or style, no plugins, no framing, and
// no form may submit anywhere (a form whose script failed to load must not
// put the token in a URL).
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type asset struct {
	body        []byte
	contentType string
}

// assets are read once: the embedded files never change.
var assets = func() map[string]asset {
	types := map[string]string{
		".html": "text/html; charset=utf-8",
		".js":   "text/javascript; charset=utf-8",
		".css":  "text/css; charset=utf-8",
	}
	m := map[string]asset{}
	for _, name := range []string{"index.html", "app.js", "app.css"} {
		b, err := files.ReadFile(name)
		if err != nil {
			panic("ui: embedded " + name + ": " + err.Error()) // a build that lost a file
		}
		m[name] = asset{body: b, contentType: types[name[strings.LastIndexByte(name, '.'):]]}
	}
	m[""] = m["index.html"]
	return m
}()

// Handler serves the console under /ui/ (mount it at "GET /ui/"). Every
// answer is no-store, so an upgrade never runs against a stale script.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, ok := strings.CutPrefix(req.URL.Path, "/ui/")
		a, found := assets[name]
		if !ok || !found {
			http.NotFound(w, req)
			return
		}
		h.Set("Content-Type", a.contentType)
		_, _ = w.Write(a.body)
	})
}
