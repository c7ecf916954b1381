package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, method, path string) *http.Response {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("GET /ui/", Handler()) // as the admin listener mounts it
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func TestServesFilesWithTheirTypesAndHeaders(t *testing.T) {
	for path, ctype := range map[string]string{
		"/ui/":           "text/html; charset=utf-8",
		"/ui/index.html": "text/html; charset=utf-8",
		"/ui/app.js":     "text/javascript; charset=utf-8",
		"/ui/app.css":    "text/css; charset=utf-8",
	} {
		resp := get(t, http.MethodGet, path)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", path, resp.StatusCode, len(body))
		}
		if got := resp.Header.Get("Content-Type"); got != ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, ctype)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("GET %s: Cache-Control %q", path, got)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("GET %s: CSP %q allows inline code", path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", path)
		}
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	if resp := get(t, http.MethodGet, "/ui/secret.go"); resp.StatusCode != 404 {
		t.Errorf("GET /ui/secret.go: %d, want 404", resp.StatusCode)
	}
	if resp := get(t, http.MethodGet, "/ui/../admin.go"); resp.StatusCode == 200 {
		t.Errorf("GET /ui/../admin.go: 200")
	}
	if resp := get(t, http.MethodHead, "/ui/app.js"); resp.StatusCode != 200 {
		t.Errorf("HEAD /ui/app.js: %d, want 200", resp.StatusCode)
	}
	if resp := get(t, http.MethodGet, "/ui"); resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d to %q, want a redirect to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ui/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/: %d, want 405", rec.Code)
	}
}

// The files must keep to what the policy allows and to the console's one
// rule about data: no inline script or style, nothing from another origin,
// and no HTML parsing of strings (data goes in as text).
func TestFilesKeepToThePolicy(t *testing.T) {
	read := func(name string) string {
		b, err := files.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	html := read("index.html")
	for _, tag := range regexp.MustCompile(`(?is)<script\b[^>]*>(.*?)</script>`).FindAllStringSubmatch(html, -1) {
		if !strings.Contains(tag[0], `src="app.js"`) || strings.TrimSpace(tag[1]) != "" {
			t.Errorf("index.html has an inline script: %s", tag[0])
		}
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)\son[a-z]+\s*=`), // inline handler
		regexp.MustCompile(`(?i)\sstyle\s*=`),    // inline style
		regexp.MustCompile(`(?i)<style`),
		regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:)?//`), // another origin
	} {
		if m := bad.FindString(html); m != "" {
			t.Errorf("index.html: %q is not allowed", m)
		}
	}
	js, css := read("app.js"), read("app.css")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "localStorage"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	for name, s := range map[string]string{"app.js": js, "app.css": css} {
		if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/`).FindString(s); m != "" {
			t.Errorf("%s refers to another origin: %q", name, m)
		}
		if strings.Contains(s, "@import") {
			t.Errorf("%s imports something", name)
		}
	}
}
