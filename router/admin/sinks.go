package admin

import (
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/hookroute/hookroute/internal/httpjson"
)

func (r *server) apiReload(w http.ResponseWriter, req *http.Request) {
	if err := r.e.Reload(); err != nil {
		httpjson.Error(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]string{"status": "reloaded"})
}

// sinkJSON is a sink as GET /api/sinks shows it.
type sinkJSON struct {
	Name         string     `json:"name"`
	Type         string     `json:"type"`
	Disabled     bool       `json:"disabled,omitempty"`
	Paused       bool       `json:"paused"`
	PausedReason string     `json:"paused_reason,omitempty"`
	PausedSince  *time.Time `json:"paused_since,omitempty"`
	// HeldUntil is the end of a receiver's Retry-After hold, while it
	// lasts.
	HeldUntil    *time.Time `json:"held_until,omitempty"`
	Pending      int        `json:"pending"`
	Dead         int        `json:"dead"`
	OldestDueSec float64    `json:"oldest_due_seconds"`
}

func (r *server) apiListSinks(w http.ResponseWriter, req *http.Request) {
	rt := r.e.Runtime()
	counts, err := r.store.PendingCounts(req.Context(), r.now())
	if err != nil {
		r.storeError(w, err)
		return
	}
	states, err := r.store.SinkStates(req.Context())
	if err != nil {
		r.storeError(w, err)
		return
	}
	out := []sinkJSON{}
	for _, name := range slices.Sorted(maps.Keys(rt.Sinks)) {
		sr := rt.Sinks[name]
		st, c := states[name], counts[name]
		j := sinkJSON{Name: name, Type: sr.Kind, Disabled: sr.Disabled, Paused: st.Paused, Pending: c.Pending, Dead: c.Dead, OldestDueSec: c.OldestDueAge.Seconds()}
		if st.Paused {
			j.PausedReason = st.Reason
			t := st.Since.UTC()
			j.PausedSince = &t
		}
		if st.HeldUntil.After(r.now()) {
			t := st.HeldUntil.UTC()
			j.HeldUntil = &t
		}
		out = append(out, j)
	}
	httpjson.Write(w, http.StatusOK, listReply[sinkJSON]{Items: out})
}

func (r *server) apiResumeSink(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	if _, ok := r.e.Runtime().Sinks[name]; !ok {
		httpjson.Error(w, http.StatusNotFound, "no such sink")
		return
	}
	if err := r.e.ResumeSink(name, "resumed by "+tokenName(req)); err != nil {
		r.storeError(w, err)
		return
	}
	r.log.Info("sink resumed by an operator", "sink", name, "by", tokenName(req))
	httpjson.Write(w, http.StatusOK, map[string]string{"status": "resumed"})
}
