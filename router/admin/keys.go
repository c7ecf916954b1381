package admin

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hookroute/hookroute/internal/httpjson"
	"github.com/hookroute/hookroute/internal/randomid"
	"github.com/hookroute/hookroute/router"
	"github.com/hookroute/hookroute/router/rules"
)

// registerKeyRoutes adds the key API (README: Security, secured outbound webhooks) to the admin API.
func (r *server) registerKeyRoutes(api func(pattern, scope string, h http.HandlerFunc)) {
	api("POST /api/v2/{screenname}/webhooks/{id}/keys", "webhooks.create", r.apiCreateKey)
	api("GET /api/v2/{screenname}/webhooks/{id}/keys", "read", r.apiListKeys)
	api("DELETE /api/v2/{screenname}/webhooks/{id}/keys/{keyid}", "webhooks.delete", r.apiDeleteKey)
}

// signingKeyJSON is a key as the key API shows it: the public half only.
type signingKeyJSON struct {
	KeyID     string    `json:"key_id"`
	PublicKey string    `json:"public_key"` // PEM "PUBLIC KEY" (PKIX)
	CreatedAt time.Time `json:"created_at"`
	// Signing is true for the key that signs now: the oldest.
	Signing bool `json:"signing"`
}

// keyBits is the size of generated keys: what SalesIQ uses, and the
// smallest size a receiver should accept.
const keyBits = 2048

// newKeyID returns a random key id, "k_" and 16 base32 characters.
func newKeyID() string { return "k_" + randomid.New(10) }

// keySink checks the screenname in the path and returns the sink named by
// {id} with the running config's entry for it (nil if not configured).
func (r *server) keySink(w http.ResponseWriter, req *http.Request) (string, *rules.SinkRuntime, bool) {
	rt := r.e.Runtime()
	if req.PathValue("screenname") != rt.Config.Server.Screenname {
		httpjson.Error(w, http.StatusNotFound, "unknown screenname: this router answers to its server.screenname only")
		return "", nil, false
	}
	name := req.PathValue("id")
	return name, rt.Sinks[name], true
}

func (r *server) apiCreateKey(w http.ResponseWriter, req *http.Request) {
	name, sr, ok := r.keySink(w, req)
	if !ok {
		return
	}
	switch {
	case sr == nil:
		httpjson.Error(w, http.StatusNotFound, fmt.Sprintf("no sink named %q in the config", name))
		return
	case sr.Disabled || sr.Sink == nil:
		httpjson.Error(w, http.StatusConflict, fmt.Sprintf("sink %q is switched off (optional, and a variable it needs is empty)", name))
		return
	case !router.IsSecured(sr.Sink):
		httpjson.Error(w, http.StatusConflict, fmt.Sprintf("sink %q does not sign with keys: only an http sink with secured: true (and signing: salesiq, the default) takes signing keys", name))
		return
	case !r.e.CanSeal():
		httpjson.Error(w, http.StatusServiceUnavailable, "signing keys need HOOKROUTE_MASTER_KEY, which encrypts them at rest; set it (at least 32 characters) and restart")
		return
	}
	existing, err := r.store.SigningKeys(req.Context(), name)
	if err != nil {
		r.storeError(w, err)
		return
	}
	if len(existing) >= router.MaxSigningKeys {
		r.keyLimit(w, name)
		return
	}
	priv, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		r.logs.Log(r.log, r.now(), slog.LevelError, "keygen:"+name, "generate signing key", "sink", name, "err", err)
		httpjson.Error(w, http.StatusInternalServerError, "could not generate a key")
		return
	}
	id := newKeyID()
	sealed, err := r.e.SealSigningKey(name, id, priv)
	if err != nil {
		r.logs.Log(r.log, r.now(), slog.LevelError, "keygen:"+name, "seal signing key", "sink", name, "err", err)
		httpjson.Error(w, http.StatusInternalServerError, "could not encrypt the new key")
		return
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, "could not encode the public key")
		return
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	// Microseconds: what every store keeps, so the listing shows the same
	// time as this answer.
	at := r.now().UTC().Truncate(time.Microsecond)
	if err := r.store.CreateSigningKey(req.Context(), name, id, pub, sealed, at); err != nil {
		if errors.Is(err, router.ErrKeyLimit) {
			r.keyLimit(w, name)
			return
		}
		r.storeError(w, err)
		return
	}
	r.e.SigningKeysChanged(name)
	signing := len(existing) == 0
	r.log.Info("signing key created", "sink", name, "key_id", id, "by", tokenName(req), "signing", signing)
	r.e.Wake(name)
	httpjson.Write(w, http.StatusCreated, signingKeyJSON{KeyID: id, PublicKey: string(pub), CreatedAt: at, Signing: signing})
}

func (r *server) keyLimit(w http.ResponseWriter, sink string) {
	httpjson.Error(w, http.StatusConflict, fmt.Sprintf("sink %q has %d keys already, the most it may hold: the oldest signs; delete one first (DELETE .../keys/{keyid})", sink, router.MaxSigningKeys))
}

// keysOf lists a sink's keys for the list and delete routes, which also
// serve a sink that has left the config but whose keys are still stored
// (so they can be cleaned up). It answers 404 itself when there is
// neither.
func (r *server) keysOf(w http.ResponseWriter, req *http.Request) (string, []router.SigningKey, bool) {
	name, sr, ok := r.keySink(w, req)
	if !ok {
		return "", nil, false
	}
	ks, err := r.store.SigningKeys(req.Context(), name)
	if err != nil {
		r.storeError(w, err)
		return "", nil, false
	}
	if sr == nil && len(ks) == 0 {
		httpjson.Error(w, http.StatusNotFound, fmt.Sprintf("no sink named %q in the config", name))
		return "", nil, false
	}
	return name, ks, true
}

func (r *server) apiListKeys(w http.ResponseWriter, req *http.Request) {
	_, ks, ok := r.keysOf(w, req)
	if !ok {
		return
	}
	out := listReply[signingKeyJSON]{Items: make([]signingKeyJSON, 0, len(ks))}
	for i, k := range ks {
		out.Items = append(out.Items, signingKeyJSON{KeyID: k.ID, PublicKey: string(k.PublicPEM), CreatedAt: k.CreatedAt.UTC(), Signing: i == 0})
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (r *server) apiDeleteKey(w http.ResponseWriter, req *http.Request) {
	name, ks, ok := r.keysOf(w, req)
	if !ok {
		return
	}
	id := req.PathValue("keyid")
	if err := r.store.DeleteSigningKey(req.Context(), name, id); err != nil {
		if errors.Is(err, router.ErrNotFound) {
			httpjson.Error(w, http.StatusNotFound, fmt.Sprintf("sink %q has no key %q", name, id))
			return
		}
		r.storeError(w, err)
		return
	}
	r.e.SigningKeysChanged(name)
	next := ""
	for _, k := range ks {
		if k.ID != id {
			next = k.ID
			break
		}
	}
	if next == "" {
		r.log.Warn("signing key deleted; the sink has none left, so its deliveries wait until one is generated", "sink", name, "key_id", id, "by", tokenName(req))
	} else {
		r.log.Info("signing key deleted", "sink", name, "key_id", id, "by", tokenName(req), "signing_key", next)
	}
	w.WriteHeader(http.StatusNoContent)
}
