package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/hookroute/hookroute/internal/httpjson"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/config"
	"github.com/hookroute/hookroute/router/dispatch"
)

// registerSilenceRoutes adds the silence API: reading needs read, making
// and expiring silences needs silence.
func (r *server) registerSilenceRoutes(api func(pattern, scope string, h http.HandlerFunc)) {
	api("GET /api/silences", "read", r.apiListSilences)
	api("GET /api/silences/{id}", "read", r.apiGetSilence)
	api("POST /api/silences", "silence", r.apiCreateSilence)
	api("DELETE /api/silences/{id}", "silence", r.apiExpireSilence)
}

// silenceJSON is a silence as the API shows it, with its state now.
type silenceJSON struct {
	ID        string    `json:"id"`
	Matcher   string    `json:"matcher"`
	Comment   string    `json:"comment"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	State     string    `json:"state"`
}

func toSilenceJSON(s *router.Silence, now time.Time) silenceJSON {
	return silenceJSON{ID: s.ID, Matcher: s.Matcher, Comment: s.Comment, CreatedBy: s.CreatedBy,
		CreatedAt: s.CreatedAt, StartsAt: s.StartsAt, EndsAt: s.EndsAt, State: s.State(now)}
}

// apiListSilences lists the silences kept, newest first; ?state=active,
// pending or expired keeps those.
func (r *server) apiListSilences(w http.ResponseWriter, req *http.Request) {
	state := req.URL.Query().Get("state")
	switch state {
	case "", router.SilenceActive, router.SilencePending, router.SilenceExpired:
	default:
		httpjson.Error(w, http.StatusBadRequest, "state: want active, pending or expired")
		return
	}
	list, err := r.store.Silences(req.Context())
	if err != nil {
		r.storeError(w, err)
		return
	}
	now := r.now()
	items := []silenceJSON{}
	for _, s := range list {
		if j := toSilenceJSON(s, now); state == "" || j.State == state {
			items = append(items, j)
		}
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"items": items})
}

func (r *server) apiGetSilence(w http.ResponseWriter, req *http.Request) {
	list, err := r.store.Silences(req.Context())
	if err != nil {
		r.storeError(w, err)
		return
	}
	for _, s := range list {
		if s.ID == req.PathValue("id") {
			httpjson.Write(w, http.StatusOK, toSilenceJSON(s, r.now()))
			return
		}
	}
	httpjson.Error(w, http.StatusNotFound, "no such silence")
}

// silenceBody is POST /api/silences' body.
type silenceBody struct {
	Matcher  string `json:"matcher"`
	StartsAt string `json:"starts_at"`
	EndsAt   string `json:"ends_at"`
	Duration string `json:"duration"`
	Comment  string `json:"comment"`
}

func (r *server) apiCreateSilence(w http.ResponseWriter, req *http.Request) {
	var b silenceBody
	dec := json.NewDecoder(io.LimitReader(req.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		httpjson.Error(w, http.StatusBadRequest, "invalid body: "+err.Error())
		return
	}
	in := dispatch.SilenceInput{Matcher: b.Matcher, Comment: b.Comment}
	for _, t := range []struct {
		name, v string
		to      *time.Time
	}{{"starts_at", b.StartsAt, &in.StartsAt}, {"ends_at", b.EndsAt, &in.EndsAt}} {
		if t.v == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339, t.v)
		if err != nil {
			httpjson.Error(w, http.StatusBadRequest, t.name+": want an RFC 3339 time such as 2026-12-07T14:00:00Z")
			return
		}
		*t.to = at
	}
	if b.Duration != "" {
		d, err := config.ParseDuration(b.Duration)
		if err != nil || d <= 0 {
			httpjson.Error(w, http.StatusBadRequest, "duration: want a positive duration such as 2h or 1d")
			return
		}
		in.Duration = d
	}
	s, err := r.e.CreateSilence(req.Context(), in, tokenName(req))
	var bad *dispatch.SilenceError
	switch {
	case errors.As(err, &bad):
		httpjson.Error(w, http.StatusBadRequest, bad.Msg)
		return
	case err != nil:
		r.storeError(w, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, toSilenceJSON(s, r.now()))
}

func (r *server) apiExpireSilence(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	err := r.e.ExpireSilence(req.Context(), id, tokenName(req))
	switch {
	case errors.Is(err, router.ErrNotFound):
		httpjson.Error(w, http.StatusNotFound, "no such silence")
		return
	case err != nil:
		r.storeError(w, err)
		return
	}
	r.apiGetSilence(w, req)
}
