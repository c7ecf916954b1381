package admin

import (
	"encoding/json"
	"github.com/hookroute/hookroute/router/trial"
	"io"
	"log/slog"
	"net/http"

	"github.com/hookroute/hookroute/internal/httpjson"
)

// registerTrialRoutes adds POST /api/trial and GET /api/trial/samples.
func (r *server) registerTrialRoutes(api func(pattern, scope string, h http.HandlerFunc)) {
	api("POST /api/trial", "trial", r.apiTrial)
	api("GET /api/trial/samples", "trial", r.apiTrialSamples)
}

// trialRequest is the body of POST /api/trial.
type trialRequest struct {
	Source  string            `json:"source"`
	Event   json.RawMessage   `json:"event"`
	Send    bool              `json:"send"`
	Headers map[string]string `json:"headers"`
}

func (r *server) apiTrial(w http.ResponseWriter, req *http.Request) {
	rt := r.e.Runtime()
	// The event may be as large as an ingested one, plus the envelope.
	limit := int64(rt.Config.Server.MaxBody) + 64<<10
	var b trialRequest
	dec := json.NewDecoder(io.LimitReader(req.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		httpjson.Error(w, http.StatusBadRequest, "invalid body: "+err.Error())
		return
	}
	if len(b.Event) == 0 || string(b.Event) == "null" {
		httpjson.Error(w, http.StatusBadRequest, "invalid body: event (the webhook payload) is missing")
		return
	}
	res, err := r.e.Trial(req.Context(), trial.Input{Source: b.Source, Payload: b.Event, Headers: b.Headers, Send: b.Send})
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	matched := 0
	for _, rl := range res.Rules {
		if rl.Matched {
			matched++
		}
	}
	r.log.Info("trial run", "by", tokenName(req), "source", res.Source, "event", res.EventName, "send", res.Send, "matched", matched, "routes", len(res.Routes))
	for _, rr := range res.Routes {
		if rr.Result != nil {
			lv := slog.LevelInfo
			if rr.Result.Error != "" {
				lv = slog.LevelWarn
			}
			r.log.Log(req.Context(), lv, "trial delivery sent (not recorded)", "by", tokenName(req), "rule", rr.Rule, "sink", rr.Sink,
				"status_code", rr.Result.StatusCode, "remote_id", rr.Result.RemoteID, "err", rr.Result.Error)
		}
	}
	httpjson.Write(w, http.StatusOK, res)
}

func (r *server) apiTrialSamples(w http.ResponseWriter, req *http.Request) {
	httpjson.Write(w, http.StatusOK, listReply[trial.Sample]{Items: r.e.TrialSamples(req.Context())})
}
