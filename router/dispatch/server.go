package dispatch

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/hookroute/hookroute/internal/httpjson"
)

// IngestHandler serves the source paths, /healthz and /readyz.
func (r *Router) IngestHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/healthz":
			httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
			return
		case "/readyz":
			ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
			defer cancel()
			if err := r.Ready(ctx); err != nil {
				httpjson.Error(w, http.StatusServiceUnavailable, "not ready")
				return
			}
			httpjson.Write(w, http.StatusOK, map[string]string{"status": "ready"})
			return
		}
		rt := r.rt.Load()
		src, ok := rt.SourceByPath(strings.TrimSuffix(req.URL.Path, "/"))
		if !ok {
			httpjson.Error(w, http.StatusNotFound, "not found")
			return
		}
		r.serveHook(w, req, rt, src)
	})
}

// NewHTTPServer returns a server with the timeouts and limits every
// listener of ours uses (slow clients cannot hold connections open).
// readTimeout (server.read_timeout) bounds the read of a whole request,
// headers and body: a client that trickles its body is cut off then,
// rather than holding a connection and a handler for as long as it likes.
func NewHTTPServer(addr string, h http.Handler, readTimeout time.Duration) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       readTimeout,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}
