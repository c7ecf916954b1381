package router

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// IngestHandler serves the source paths, /healthz and /readyz.
func (r *Router) IngestHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/healthz":
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
			return
		case "/readyz":
			ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
			defer cancel()
			if err := r.Ready(ctx); err != nil {
				httpError(w, http.StatusServiceUnavailable, "not ready")
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
			return
		}
		rt := r.rt.Load()
		src, ok := rt.SourceByPath(strings.TrimSuffix(req.URL.Path, "/"))
		if !ok {
			httpError(w, http.StatusNotFound, "not found")
			return
		}
		r.serveHook(w, req, rt, src)
	})
}

// AdminHandler serves /metrics on the admin listener. When admin tokens
// are configured, a bearer token with the read scope is required.
func (r *Router) AdminHandler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", r.requireScope("read", promhttp.HandlerFor(g, promhttp.HandlerOpts{})))
	return mux
}

func (r *Router) requireScope(scope string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		tokens := r.rt.Load().Config.Admin.Tokens
		if len(tokens) == 0 {
			h.ServeHTTP(w, req)
			return
		}
		got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		if !ok {
			httpError(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		var match *TokenConfig
		for i := range tokens {
			// Compare against every token, in constant time each, so the
			// answer's timing says nothing about which one nearly matched.
			if subtle.ConstantTimeCompare([]byte(got), []byte(tokens[i].Token.Reveal())) == 1 {
				match = &tokens[i]
			}
		}
		switch {
		case match == nil:
			httpError(w, http.StatusUnauthorized, "unauthorized")
		case !contains(match.Scopes, scope):
			httpError(w, http.StatusForbidden, "forbidden")
		default:
			h.ServeHTTP(w, req)
		}
	})
}

// NewHTTPServer returns a server with the timeouts and limits every
// listener of ours uses (slow clients cannot hold connections open).
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}
